"""`pipeline weights download|list`: fetch and check model weight files.

A download streams to `<file>.part`, resumes a partial one with an HTTP Range
request, checks the result with `repcoach.common.weights.check_weights` (size,
HDF5 layers, SHA-256 when the manifest records one) and only then renames it
into place, so a final file is always a verified one.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from repcoach.common.errors import UserError
from repcoach.common.weights import (
    MANIFEST_PATH,
    WEIGHTS_DIR_ENV,
    WeightsEntry,
    check_weights,
    default_weights_dir,
    load_manifest,
    lookup,
)

CHUNK = 1 << 20
TIMEOUT_S = 30.0

weights_app = typer.Typer(
    help="Download and check model weights (Mask R-CNN for the maskrcnn segmenter).",
    no_args_is_help=True,
)

WeightsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--weights-dir",
        envvar=WEIGHTS_DIR_ENV,
        help="Folder holding the weight files (default: the package's weights/ folder).",
        show_default=False,
    ),
]
# Hidden: tests point it at a manifest with their own sizes and hashes.
ManifestOption = Annotated[Path, typer.Option("--manifest", hidden=True)]


class DownloadError(Exception):
    """The transfer failed; the `.part` file is kept for a resume."""


@dataclass(frozen=True)
class _Response:
    """An open HTTP response and where its body starts in the file."""

    body: Any  # http.client.HTTPResponse (or urllib's addinfourl for file: URLs)
    start: int  # byte offset of the body's first byte
    total: int | None  # full file size when the server says


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=1)


@weights_app.command("download")
def download_command(
    name: Annotated[str, typer.Argument(help="Weights to fetch (see `pipeline weights list`).")],
    weights_dir: WeightsDirOption = None,
    url: Annotated[str | None, typer.Option(help="Fetch from here instead.")] = None,
    manifest: ManifestOption = MANIFEST_PATH,
) -> None:
    """Download NAME into the weights folder, resuming a partial download."""
    folder = weights_dir or default_weights_dir()
    try:
        entry = lookup(name, load_manifest(manifest))
        path = download(entry, folder, url=url or entry.url, console=Console(stderr=True))
    except (UserError, DownloadError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{entry.name}: {path} verified")


@weights_app.command("list")
def list_command(
    weights_dir: WeightsDirOption = None,
    manifest: ManifestOption = MANIFEST_PATH,
) -> None:
    """Show each known weights file and whether it is present and valid."""
    folder = weights_dir or default_weights_dir()
    try:
        entries = load_manifest(manifest)
    except UserError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"weights folder: {folder}")
    for entry in entries.values():
        typer.echo(f"{entry.name}: {describe(entry, entry.path_in(folder))}")


def describe(entry: WeightsEntry, path: Path) -> str:
    """One line saying what is known about the file at `path`."""
    check = check_weights(path, entry)
    if not check.present:
        return (
            f"missing ({path}); run "
            f"`pipeline weights download {entry.name} --weights-dir {path.parent}`"
        )
    parts = [f"{check.size:,} bytes"]
    if check.size_ok is not None:
        parts.append("size ok" if check.size_ok else f"size WRONG (expected {entry.size:,})")
    if check.size_ok is not False:
        parts.append(check.hdf5_problem or f"HDF5 ok ({len(entry.layers)} layers checked)")
    if check.sha256_ok is not None:
        parts.append("sha256 ok" if check.sha256_ok else "sha256 WRONG")
    elif check.sha256:
        parts.append(f"sha256 {check.sha256} (manifest records none)")
    verdict = "valid" if check.ok else "INVALID"
    return f"{verdict}: {path}, " + ", ".join(parts)


def download(entry: WeightsEntry, weights_dir: Path, url: str, console: Console) -> Path:
    """Fetch `entry` into `weights_dir`, verify it and move it into place.

    Raises DownloadError when the transfer fails (the `.part` stays for a
    resume) and UserError when the finished file fails verification (the
    `.part` is deleted: resuming cannot fix it).
    """
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    final = entry.path_in(weights_dir)
    part = final.with_name(final.name + ".part")
    if check_weights(final, entry).ok:
        console.print(f"{entry.name}: {final} is already present and valid")
        return final
    have = part.stat().st_size if part.exists() else 0
    if entry.size is not None and have > entry.size:
        part.unlink()  # longer than the real file: cannot be a prefix of it
        have = 0
    if entry.size is None or have < entry.size:
        _fetch(url, part, have, entry.size, console)
    check = check_weights(part, entry)
    if not check.ok:
        part.unlink(missing_ok=True)
        raise UserError(
            f"{entry.name}: downloaded file failed verification ({check.problem}); "
            f"deleted it, nothing installed at {final}"
        )
    os.replace(part, final)  # atomic: the final name only ever holds a verified file
    return final


def _fetch(url: str, part: Path, have: int, size: int | None, console: Console) -> None:
    """Append the rest of `url` to `part` (which holds its first `have` bytes)."""
    response = _open(url, have)
    if response.start != have:
        console.print(f"server does not resume downloads: restarting from 0 (had {have:,} bytes)")
    total = response.total or size
    written = response.start
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    try:
        with (
            response.body,
            open(part, "ab" if response.start else "wb") as out,
            Progress(*columns, console=console, transient=True) as progress,
        ):
            task = progress.add_task(part.name, total=total, completed=written)
            while block := response.body.read(CHUNK):
                out.write(block)
                written += len(block)
                progress.update(task, completed=written)
    except (OSError, HTTPException) as exc:
        raise DownloadError(_interrupted(url, written, exc)) from None
    # urllib reports a connection closed early as a normal end of body.
    if total is not None and written < total:
        raise DownloadError(_interrupted(url, written, f"got {written:,} of {total:,} bytes"))


def _open(url: str, offset: int) -> _Response:
    """GET `url` from byte `offset`; falls back to the whole file when the
    server ignores the Range header."""
    request = urllib.request.Request(url, headers={"User-Agent": "repcoach-weights"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        body = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # asked past the end: restart cleanly
            return _open(url, 0)
        raise DownloadError(f"download from {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url}: {reason}") from None
    length = body.headers.get("Content-Length")
    if offset and body.status == 206:
        start, total = _content_range(body.headers.get("Content-Range", ""))
        if start == offset:
            return _Response(body, offset, total)
        body.close()
        return _open(url, 0)
    return _Response(body, 0, int(length) if length and length.isdigit() else None)


def _content_range(header: str) -> tuple[int | None, int | None]:
    """(first byte, full size) from `bytes 100-199/1000`; None where unknown."""
    try:
        unit, _, spec = header.partition(" ")
        span, _, full = spec.partition("/")
        return int(span.split("-")[0]), (int(full) if full.isdigit() else None)
    except ValueError:
        return None, None


def _interrupted(url: str, written: int, reason: object) -> str:
    return (
        f"download from {url} interrupted at {written:,} bytes ({reason}); "
        "run the same command again to resume"
    )
