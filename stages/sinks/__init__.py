"""Feedback sinks: processes that subscribe to a pipeline's results.

Each sink kind is a module here with `from_spec(spec, build) -> Sink | None`
(the factory of `repcoach.common.registry`): it checks the kind's options in
one line (`build=False` creates nothing, so `pipeline up` can validate every
sink before starting any process) and builds the sink. Adding a sink kind
means adding a module and a line below.
"""

from __future__ import annotations

from pathlib import Path

from repcoach.common.errors import UserError
from repcoach.common.registry import Registry
from repcoach.common.specs import Spec

SINKS = Registry(
    "sink",
    {
        kind: f"repcoach.stages.sinks.{kind}:from_spec"
        for kind in ("console", "jsonl", "summary", "voice", "video", "webhook", "history", "web")
    },
)
SINK_KINDS = SINKS.names


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


def required_path(spec: Spec, what: str, example: str) -> Path:
    """The writable file a sink's `path=` option names."""
    if "path" not in spec.options:
        raise UserError(f"{spec.name} sink needs a file: {example}")
    return check_writable(Path(spec.options["path"]), what)


# The option any sink takes: serve this station alone (a pipeline with several).
STATION_OPTION = "station"


def station_of(spec: Spec, stations: tuple[str, ...]) -> str | None:
    """The station a sink serves alone, or None for every station. Raises
    UserError for a station the pipeline does not have."""
    station = spec.options.get(STATION_OPTION)
    if station is None:
        return None
    if station not in stations:
        raise UserError(
            f"--sink {spec.name}: station={station!r} is not one of this pipeline's "
            f"stations ({', '.join(stations)})"
        )
    return station


def sink_label(spec: Spec) -> str:
    """`jsonl`, or `history@door` for a sink serving station door alone."""
    station = spec.options.get(STATION_OPTION)
    return f"{spec.name}@{station}" if station else spec.name


def check_sink(spec: Spec) -> None:
    """Validate a sink's options in one line, creating nothing."""
    make_sink(spec, build=False)


def resolve_spec(text: str) -> str:
    """`KIND:@FILE` -> `KIND:<the options in FILE>`; any other spec as it is.
    Options that hold secrets (a webhook URL with a token) can so stay off
    command lines and shell histories."""
    kind, _, rest = text.partition(":")
    if not rest.startswith("@"):
        return text
    path = Path(rest[1:]).expanduser()
    try:
        options = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"--sink {kind}:@{path}: cannot read the options file ({reason})") from None
    if options.startswith(f"{kind}:"):
        options = options[len(kind) + 1 :]
    return f"{kind}:{options}"


def parse_sink(text: str) -> Spec:
    """A `--sink` as typed: `KIND[:key=value,...]`, e.g. `jsonl:path=events.jsonl`,
    or `KIND:@FILE` with the options in FILE. Parsed once, here; the
    processes it reaches get the parsed options (`Spec.save`)."""
    return Spec.parse(resolve_spec(text), "--sink", secret=True)


def make_sink(spec: Spec | str, build: bool = True):
    """Build a sink from its parsed options (or from a spec as typed)."""
    if isinstance(spec, str):
        spec = parse_sink(spec)
    options = {k: v for k, v in spec.options.items() if k != STATION_OPTION}
    return SINKS.factory(spec.name)(Spec(spec.name, options), build)
