"""Typed configuration of one pipeline run, shared by the launcher and every
stage process (written once as JSON into the run folder)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from repcoach.common.atomic import write_json_atomic
from repcoach.common.endpoints import Topology


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
class PipelineConfig:
    name: str
    """Pipeline name: picks the run folder, so several cameras can run side by side."""
    source: str
    """What `--source` said: cameraN, a file path, an rtsp/http URL or synthetic:..."""
    policy: FlowPolicy
    """Flow policy derived from the source (see FlowPolicy)."""
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
    topology: dict = field(default_factory=dict)

    @staticmethod
    def new_session_id() -> str:
        return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)

    def endpoints(self) -> Topology:
        return Topology.from_dict(self.topology)

    def to_json(self) -> str:
        data = asdict(self)
        data["policy"] = self.policy.value
        return json.dumps(data, indent=2)

    def save(self, path: Path) -> None:
        write_json_atomic(path, json.loads(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> PipelineConfig:
        data = json.loads(Path(path).read_text())
        data["policy"] = FlowPolicy(data["policy"])
        data["gpus"] = tuple(data["gpus"])
        return cls(**data)

    def gpu_for_worker(self, index: int) -> str | None:
        return self.gpus[index % len(self.gpus)] if self.gpus else None
