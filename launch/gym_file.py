"""`pipeline up --config gym.toml`: a gym's stations in one file, read with
the standard library's TOML parser.

    name = "gym"                 # the pipeline's name (as --name)
    workers = 2                  # as --workers (default: one per core, up to 4)
    exercise = "auto"            # every station's, unless a station says
    realtime = false             # as --realtime: play files as cameras
    summary = "summary.json"     # as --summary: every station's, in one file
    sinks = ["jsonl:path=events.jsonl"]   # as --sink, serving every station
    checkin_hold_s = 60          # as --checkin-hold: a check-in ends out of view this long
    ble = "usb:0"                # as --ble: the Bluetooth controller for heart-rate straps

    [[station]]
    name = "rack1"               # what status, summaries and events call it
    source = "rtsp://10.0.0.21/stream1"
    exercise = "squat"
    sinks = ["video:path=rack1.mp4"]      # this station's alone

    [[station]]
    name = "door"
    source = "camera0"

    [[strap]]                    # as --strap: a member's, or a station's
    address = "C4:2F:90:11:22:33"
    member = "alice"             # or: station = "rack1"

A key the file does not know is an error in one line, as is a wrong type.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

from repcoach.common.config import Station, name_stations
from repcoach.common.errors import UserError

MAX_WORKERS = 64  # as --workers
_TOP = {
    "name": str,
    "workers": int,
    "exercise": str,
    "realtime": bool,
    "summary": str,
    "checkin_hold_s": float,
    "ble": str,
}
_STRAP = {"address": str, "member": str, "station": str}
_STATION = {"name": str, "source": str, "exercise": str}
# Keys read apart from the plain ones above (lists, checked where they are read).
_TOP_LISTS, _STATION_LISTS = {"sinks", "station", "strap"}, {"sinks"}


@dataclass(frozen=True)
class GymFile:
    stations: tuple[Station, ...]
    name: str | None = None
    workers: int | None = None
    exercise: str | None = None
    realtime: bool | None = None
    summary: Path | None = None
    checkin_hold_s: float | None = None
    ble: str | None = None
    straps: tuple[str, ...] = ()
    """As `--strap` says them: ADDRESS=MEMBER or ADDRESS@STATION."""
    sinks: tuple[tuple[str, str | None], ...] = ()
    """(`--sink` text, the station it serves alone or None for all)."""


def _checked(table: dict, kinds: dict[str, type], lists: set[str], where: str) -> None:
    """`table`'s plain keys are each of their type; UserError for a key
    neither in `kinds` nor in `lists`."""
    unknown = set(table) - set(kinds) - lists
    if unknown:
        valid = sorted({*kinds, *lists})
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {valid}")
    for key, kind in kinds.items():
        value = table.get(key)
        fits = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if key in table and (not fits or isinstance(value, bool) and kind is not bool):
            raise UserError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")


def _sinks(table: dict, where: str) -> list[str]:
    sinks = table.get("sinks", [])
    if not isinstance(sinks, list) or not all(isinstance(s, str) for s in sinks):
        raise UserError(f'{where}: sinks must be a list of texts like "jsonl:path=events.jsonl"')
    return sinks


def _straps(tables: object, where: str) -> tuple[str, ...]:
    """Each [[strap]] as `--strap` would say it."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UserError(f'{where}: give each strap as [[strap]] with address = "..."')
    texts = []
    for number, table in enumerate(tables, 1):
        here = f"{where}, strap {number}"
        _checked(table, _STRAP, set(), here)
        owners = [k for k in ("member", "station") if k in table]
        if "address" not in table or len(owners) != 1:
            raise UserError(f"{here}: give its address and either member or station")
        mark = "=" if owners[0] == "member" else "@"
        texts.append(f"{table['address']}{mark}{table[owners[0]]}")
    return tuple(texts)


def read_gym_file(path: Path) -> GymFile:
    """The stations and options in `path`; UserError in one line if it is unreadable."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"--config {path}: cannot read it ({error.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"--config {path} is not valid TOML: {error}") from None
    where = f"--config {path}"
    _checked(data, _TOP, _TOP_LISTS, where)
    if not 0 <= data.get("workers", 1) <= MAX_WORKERS:
        raise UserError(f"{where}: workers must be 0 to {MAX_WORKERS}, got {data['workers']}")
    if not 1 <= data.get("checkin_hold_s", 60) <= 86400:
        raise UserError(f"{where}: checkin_hold_s must be 1 to 86400 seconds")
    tables = data.get("station", [])
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise UserError(f'{where}: give each station as [[station]] with source = "..."')
    for number, table in enumerate(tables, 1):
        _checked(table, _STATION, _STATION_LISTS, f"{where}, station {number}")
        if "source" not in table:
            raise UserError(f'{where}, station {number}: needs source = "cameraN, a file or a URL"')
    named = name_stations([(t.get("name"), t["source"]) for t in tables])
    stations = tuple(
        dataclasses.replace(station, exercise=table.get("exercise", ""))
        for station, table in zip(named, tables, strict=True)
    )
    sinks: list[tuple[str, str | None]] = [(text, None) for text in _sinks(data, where)]
    for station, table in zip(stations, tables, strict=True):
        sinks += [(text, station.name) for text in _sinks(table, f"{where}, {station.name}")]
    return GymFile(
        stations=stations,
        name=data.get("name"),
        workers=data.get("workers"),
        exercise=data.get("exercise"),
        realtime=data.get("realtime"),
        summary=Path(data["summary"]) if "summary" in data else None,
        checkin_hold_s=data.get("checkin_hold_s"),
        ble=data.get("ble"),
        straps=_straps(data.get("strap", []), where),
        sinks=tuple(sinks),
    )
