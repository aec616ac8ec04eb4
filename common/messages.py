"""Every message that crosses a socket, defined once.

Wire layout (schema version `SCHEMA_VERSION`): a ZeroMQ multipart message

    part 0   msgpack map  {"v": SCHEMA_VERSION, "type": <kind>, ...fields}
    part 1   raw pixels   only for a `FramePacket` whose header says "px": true;
                          height*width*3 bytes, BGR24, row-major, sent zero-copy

Kinds: "frame" (`FramePacket`, which carries the frame metadata and whatever
the stages have attached so far: persons, joints, scores, events), "eos"
(`EndOfStream`), "state" (`SessionState`, the last-value cache for sinks) and
"report" (`StageReport`, a stage's counters for `pipeline status`).

`decode()` validates everything it reads and raises `MessageError` with a short
`kind` ("malformed", "truncated", "wrong-version", "unknown-type") so a stage
can count and drop a bad message instead of crashing. It is total: whatever
bytes arrive, it returns a message or raises `MessageError`, never anything
else, and what a peer sent appears in the error text only truncated
(`short()`). Everything a message may carry is bounded by the message itself:
at most `MAX_ITEMS` persons, joints, scores or events per frame, boxes and
masks within the frame they belong to (plus `BOX_MARGIN` of its size).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import reprlib
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from repcoach.common.landmarks import NUM_LANDMARKS

SCHEMA_VERSION = 4
PIXEL_FORMAT = "bgr24"
# Per frame: persons, joints, scores and events each; angles per score;
# counters per stage report.
MAX_ITEMS = 256
MAX_NAMES = 64
MAX_NAME_CHARS = 64
# A person's box may reach this share of the frame's size past its edges (a
# crop around someone at the edge); its mask covers the box, so it is bounded
# by the frame too.
BOX_MARGIN = 0.5
MAX_COLOUR_BINS = 64  # per body part, in a person's clothing colour histograms

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = 40
_REPR.maxother = 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4


def short(value: Any) -> str:
    """A bounded repr of something a peer sent (never its whole nesting)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a repr that fails is no reason to fail the caller
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


