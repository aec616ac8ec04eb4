"""Events (and optionally every frame's result) as JSON lines for apps.

Each line is one complete JSON object, flushed as it is written, so a reader
tailing the file, or a crash, never sees half a record.
"""

from __future__ import annotations

import json
from pathlib import Path

from repcoach.common.clock import frame_age_s
from repcoach.common.config import MAX_STATIONS
from repcoach.common.messages import EndOfStream, FramePacket, SessionState
from repcoach.common.specs import Spec
from repcoach.stages.sinks import required_path


def frame_record(packet: FramePacket) -> dict:
    meta = packet.meta
    scores = {s.track_id: s for s in packet.scores}
    return {
        "type": "frame",
        "station": meta.station,
        "source": packet.meta.source_id,
        "seq": packet.meta.seq,
        "pts": round(packet.meta.pts, 4),
        "age_ms": round(frame_age_s(meta.t_mono_ns, meta.t_wall, meta.clock) * 1000.0, 2),
        "people": [
            {
                "id": p.track_id,
                "box": [round(v, 1) for v in p.box],
                "score": round(p.score, 3),
                "angles": scores[p.track_id].angles if p.track_id in scores else {},
                "hr": scores[p.track_id].heart_rate if p.track_id in scores else None,
                "rr_ms": list(scores[p.track_id].rr_ms) if p.track_id in scores else [],
            }
            for p in packet.persons
        ],
    }


def _state_record(state: SessionState) -> dict:
    return {
        "station": state.station,
        "source": state.source_id,
        "frames": state.frames,
        "dropped": state.dropped,
        "last_seq": state.last_seq,
        "ended": state.ended,
        "people": [p.to_wire() for p in state.people],
    }


class JsonlSink:
    topics = (b"res",)

    def __init__(self, path: Path, every_frame: bool = False):
        self.every_frame = every_frame
        self._file = path.open("a", encoding="utf-8")
        self._snapshots_written: set[str] = set()  # stations

    def _write(self, record: dict) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def on_state(self, state: SessionState) -> None:
        # A station's first state is the last-value cache a late joiner starts from.
        seen = self._snapshots_written
        if state.station not in seen and len(seen) < MAX_STATIONS:
            seen.add(state.station)
            self._write({"type": "snapshot", **_state_record(state)})

    def on_result(self, packet: FramePacket) -> None:
        if self.every_frame and not packet.tombstone:
            self._write(frame_record(packet))
        for event in packet.events:
            self._write({"type": "event", "station": packet.meta.station, **event.to_wire()})

    def on_eos(self, eos: EndOfStream) -> None:
        self._write(
            {
                "type": "eos",
                "station": eos.station,
                "source": eos.source_id,
                "reason": eos.reason,
                "frames_read": eos.frames_read,
                "dropped": eos.dropped,
            }
        )

    def tick(self) -> None:
        pass

    def close(self, missed: int) -> None:
        if missed:
            self._write({"type": "missed", "count": missed})
        self._file.close()


def from_spec(spec: Spec, build: bool) -> JsonlSink | None:
    spec.check_known({"path", "frames"})
    path = required_path(spec, "jsonl sink file", "--sink jsonl:path=events.jsonl")
    return JsonlSink(path, every_frame=spec.options.get("frames") == "1") if build else None
