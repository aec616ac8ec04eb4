"""Typed configuration of one pipeline run, shared by the launcher and every
stage process (written once as JSON into the run folder)."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path

from repcoach.common.atomic import write_json_atomic
from repcoach.common.endpoints import Topology
from repcoach.common.errors import UserError


class FlowPolicy(str, Enum):
    """How frames flow when a stage is slower than the source.

    LOSSLESS: files and rendered sources. Every frame is processed exactly
    once; slow stages push back up to capture (credits and bounded queues).
    LATEST: cameras and streams. Only the newest frame waits; stale frames are
    dropped and counted where they are found, so latency stays bounded.
    """

    LOSSLESS = "lossless"
    LATEST = "latest"


@dataclass(frozen=True)
class Station:
    """One source of a pipeline and the place it watches. Frames, ordering,
    tracking, coaching and summaries are kept apart per station."""

    name: str
    """What status, summaries and events call it (unique in the pipeline)."""
    source: str
    """What `--source` said: cameraN, a file path, an rtsp/http URL or synthetic:..."""
    exercise: str = ""
    """The exercise done here ('' = the pipeline's `exercise`)."""
    policy: FlowPolicy = FlowPolicy.LOSSLESS
    """How this station's frames flow: a file's every frame, or a camera's newest."""
    removed: bool = False
    """Taken out of the running pipeline (`pipeline source remove`). A run's
    stations are only ever added to, so a stage that learns of a station late
    still finds what it was."""


@dataclass(frozen=True)
class Strap:
    """A heart-rate strap or watch (Bluetooth LE Heart Rate Service) and
    whose heart it reads: a member's (wherever they are checked in), or a
    station's (the person training there)."""

    address: str
    """Its Bluetooth address, as `pipeline wearables scan` lists it."""
    member: str = ""
    station: str = ""


STRAP_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
MAX_STRAPS = 16


def make_straps(texts: list[str]) -> tuple[Strap, ...]:
    """Straps for `--strap` values: `ADDRESS=MEMBER` or `ADDRESS@STATION`."""
    straps = []
    for text in texts:
        address, sep, owner = text.partition("=")
        if not sep:
            address, sep, owner = text.partition("@")
        if not sep or not owner or not STRAP_ADDRESS.match(address):
            raise UserError(
                f"--strap {text!r}: give ADDRESS=MEMBER or ADDRESS@STATION, "
                "ADDRESS as `pipeline wearables scan` lists it (AA:BB:CC:DD:EE:FF)"
            )
        member, station = (owner, "") if "=" in text else ("", owner)
        straps.append(Strap(address.upper(), member, station))
    if len(straps) > MAX_STRAPS:
        raise UserError(f"{len(straps)} straps: one pipeline reads at most {MAX_STRAPS}")
    if len({s.address for s in straps}) < len(straps):
        raise UserError("a strap is given twice")
    return tuple(straps)


# Stations one pipeline serves at most over its run (removed ones count);
# also what any per-station table a peer's messages can grow is bounded by.
MAX_STATIONS = 64
STATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


def station_name(source: str) -> str:
    """A readable default name for a source: `camera0`, a file's stem, a
    stream's host, the synthetic exercise; characters outside the station
    name alphabet become `-`."""
    if "://" in source:
        text = source.split("://", 1)[1].split("@")[-1].split("/")[0].split(":")[0]
    elif source.startswith("synthetic:"):
        text = source.split(":", 1)[1].split(",")[0]
    else:
        text = Path(source).stem
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:32] or "station"
    return text if text[0].isalnum() else "s" + text[:31]


def make_stations(sources: list[str]) -> tuple[Station, ...]:
    """Stations for `--source` values: `NAME=SOURCE` names one (NAME of
    letters, digits, `-`, `_` and `.`), otherwise the name comes from the
    source (`station_name`)."""
    named = []
    for text in sources:
        name, sep, rest = text.partition("=")
        is_named = sep and STATION_NAME.match(name) and not name.startswith(("rtsp", "http"))
        named.append((name, rest) if is_named else (None, text))
    return name_stations(named)


def name_stations(sources: list[tuple[str | None, str]]) -> tuple[Station, ...]:
    """Stations for (name or None, source) pairs: a missing name comes from
    the source, made unique with `-2`, `-3`, ... Raises UserError for a bad
    name, a name given twice, or too many sources."""
    if len(sources) > MAX_STATIONS:
        raise UserError(f"{len(sources)} sources: one pipeline serves at most {MAX_STATIONS}")
    given = [name for name, _ in sources if name is not None]
    for name in given:
        if not STATION_NAME.match(name):
            raise UserError(f"station name {name!r}: use up to 32 letters, digits, '-', '_' or '.'")
        if given.count(name) > 1:
            raise UserError(f"station {name!r} is named twice")
    taken = set(given)
    stations = []
    for name, source in sources:
        if name is None:
            name = base = station_name(source)
            n = 2
            while name in taken:
                name, n = f"{base[:29]}-{n}", n + 1
            taken.add(name)
        stations.append(Station(name, source))
    return tuple(stations)