class MessageError(ValueError):
    """A message that cannot be decoded; `kind` names the failure class."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


# --- field readers: every one raises MessageError instead of KeyError/TypeError


def _field(d: dict, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise MessageError("malformed", f"{where} lacks field {key!r}")
    value = d[key]
    if types is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # an int beyond float's range raises OverflowError
    if not isinstance(value, types) or isinstance(value, bool) and types is not bool:
        raise MessageError(
            "malformed", f"{where}.{key} is {type(value).__name__}, expected {types}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise MessageError("malformed", f"{where}.{key} is {value}")
    return value


MAX_STATION_CHARS = 64


def _station(d: dict, where: str) -> str:
    station = _field(d, "stn", str, where)
    if len(station) > MAX_STATION_CHARS:
        raise MessageError("malformed", f"{where}.stn of {len(station)} characters")
    return station


def _bounded_text(d: dict, key: str, where: str) -> str:
    value = _field(d, key, str, where)
    if len(value) > MAX_NAME_CHARS:
        raise MessageError("malformed", f"{where}.{key} of {len(value)} characters")
    return value


def _rr_ms(d: dict) -> tuple[int, ...]:
    value = d.get("rr") or []  # absent from a peer before heart rate had RR intervals
    if (
        not isinstance(value, list)
        or len(value) > MAX_RR
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65_000 for v in value)
    ):
        raise MessageError("malformed", f"score.rr must be up to {MAX_RR} intervals (ms)")
    return tuple(value)


def _codes(d: dict) -> tuple:
    value = _field(d, "codes", list, "frame")
    if len(value) > MAX_CODES:
        raise MessageError("malformed", f"frame.codes has {len(value)} entries (max {MAX_CODES})")
    return tuple(ShownCode.from_wire(c) for c in value)


def _station_names(d: dict, key: str, where: str) -> tuple[str, ...]:
    """A list of at most `MAX_NAMES` station names."""
    value = _field(d, key, list, where)
    if len(value) > MAX_NAMES or not all(
        isinstance(name, str) and 0 < len(name) <= MAX_STATION_CHARS for name in value
    ):
        raise MessageError("malformed", f"{where}.{key} must list up to {MAX_NAMES} station names")
    return tuple(value)


def _items(d: dict, key: str, where: str) -> list:
    """A list field of at most `MAX_ITEMS` entries."""
    value = _field(d, key, list, where)
    if len(value) > MAX_ITEMS:
        raise MessageError("malformed", f"{where}.{key} has {len(value)} entries (max {MAX_ITEMS})")
    return value


def _counters(d: dict, key: str, where: str) -> dict[str, int]:
    """A map of at most `MAX_NAMES` short names to integer counts."""
    value = _field(d, key, dict, where)
    if len(value) > MAX_NAMES or not all(
        isinstance(k, str)
        and len(k) <= MAX_NAME_CHARS
        and isinstance(v, int)
        and not isinstance(v, bool)
        and 0 <= v < 2**63
        for k, v in value.items()
    ):
        raise MessageError("malformed", f"{where}.{key} must map short names to counts")
    return value


def _optional(d: dict, key: str, types: type | tuple[type, ...], where: str) -> Any:
    return None if d.get(key) is None else _field(d, key, types, where)


def _array(raw: Any, dtype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    if not isinstance(raw, bytes):
        raise MessageError("malformed", f"{where} is not bytes")
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise MessageError("truncated", f"{where} has {len(raw)} bytes, expected {expected}")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if not np.isfinite(array).all():
        raise MessageError("malformed", f"{where} holds non-finite values")
    return array


# --- frame metadata


@dataclass(frozen=True)
class FrameMeta:
    """One captured frame's identity and timing.

    `seq` counts every frame read from the source (so a gap means a drop);
    `prev_seq` is the seq of the frame dispatched just before this one (-1 for
    the first), which lets the re-order buffer release frames without
    guessing. `pts` is media time in seconds (file position, or seconds since
    a live source opened) and is what tempo is measured in. `chunk` numbers
    the run of consecutive frames one segment worker handles from a fresh
    start (see `repcoach.common.chunks`); -1 for live frames, never chunked.
    `t_mono_ns` and `t_wall` are when capture read the frame, on its
    monotonic and wall clocks; `clock` names the machine whose monotonic
    clock that is (see `repcoach.common.clock`).
    """

    source_id: str
    seq: int
    prev_seq: int
    t_mono_ns: int
    t_wall: float
    pts: float
    width: int
    height: int
    pixel_format: str = PIXEL_FORMAT
    total: int = 0  # frames in the source when known (files), else 0
    chunk: int = -1
    clock: str = ""  # the machine whose monotonic clock stamped t_mono_ns
    station: str = ""  # the station (source) of a pipeline with several; seq counts per station

    def to_wire(self) -> dict:
        return {
            "src": self.source_id,
            "seq": self.seq,
            "prev": self.prev_seq,
            "tm": self.t_mono_ns,
            "tw": self.t_wall,
            "pts": self.pts,
            "w": self.width,
            "h": self.height,
            "fmt": self.pixel_format,
            "total": self.total,
            "chunk": self.chunk,
            "clk": self.clock,
            "stn": self.station,
        }

    @classmethod
    def from_wire(cls, d: Any) -> FrameMeta:
        if not isinstance(d, dict):
            raise MessageError("malformed", "frame meta is not a map")
        meta = cls(
            source_id=_field(d, "src", str, "meta"),
            seq=_field(d, "seq", int, "meta"),
            prev_seq=_field(d, "prev", int, "meta"),
            t_mono_ns=_field(d, "tm", int, "meta"),
            t_wall=_field(d, "tw", float, "meta"),
            pts=_field(d, "pts", float, "meta"),
            width=_field(d, "w", int, "meta"),
            height=_field(d, "h", int, "meta"),
            pixel_format=_field(d, "fmt", str, "meta"),
            total=_field(d, "total", int, "meta"),
            chunk=_field(d, "chunk", int, "meta"),
            clock=_field(d, "clk", str, "meta"),
            station=_station(d, "meta"),
        )
        if meta.pixel_format != PIXEL_FORMAT:
            raise MessageError("malformed", f"pixel format {meta.pixel_format!r} unsupported")
        if len(meta.clock) > 64:
            raise MessageError("malformed", f"clock id of {len(meta.clock)} characters")
        if not (0 < meta.width <= 16384 and 0 < meta.height <= 16384):
            raise MessageError("malformed", f"frame size {meta.width}x{meta.height}")
        return meta


# --- persons, joints, scores, feedback


@dataclass(frozen=True)
class PersonInstance:
    """A person found in a frame.

    `box` is (x0, y0, x1, y1) in pixels. `mask` is a boolean array covering the
    integer box `mask_box()` only (cropping keeps it small); on the wire it is
    bit-packed. `track_id` is -1 until the tracker assigns one. `landmarks`
    are set when the segmentation backend found them in the same pass
    (BlazePose does); the joints stage then tracks and smooths them instead
    of running a landmark model of its own. `colours`: the clothing colour
    histograms the tracker compares (2 body parts x bins, rows summing to 1
    or NaN), measured where the pixels are, so they need not travel on.
    """

    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray | None = None
    track_id: int = -1
    landmarks: PersonJoints | None = None
    colours: np.ndarray | None = None

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.box
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"box must have x1>x0 and y1>y0, got {self.box}")
        if self.mask is not None:
            mx0, my0, mx1, my1 = self.mask_box()
            expected = (my1 - my0, mx1 - mx0)
            if self.mask.shape != expected or self.mask.dtype != bool:
                raise ValueError(
                    f"mask must be bool {expected} (the box crop), "
                    f"got {self.mask.dtype} {self.mask.shape}"
                )

    def mask_box(self) -> tuple[int, int, int, int]:
        """The integer pixel rectangle the mask covers."""
        x0, y0, x1, y1 = self.box
        return (math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))

    def full_mask(self, width: int, height: int) -> np.ndarray:
        """The mask pasted into a full-frame boolean image."""
        out = np.zeros((height, width), dtype=bool)
        if self.mask is None:
            return out
        mx0, my0, mx1, my1 = self.mask_box()
        cx0, cy0 = max(mx0, 0), max(my0, 0)
        cx1, cy1 = min(mx1, width), min(my1, height)
        if cx1 > cx0 and cy1 > cy0:
            out[cy0:cy1, cx0:cx1] = self.mask[cy0 - my0 : cy1 - my0, cx0 - mx0 : cx1 - mx0]
        return out

    def with_track(self, track_id: int) -> PersonInstance:
        return dataclasses.replace(self, track_id=track_id)

    def to_wire(self) -> dict:
        wire: dict[str, Any] = {"box": list(self.box), "score": self.score, "track": self.track_id}
        if self.mask is not None:
            wire["mask"] = np.packbits(self.mask, axis=None).tobytes()
        if self.landmarks is not None:
            wire["landmarks"] = self.landmarks.to_wire()
        if self.colours is not None:
            wire["colours"] = self.colours.astype("<f8").tobytes()
        return wire

    @classmethod
    def from_wire(cls, d: Any, frame: tuple[int, int] | None = None) -> PersonInstance:
        """`frame` (width, height): the frame the person was found in; the
        box must lie within it (give or take `BOX_MARGIN`)."""
        if not isinstance(d, dict):
            raise MessageError("malformed", "person is not a map")
        box = _field(d, "box", list, "person")
        if len(box) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in box
        ):
            raise MessageError("malformed", "person.box must be 4 numbers")
        x0, y0, x1, y1 = (float(v) for v in box)
        limit = 1e5
        if not (x1 > x0 and y1 > y0) or not max(abs(x0), abs(y0), abs(x1), abs(y1)) <= limit:
            raise MessageError("malformed", f"person.box {short(box)} is not a box")
        if frame is not None:
            width, height = frame
            mx, my = BOX_MARGIN * width, BOX_MARGIN * height
            if x0 < -mx or y0 < -my or x1 > width + mx or y1 > height + my:
                raise MessageError(
                    "malformed", f"person.box {short(box)} lies outside the {width}x{height} frame"
                )
        mask = None
        packed = _optional(d, "mask", bytes, "person")
        if packed is not None:
            w, h = math.ceil(x1) - math.floor(x0), math.ceil(y1) - math.floor(y0)
            if frame is None and w * h > 16384 * 16384:
                raise MessageError("malformed", f"person.mask of {w}x{h} is too large")
            if len(packed) != (w * h + 7) // 8:
                raise MessageError("truncated", f"person.mask has {len(packed)} bytes for {w}x{h}")
            bits = np.unpackbits(np.frombuffer(packed, np.uint8), count=w * h)
            mask = bits.reshape(h, w).astype(bool)
        landmarks = _optional(d, "landmarks", dict, "person")
        colours = _optional(d, "colours", bytes, "person")
        return cls(
            box=(x0, y0, x1, y1),
            score=_field(d, "score", float, "person"),
            mask=mask,
            track_id=_field(d, "track", int, "person"),
            landmarks=None if landmarks is None else PersonJoints.from_wire(landmarks),
            colours=None if colours is None else _histograms(colours),
        )


def _histograms(raw: bytes) -> np.ndarray:
    """Two rows of float64 shares: each in [0, 1] or NaN (a part not seen)."""
    if len(raw) % 16 or not 16 <= len(raw) <= 2 * MAX_COLOUR_BINS * 8:
        raise MessageError("malformed", f"person.colours has {len(raw)} bytes")
    shares = np.frombuffer(raw, "<f8").reshape(2, -1)
    if not ((shares >= 0.0) & (shares <= 1.0) | np.isnan(shares)).all():
        raise MessageError("malformed", "person.colours holds values outside [0, 1]")
    return shares


@dataclass(frozen=True)
class PersonJoints:
    """Landmarks of one tracked person (index with `Landmark`).

    `image_xy` (33, 2) pixels; `visibility` (33,) in [0, 1]; `world_xyz`
    (33, 3) metres, origin between the hips, as BlazePose gives them.
    """

    track_id: int
    image_xy: np.ndarray
    visibility: np.ndarray
    world_xyz: np.ndarray

    def __post_init__(self) -> None:
        for name, shape in (
            ("image_xy", (NUM_LANDMARKS, 2)),
            ("visibility", (NUM_LANDMARKS,)),
            ("world_xyz", (NUM_LANDMARKS, 3)),
        ):
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {value.shape}")

    def to_wire(self) -> dict:
        return {
            "track": self.track_id,
            "xy": self.image_xy.astype("<f4").tobytes(),
            "vis": self.visibility.astype("<f4").tobytes(),
            "world": self.world_xyz.astype("<f4").tobytes(),
        }

    @classmethod
    def from_wire(cls, d: Any) -> PersonJoints:
        if not isinstance(d, dict):
            raise MessageError("malformed", "joints is not a map")
        return cls(
            track_id=_field(d, "track", int, "joints"),
            image_xy=_array(d.get("xy"), "<f4", (NUM_LANDMARKS, 2), "joints.xy"),
            visibility=_array(d.get("vis"), "<f4", (NUM_LANDMARKS,), "joints.vis"),
            world_xyz=_array(d.get("world"), "<f4", (NUM_LANDMARKS, 3), "joints.world"),
        )


# Phases of someone in view but not coached (no exercise): not training,
# being recognised (auto mode), or a mirror reflection of someone else.
PHASE_IDLE, PHASE_RECOGNISING, PHASE_REFLECTION = "idle", "recognising", "reflection"


@dataclass(frozen=True)
class PersonScore:
    """Per-person coaching state after a frame: angles and rep progress.
    `phase` is the exercise's phase word, or one of the PHASE_ words above."""

    track_id: int
    angles: dict[str, float] = field(default_factory=dict)
    exercise: str | None = None
    reps: int = 0
    partial_reps: int = 0
    phase: str = ""
    form_score: float | None = None
    last_cue: str | None = None
    member: str = ""  # who checked in as this person ('' = a guest)
    heart_rate: int | None = None  # beats per minute from their strap (None: none, or a gap)
    rr_ms: tuple[int, ...] = ()  # the RR intervals (ms) the strap sent with that reading

    def to_wire(self) -> dict:
        return {
            "member": self.member,
            "hr": self.heart_rate,
            "rr": list(self.rr_ms),
            "track": self.track_id,
            "angles": self.angles,
            "exercise": self.exercise,
            "reps": self.reps,
            "partial": self.partial_reps,
            "phase": self.phase,
            "form": self.form_score,
            "cue": self.last_cue,
        }

    @classmethod
    def from_wire(cls, d: Any) -> PersonScore:
        if not isinstance(d, dict):
            raise MessageError("malformed", "score is not a map")
        angles = _field(d, "angles", dict, "score")
        if len(angles) > MAX_NAMES or not all(
            isinstance(k, str)
            and len(k) <= MAX_NAME_CHARS
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
            for k, v in angles.items()
        ):
            raise MessageError("malformed", "score.angles must map names to numbers")
        return cls(
            track_id=_field(d, "track", int, "score"),
            angles={k: float(v) for k, v in angles.items()},
            exercise=_optional(d, "exercise", str, "score"),
            reps=_field(d, "reps", int, "score"),
            partial_reps=_field(d, "partial", int, "score"),
            phase=_field(d, "phase", str, "score"),
            form_score=_optional(d, "form", float, "score"),
            last_cue=_optional(d, "cue", str, "score"),
            member=_bounded_text(d, "member", "score"),
            heart_rate=_optional(d, "hr", int, "score"),
            rr_ms=_rr_ms(d),
        )


