"""Writing the report folder as a whole: everything is rendered into a
temporary folder next to the target, which then takes the target's place,
so a crash never leaves a half report. A folder that exists is replaced only
when it is empty or an earlier report (its index.html says so): a wrong
`--out` must never delete someone's files."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from repcoach.common.errors import UserError
from repcoach.common.history import History
from repcoach.stages.report import html, plots
from repcoach.stages.report.model import ReportData, load_report


def write_report(history: History, session_id: str, out_dir: Path) -> Path:
    """Writes the report of `session_id` ("last": the newest) into `out_dir`,
    replacing an earlier report there; returns the path of its index.html."""
    data = load_report(history, session_id)
    out = Path(out_dir).expanduser().absolute()
    check_target(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise UserError(_failure(out, exc)) from None
    try:
        images = _draw(data, work)
        with open(work / "index.html", "w", encoding="utf-8") as page:
            page.write(html.render(data, images))
            page.flush()
            os.fsync(page.fileno())
        work.chmod(0o755)  # mkdtemp makes it private; a report is meant to be shared
        _replace(work, out)
    except OSError as exc:
        raise UserError(_failure(out, exc)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already when all went well
    return out / "index.html"


def _failure(out: Path, exc: OSError) -> str:
    """One line saying what failed and that an earlier report is untouched."""
    reason = exc.strerror or str(exc)
    kept = "the previous report was kept" if _is_report(out) else "nothing was written"
    return f"cannot write the report into {out}: {reason} ({kept})"


def _draw(data: ReportData, folder: Path) -> dict[str, str | None]:
    images: dict[str, str | None] = {}
    for g in data.groups:
        images[f"angles-{g.key}"] = plots.angle_trace(g, folder)
        images[f"scores-{g.key}"] = plots.scores(g, folder)
        images[f"tempo-{g.key}"] = plots.tempo(g, folder)
    for exercise, rows in data.progress.items():
        group = data.member_group(exercise)
        unit = group.rom_unit if group is not None else "deg"
        images[f"progress-{exercise}"] = plots.progress(
            exercise,
            data.words[exercise].title,
            rows,
            data.session["id"],
            "degrees" if unit == "deg" else unit,
            folder,
        )
    return images


def check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"report folder {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_report(out):
        raise UserError(
            f"{out} already holds other files and no report; give a new or empty folder"
        )


def _is_report(folder: Path) -> bool:
    try:
        with open(folder / "index.html", encoding="utf-8", errors="replace") as page:
            return html.GENERATOR in page.read(4096)
    except OSError:
        return False


def _replace(new: Path, out: Path) -> None:
    """Puts `new` in place of `out`. Two renames (Linux has no portable
    directory swap): between them `out` is briefly absent, never half-written."""
    if not out.exists():
        os.rename(new, out)
        return
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(out, old)
    try:
        os.rename(new, out)
    except OSError:
        os.rename(old, out)  # put the earlier report back
        raise
    shutil.rmtree(old, ignore_errors=True)
