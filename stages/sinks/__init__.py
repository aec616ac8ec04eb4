"""Feedback sinks: processes that subscribe to a pipeline's results."""

from __future__ import annotations

from pathlib import Path

from repcoach.common.errors import UserError
from repcoach.common.specs import Spec

SINK_KINDS = ("console", "jsonl", "summary")


def check_writable(path: Path, what: str) -> Path:
    """Fail early, in one line, if `path` cannot be written."""
    path = path.expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file path")
    if not folder.is_dir():
        raise UserError(f"{what} {path}: folder {folder} does not exist")
    probe = folder / f".{path.name}.probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{what} {path} is not writable ({exc.strerror})") from None
    return path


def check_sink(text: str) -> None:
    """Validate a sink spec in one line, creating nothing."""
    make_sink(text, build=False)


def make_sink(text: str, build: bool = True):
    """Build a sink from `KIND[:path=...]` (console, jsonl:path=F, summary:path=F)."""
    spec = Spec.parse(text, "--sink")
    if spec.name == "console":
        from repcoach.stages.sinks.console import ConsoleSink

        spec.check_known({"plain"})
        return ConsoleSink(plain=spec.options.get("plain") == "1") if build else None
    if spec.name == "jsonl":
        from repcoach.stages.sinks.jsonl import JsonlSink

        spec.check_known({"path", "frames"})
        if "path" not in spec.options:
            raise UserError("jsonl sink needs a file: --sink jsonl:path=events.jsonl")
        path = check_writable(Path(spec.options["path"]), "jsonl sink file")
        return JsonlSink(path, every_frame=spec.options.get("frames") == "1") if build else None
    if spec.name == "summary":
        from repcoach.stages.sinks.summary import SummarySink

        spec.check_known({"path"})
        if "path" not in spec.options:
            raise UserError("summary sink needs a file: --summary PATH")
        path = check_writable(Path(spec.options["path"]), "summary file")
        return SummarySink(path) if build else None
    raise UserError(f"unknown sink {spec.name!r}; valid: {', '.join(SINK_KINDS)}")