class _Vocabulary(str, enum.Enum):
    """A closed set of words that travel as plain strings (on the wire, in
    JSON, in SQLite) and compare equal to them."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str, where: str):
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            shown = reprlib.repr(value)
            raise MessageError("malformed", f"{where} {shown} unknown (valid: {valid})") from None


class EventKind(_Vocabulary):
    """What a feedback event reports: the vocabulary sinks and apps see."""

    REP = "rep"
    PARTIAL_REP = "partial_rep"
    CUE = "cue"
    VISIBILITY = "visibility"
    HOLD = "hold"
    EXERCISE = "exercise"
    PERSON_ENTER = "person_enter"
    PERSON_LEAVE = "person_leave"
    CHECK_IN = "check_in"  # a person showed a member's code: coached and recorded as them
    CHECK_OUT = "check_out"  # they left view for longer than the check-in holds


class Severity(_Vocabulary):
    """How much an event matters, least first."""

    INFO = "info"
    WARN = "warn"
    FAULT = "fault"


@dataclass(frozen=True)
class FeedbackEvent:
    """Something worth telling a person or an app: a rep, a cue, a person
    entering. `event_id` is unique per session so receivers can de-duplicate.
    """

    event_id: str
    kind: EventKind
    track_id: int
    seq: int
    pts: float
    text: str
    severity: Severity = Severity.INFO
    data: dict = field(default_factory=dict)

    def to_wire(self) -> dict:
        return {
            "id": self.event_id,
            "kind": str(self.kind),
            "track": self.track_id,
            "seq": self.seq,
            "pts": self.pts,
            "text": self.text,
            "sev": str(self.severity),
            "data": self.data,
        }

    @property
    def person(self) -> int:
        """The person's first track id: stable when the tracker lost them and
        the coach handed their state to a new track (`data["tracks"]`)."""
        tracks = self.data.get("tracks")
        return int(tracks[0]) if tracks else self.track_id

    @classmethod
    def from_wire(cls, d: Any) -> FeedbackEvent:
        if not isinstance(d, dict):
            raise MessageError("malformed", "event is not a map")
        return cls(
            event_id=_field(d, "id", str, "event"),
            kind=EventKind.parse(_field(d, "kind", str, "event"), "event kind"),
            track_id=_field(d, "track", int, "event"),
            seq=_field(d, "seq", int, "event"),
            pts=_field(d, "pts", float, "event"),
            text=_field(d, "text", str, "event"),
            severity=Severity.parse(_field(d, "sev", str, "event"), "event severity"),
            data=_field(d, "data", dict, "event"),
        )


# --- the messages themselves


MAX_CODES = 4
MAX_CODE_CHARS = 256


@dataclass(frozen=True)
class ShownCode:
    """A check-in code seen in a frame: its text and its centre (pixels)."""

    text: str
    x: float
    y: float

    def to_wire(self) -> list:
        return [self.text, self.x, self.y]

    @classmethod
    def from_wire(cls, d: Any) -> ShownCode:
        if not (isinstance(d, list) and len(d) == 3 and isinstance(d[0], str)):
            raise MessageError("malformed", "code is not [text, x, y]")
        if len(d[0]) > MAX_CODE_CHARS:
            raise MessageError("malformed", f"code of {len(d[0])} characters")
        x, y = (_field({"v": v}, "v", float, "code") for v in d[1:])
        return cls(d[0], x, y)


@dataclass(frozen=True)
class FramePacket:
    """A frame and everything the stages have attached to it so far.

    A `tombstone` packet stands for a frame a stage dropped as stale: it keeps
    the frame's place in the order (so the re-order buffer never waits for it)
    and carries no pixels. The score stage's last result before end of stream
    may also be a tombstone: it carries only the events that closed then (a
    hold under way), stamped with the last frame, and is not a frame itself.
    """

    meta: FrameMeta
    pixels: np.ndarray | None = None
    persons: tuple[PersonInstance, ...] = ()
    joints: tuple[PersonJoints, ...] = ()
    scores: tuple[PersonScore, ...] = ()
    events: tuple[FeedbackEvent, ...] = ()
    tombstone: bool = False
    codes: tuple[ShownCode, ...] = ()  # check-in codes the segment worker saw

    def __post_init__(self) -> None:
        if self.pixels is not None:
            expected = (self.meta.height, self.meta.width, 3)
            if self.pixels.shape != expected or self.pixels.dtype != np.uint8:
                raise ValueError(
                    f"pixels must be uint8 {expected}, got {self.pixels.dtype} {self.pixels.shape}"
                )

    def header(self, with_pixels: bool = True) -> dict:
        return {
            "v": SCHEMA_VERSION,
            "type": "frame",
            "meta": self.meta.to_wire(),
            "px": with_pixels and self.pixels is not None,
            "persons": [p.to_wire() for p in self.persons],
            "joints": [j.to_wire() for j in self.joints],
            "scores": [s.to_wire() for s in self.scores],
            "events": [e.to_wire() for e in self.events],
            "tomb": self.tombstone,
            "codes": [c.to_wire() for c in self.codes],
        }

    def to_wire(self, with_pixels: bool = True) -> list:
        head = msgpack.packb(self.header(with_pixels), use_bin_type=True)
        if with_pixels and self.pixels is not None:
            return [head, np.ascontiguousarray(self.pixels)]
        return [head]

    @classmethod
    def from_header(cls, d: dict, pixel_part: Any | None) -> FramePacket:
        meta = FrameMeta.from_wire(d.get("meta"))
        pixels = None
        if _field(d, "px", bool, "frame"):
            if pixel_part is None:
                raise MessageError("truncated", "frame header promises pixels, none sent")
            buf = memoryview(pixel_part)
            expected = meta.width * meta.height * 3
            if buf.nbytes != expected:
                raise MessageError(
                    "truncated", f"pixel buffer has {buf.nbytes} bytes, expected {expected}"
                )
            pixels = np.frombuffer(buf, np.uint8).reshape(meta.height, meta.width, 3)
        size = (meta.width, meta.height)
        return cls(
            meta=meta,
            pixels=pixels,
            persons=tuple(PersonInstance.from_wire(p, size) for p in _items(d, "persons", "frame")),
            joints=tuple(PersonJoints.from_wire(j) for j in _items(d, "joints", "frame")),
            scores=tuple(PersonScore.from_wire(s) for s in _items(d, "scores", "frame")),
            events=tuple(FeedbackEvent.from_wire(e) for e in _items(d, "events", "frame")),
            tombstone=_field(d, "tomb", bool, "frame"),
            codes=_codes(d),
        )

    def replace(self, **changes: Any) -> FramePacket:
        return dataclasses.replace(self, **changes)


MAX_RR = 16  # RR intervals one heart-rate notification carries at most (~20 bytes)


@dataclass(frozen=True)
class HeartRateSample:
    """A reading of a strap (the wearables stage to the score stage, on its
    request socket): beats per minute and the RR intervals sent with it
    (seconds), or `bpm` None while the strap is out of reach (a gap, shown
    as such). `member` or `station` says whose heart it is (`Strap`)."""

    strap: str
    member: str
    station: str
    bpm: int | None
    rr: tuple[float, ...]
    t_wall: float

    def to_plain(self) -> dict:
        return {"heart_rate": dataclasses.asdict(self) | {"rr": list(self.rr)}}

    @classmethod
    def from_plain(cls, d: Any) -> HeartRateSample:
        body = d.get("heart_rate") if isinstance(d, dict) else None
        if not isinstance(body, dict):
            raise MessageError("malformed", "not a heart-rate sample")
        where = "heart_rate"
        bpm = _optional(body, "bpm", int, where)
        if bpm is not None and not 0 < bpm < 300:
            raise MessageError("malformed", f"{where}.bpm {bpm}")
        rr = _field(body, "rr", list, where)
        if len(rr) > MAX_RR or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 65 for v in rr
        ):
            raise MessageError("malformed", f"{where}.rr must be up to {MAX_RR} intervals (s)")
        return cls(
            strap=_bounded_text(body, "strap", where),
            member=_bounded_text(body, "member", where),
            station=_bounded_text(body, "station", where),
            bpm=bpm,
            rr=tuple(float(v) for v in rr),
            t_wall=_field(body, "t_wall", float, where),
        )


# Why a station's stream ended (`EndOfStream.reason`), besides "source failed: ...".
END_OF_SOURCE = "end of source"
STOPPED = "stopped"  # the pipeline was asked to stop
REMOVED = "removed"  # the station was taken out (`pipeline source remove`)


@dataclass(frozen=True)
class EndOfStream:
    """The source has ended (or was stopped). Travels in order after the last
    frame (`prev_seq` is the last dispatched frame's seq).
    """

    source_id: str
    prev_seq: int
    frames_read: int
    dropped: int
    reason: str  # END_OF_SOURCE, STOPPED, REMOVED or "source failed: ..."
    station: str = ""
    stations: tuple[str, ...] = ()
    """Every station capture had taken on when it sent this (ended ones too):
    a stage has seen the whole run once each of these has ended, even one
    added while the others were running (`pipeline source add`)."""

    def to_wire(self) -> list:
        return [
            msgpack.packb(
                {
                    "v": SCHEMA_VERSION,
                    "type": "eos",
                    "src": self.source_id,
                    "prev": self.prev_seq,
                    "read": self.frames_read,
                    "dropped": self.dropped,
                    "reason": self.reason,
                    "stn": self.station,
                    "all": list(self.stations),
                },
                use_bin_type=True,
            )
        ]

    @classmethod
    def from_header(cls, d: dict, _pixels: Any = None) -> EndOfStream:
        return cls(
            source_id=_field(d, "src", str, "eos"),
            prev_seq=_field(d, "prev", int, "eos"),
            frames_read=_field(d, "read", int, "eos"),
            dropped=_field(d, "dropped", int, "eos"),
            reason=_field(d, "reason", str, "eos"),
            station=_station(d, "eos"),
            stations=_station_names(d, "all", "eos"),
        )


@dataclass(frozen=True)
class SessionState:
    """The publisher's last-value cache: what a sink needs to draw the
    current picture without having seen the history.
    """

    source_id: str
    frames: int  # frames that reached the publisher
    dropped: int  # frames lost anywhere upstream (capture or a stage)
    total: int  # frames in the source, 0 if live/unknown
    last_seq: int
    duration_s: float  # media time covered so far
    started_wall: float
    ended: bool
    reason: str
    people: tuple[PersonScore, ...] = ()
    station: str = ""

    def to_wire(self) -> list:
        return [
            msgpack.packb(
                {
                    "v": SCHEMA_VERSION,
                    "type": "state",
                    "src": self.source_id,
                    "frames": self.frames,
                    "dropped": self.dropped,
                    "total": self.total,
                    "last_seq": self.last_seq,
                    "duration": self.duration_s,
                    "started": self.started_wall,
                    "ended": self.ended,
                    "reason": self.reason,
                    "people": [p.to_wire() for p in self.people],
                    "stn": self.station,
                },
                use_bin_type=True,
            )
        ]

    @classmethod
    def from_header(cls, d: dict, _pixels: Any = None) -> SessionState:
        return cls(
            source_id=_field(d, "src", str, "state"),
            frames=_field(d, "frames", int, "state"),
            dropped=_field(d, "dropped", int, "state"),
            total=_field(d, "total", int, "state"),
            last_seq=_field(d, "last_seq", int, "state"),
            duration_s=_field(d, "duration", float, "state"),
            started_wall=_field(d, "started", float, "state"),
            ended=_field(d, "ended", bool, "state"),
            reason=_field(d, "reason", str, "state"),
            people=tuple(PersonScore.from_wire(p) for p in _items(d, "people", "state")),
            station=_station(d, "state"),
        )


# Upper bounds (seconds) of the latency histograms' buckets; one more bucket
# counts what is slower than the last.
LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class StationReport:
    """One station's figures, as the score stage reports them: frames
    analysed and lost upstream, the analysed rate, capture-to-score age
    (p95, and per `LATENCY_BUCKETS_S` bucket with its sum, as in
    `StageReport`), people in view, and feedback events by "kind:severity"."""

    frames: int
    dropped: int
    fps: float
    age_ms_p95: float
    people: int
    events: dict[str, int] = field(default_factory=dict)
    age_counts: tuple[int, ...] = ()
    age_sum_s: float = 0.0
    ended: str = ""
    """Why the station's stream ended ("" while it runs)."""

    def to_wire(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, d: Any) -> StationReport:
        if not isinstance(d, dict):
            raise MessageError("malformed", "station report is not a map")
        where = "station report"
        kinds = {
            "frames": int,
            "dropped": int,
            "fps": float,
            "age_ms_p95": float,
            "people": int,
            "age_sum_s": float,
            "ended": str,
        }
        fields = {k: _field(d, k, t, where) for k, t in kinds.items()}
        fields["age_counts"] = _bucket_counts(d, "age_counts", where)
        return cls(**fields, events=_counters(d, "events", where))


def _station_reports(d: dict) -> dict[str, StationReport]:
    value = _field(d, "stations", dict, "report")
    if len(value) > MAX_NAMES or not all(
        isinstance(k, str) and len(k) <= MAX_STATION_CHARS for k in value
    ):
        raise MessageError("malformed", "report.stations must map station names to reports")
    return {name: StationReport.from_wire(row) for name, row in value.items()}


@dataclass(frozen=True)
class StageReport:
    """A stage's counters, pushed to the supervisor about once a second.

    `latency_counts`: frames processed per `LATENCY_BUCKETS_S` bucket (and one
    past the last), `latency_sum_s` their total time; `age_counts` and
    `age_sum_s` the same for capture-to-here age (sinks: end to end). Empty
    where a stage measures none. `stations`: the score stage's figures for
    each station (frames, people, feedback events, ...)."""

    stage: str
    pid: int
    frames_in: int
    frames_out: int
    dropped: dict[str, int]
    rejected: dict[str, int]
    queue_depth: int
    fps: float
    latency_ms_p50: float
    latency_ms_p95: float
    rss_mb: float
    peak_rss_mb: float
    latency_counts: tuple[int, ...] = ()
    latency_sum_s: float = 0.0
    age_counts: tuple[int, ...] = ()
    age_sum_s: float = 0.0
    stations: dict[str, StationReport] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain data (what `pipeline status --json` shows)."""
        return dataclasses.asdict(self)

    def to_wire(self) -> list:
        body = {"v": SCHEMA_VERSION, "type": "report", **self.as_dict()}
        return [msgpack.packb(body, use_bin_type=True)]

    @classmethod
    def from_header(cls, d: dict, _pixels: Any = None) -> StageReport:
        kinds: dict[str, Any] = {
            "stage": str,
            "pid": int,
            "frames_in": int,
            "frames_out": int,
            "queue_depth": int,
            "fps": float,
            "latency_ms_p50": float,
            "latency_ms_p95": float,
            "rss_mb": float,
            "peak_rss_mb": float,
            "latency_sum_s": float,
            "age_sum_s": float,
        }
        fields = {k: _field(d, k, t, "report") for k, t in kinds.items()}
        if not 0 < len(fields["stage"]) <= MAX_NAME_CHARS:
            raise MessageError("malformed", f"report.stage {short(fields['stage'])}")
        fields["dropped"] = _counters(d, "dropped", "report")
        fields["rejected"] = _counters(d, "rejected", "report")
        fields["latency_counts"] = _bucket_counts(d, "latency_counts")
        fields["age_counts"] = _bucket_counts(d, "age_counts")
        fields["stations"] = _station_reports(d)
        return cls(**fields)


def _bucket_counts(d: dict, key: str, where: str = "report") -> tuple[int, ...]:
    """A histogram's counts: none, or one per `LATENCY_BUCKETS_S` bucket and one more."""
    value = _field(d, key, (list, tuple), where)
    if len(value) not in (0, len(LATENCY_BUCKETS_S) + 1) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in value
    ):
        raise MessageError("malformed", f"{where}.{key} must be histogram counts")
    return tuple(value)


