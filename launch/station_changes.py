"""Stations added to and removed from a running pipeline (`pipeline source
add` and `remove`): the request a client sends on the supervisor's control
socket, and what the supervisor makes of it.

The supervisor owns the run's config: it checks a request, writes the
changed config into the run folder and answers. Capture follows that file
(it opens an added station's source, ends a removed one's stream); every
later stage learns of an added station from its frames and from the
end-of-stream messages that name it, so none needs telling.
"""

from __future__ import annotations

from pathlib import Path

from repcoach.common.config import FlowPolicy, PipelineConfig, Station
from repcoach.common.errors import UserError
from repcoach.common.messages import MessageError, encode_plain, short

ADD, REMOVE = "add-source", "remove-source"
MAX_FIELD_CHARS = 2048  # a source URL or path, an exercise name


def add_request(name: str, source: str, exercise: str = "") -> bytes:
    return encode_plain({"request": ADD, "name": name, "source": source, "exercise": exercise})


def remove_request(name: str) -> bytes:
    return encode_plain({"request": REMOVE, "name": name})


def is_station_request(body: object) -> bool:
    return isinstance(body, dict) and body.get("request") in (ADD, REMOVE)


def changed_config(config: PipelineConfig, body: dict) -> tuple[PipelineConfig, Station]:
    """The config after the request in `body` (`is_station_request`), and
    the station it added or removed. A malformed request raises
    MessageError (counted); one that cannot be done raises UserError (its
    line is the answer)."""
    name = _text(body, "name")
    if body["request"] == REMOVE:
        changed = config.without_station(name)
        return changed, changed.station(name)
    station = _new_station(config, name, _text(body, "source"), _text(body, "exercise"))
    return config.with_station(station), station


def _text(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
        raise MessageError("malformed", f"station request {key} {short(value)}")
    return value


def _new_station(config: PipelineConfig, name: str, source: str, exercise: str) -> Station:
    """The station a request asks for, with its flow policy: a camera or
    stream is live; a file is lossless, or played at its frame rate as a
    camera would be in a pipeline whose stations are all live (`--realtime`),
    whose sinks are not waited for."""
    from repcoach.stages.capture import source_kind
    from repcoach.stages.coaching import registry

    kind = source_kind(source.strip())
    if kind == "file":
        path = Path(source)
        if not path.is_absolute():
            raise UserError(f"give the video file's absolute path, not {source!r}")
        if not path.is_file():
            raise UserError(f"video file {source} does not exist on the pipeline's host")
    if exercise and exercise != "auto" and exercise not in registry().names():
        valid = ", ".join(registry().names())
        raise UserError(f"exercise {exercise!r} is not known; valid: auto, {valid}")
    live = kind in ("camera", "stream") or config.realtime or config.policy is FlowPolicy.LATEST
    policy = FlowPolicy.LATEST if live else FlowPolicy.LOSSLESS
    return Station(name, source.strip(), exercise, policy)