def station_session(session_id: str, station: str, stations: int) -> str:
    """The session id a station's events and history rows carry: the run's
    own with one station, the run's and the station's with several."""
    return session_id if stations < 2 else f"{session_id}.{station}"


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    """Pipeline name: picks the run folder, so several pipelines can run side by side."""
    stations: tuple[Station, ...]
    """Every source the pipeline reads, one station each (at least one)."""
    policy: FlowPolicy
    """The pipeline's flow policy: LOSSLESS while any station is (its results
    are then waited for all the way to the sinks), else LATEST. Each
    station's own is `policy_of`."""
    realtime: bool = False
    """Pace a file or synthetic source at its frame rate, as a camera would."""
    loop: bool = False
    """Play a file or synthetic source again from the start when it ends."""
    workers: int = 1
    """Number of segmentation worker processes."""
    gpus: tuple[str, ...] = ()
    """GPU ids; worker i sees only gpus[i % len(gpus)] via CUDA_VISIBLE_DEVICES."""
    segmenter: str = "blazepose"
    """Segmentation backend spec (blazepose, maskrcnn, passthrough:jitter_ms=LO-HI)."""
    joints: str = "blazepose"
    """Joint backend (blazepose, haar, none)."""
    exercise: str = "auto"
    """Exercise name, or auto to recognise it."""
    weights_dir: str = ""
    """Folder with model weights ('' = the project's weights/)."""
    max_age_s: float = 1.0
    """LATEST policy: a frame older than this when a stage picks it up is dropped."""
    prefetch: int = 2
    """Frames a segment worker may hold at once (1 = lowest latency)."""
    work_timeout_s: float = 120.0
    """A worker silent this long with frames in hand is presumed hung; its frames are re-sent."""
    stall_s: float = 60.0
    """Lossless: no frame moving through any stage this long ends the run as failed (0 = never)."""
    expect_sinks: int = 0
    """Sinks the launcher starts: the publisher waits for them before the first frame."""
    truth_path: str = ""
    """Synthetic sources: write the ground truth JSON here."""
    session_id: str = ""
    """Unique id of this run (time + random); event ids and history rows carry it."""
    profile: str = ""
    """Member the station's person is coached and recorded as ('' = a guest)."""
    level: str = ""
    """Strictness (beginner, intermediate, advanced); '' = the member's saved level."""
    history_db: str = ""
    """SQLite file of members, sessions and reps ('' = no history kept)."""
    checkin: bool = True
    """Look for members' check-in codes (QR) in the frames."""
    checkin_hold_s: float = 60.0
    """A checked-in person stays bound to their member until out of view this long."""
    ble: str = ""
    """The Bluetooth controller the straps are read through: a bumble transport
    (`usb:0`, `hci-socket:0`, `tcp-client:HOST:PORT`); '' = no wearables."""
    straps: tuple[Strap, ...] = ()
    topology: dict = field(default_factory=dict)

    @staticmethod
    def new_session_id() -> str:
        return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)

    def endpoints(self) -> Topology:
        return Topology.from_dict(self.topology)

    def station(self, name: str) -> Station | None:
        return next((s for s in self.stations if s.name == name), None)

    def policy_of(self, station: str) -> FlowPolicy:
        """The flow policy of `station`'s frames (the pipeline's for an unknown one)."""
        found = self.station(station)
        return self.policy if found is None else found.policy

    @property
    def station_names(self) -> tuple[str, ...]:
        """The stations the pipeline serves now (not those removed)."""
        return tuple(s.name for s in self.stations if not s.removed)

    def with_station(self, station: Station) -> PipelineConfig:
        """This config with `station` added to a running pipeline, or a
        UserError saying why it cannot be."""
        if not STATION_NAME.match(station.name):
            raise UserError(
                f"station name {station.name!r}: use up to 32 letters, digits, '-', '_' or '.'"
            )
        known = self.station(station.name)
        if known is not None:
            if known.removed:
                raise UserError(
                    f"station {station.name!r} was removed from this run; "
                    "add the new source under another name"
                )
            raise UserError(f"the pipeline already has a station {station.name!r}")
        if len(self.stations) >= MAX_STATIONS:
            raise UserError(
                f"the pipeline has had {MAX_STATIONS} stations this run, the most one run "
                "serves: start a new pipeline"
            )
        return replace(self, stations=(*self.stations, station))

    def without_station(self, name: str) -> PipelineConfig:
        """This config with station `name` removed, or a UserError saying why not."""
        if name not in self.station_names:
            listed = ", ".join(self.station_names)
            raise UserError(f"the pipeline has no station {name!r} (it has {listed})")
        if len(self.station_names) == 1:
            raise UserError(
                f"{name!r} is the pipeline's last station: stop the pipeline instead "
                "(Ctrl-C where it runs, or SIGTERM)"
            )
        stations = tuple(replace(s, removed=True) if s.name == name else s for s in self.stations)
        return replace(self, stations=stations)

    def session_of(self, station: str) -> str:
        return station_session(self.session_id, station, len(self.stations))

    def to_json(self) -> str:
        data = asdict(self)
        data["policy"] = self.policy.value
        for station in data["stations"]:
            station["policy"] = FlowPolicy(station["policy"]).value
        return json.dumps(data, indent=2)

    def save(self, path: Path) -> None:
        write_json_atomic(path, json.loads(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> PipelineConfig:
        data = json.loads(Path(path).read_text())
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> PipelineConfig:
        """From `to_json`'s fields (the run folder's copy, or a remote pipeline's CONFIG)."""
        data = dict(data)
        data["policy"] = FlowPolicy(data["policy"])
        data["gpus"] = tuple(data["gpus"])
        data["stations"] = tuple(
            Station(**{**s, "policy": FlowPolicy(s["policy"])}) for s in data["stations"]
        )
        data["straps"] = tuple(Strap(**s) for s in data.get("straps", ()))
        return cls(**data)

    def gpu_for_worker(self, index: int) -> str | None:
        return self.gpus[index % len(self.gpus)] if self.gpus else None