Message = FramePacket | EndOfStream | SessionState | StageReport

_DECODERS = {
    "frame": FramePacket.from_header,
    "eos": EndOfStream.from_header,
    "state": SessionState.from_header,
    "report": StageReport.from_header,
}


def decode(parts: list) -> Message:
    """Decode a multipart message (bytes or zmq frames), validating it.

    Total: returns a message or raises `MessageError`, whatever `parts` holds."""
    try:
        return _decode(parts)
    except MessageError:
        raise
    except Exception as exc:  # incl. RecursionError, MemoryError, OverflowError
        raise MessageError("malformed", f"{type(exc).__name__}: {short(str(exc))}") from None


def _decode(parts: list) -> Message:
    if not isinstance(parts, (list, tuple)) or not parts or len(parts) > 2:
        count = len(parts) if isinstance(parts, (list, tuple)) else "?"
        raise MessageError("malformed", f"expected 1 or 2 parts, got {count}")
    try:
        head = msgpack.unpackb(bytes(parts[0]), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise MessageError("malformed", f"header is not msgpack ({type(exc).__name__})") from None
    if not isinstance(head, dict):
        raise MessageError("malformed", "header is not a map")
    version = head.get("v")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise MessageError(
            "wrong-version", f"schema {short(version)}, this build speaks {SCHEMA_VERSION}"
        )
    kind = head.get("type")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise MessageError("unknown-type", f"message type {short(kind)}")
    return decoder(head, parts[1] if len(parts) > 1 else None)


def encode_plain(obj: Any) -> bytes:
    """msgpack for small control messages (credits, status replies)."""
    return msgpack.packb(obj, use_bin_type=True)


def decode_plain(raw: bytes) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False)
    except Exception as exc:
        raise MessageError(
            "malformed", f"control message is not msgpack ({type(exc).__name__})"
        ) from None
