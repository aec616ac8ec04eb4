"""The pipeline's graph, as data: every kind of stage, how many of it run,
the function that runs one, and each socket it opens (endpoint role, ZeroMQ
pattern, which side binds, high-water mark).

    capture --work (ROUTER/DEALER, credits)--> segment x workers
        --segmented (PUSH/PULL)--> joints (re-orders) --joined (PUSH/PULL)--> score
        --results, tap (XPUB/SUB) + snapshot (ROUTER/REQ)--> sinks
    wearables (heart-rate straps) --snapshot (REQ/ROUTER)--> score
    every stage --reports (PUSH/PULL)--> supervisor <--control (REQ/ROUTER)-- CLI

The supervisor plans its children from `STAGES`, the stage entry point looks
the kind up here, and each stage loop opens its sockets with `open_port`
instead of restating pattern, side and queue length. Where each role's
address is (ipc path or tcp port) is `repcoach.common.endpoints`' job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from repcoach.common import transport
from repcoach.common.chunks import MAX_CHUNK_FRAMES
from repcoach.common.config import FlowPolicy, PipelineConfig
from repcoach.common.errors import UserError
from repcoach.common.registry import Registry

Setting = Callable[[PipelineConfig], int]


@dataclass(frozen=True)
class Port:
    """One socket a stage opens."""

    role: str
    """The endpoint role (`repcoach.common.endpoints.ROLES`)."""
    pattern: int
    """ZeroMQ socket type."""
    binds: bool
    hwm: int | Setting
    """Queue length each way; a function of the config where it depends on it."""
    options: Callable[[PipelineConfig], list[tuple[int, int]]] = lambda config: []
    watched: bool = False
    """A lossless output: its connection is kept until the next stage leaves
    (`transport.PeerWatch`), so nothing queued for it is discarded."""

    def queue_length(self, config: PipelineConfig) -> int:
        return self.hwm(config) if callable(self.hwm) else self.hwm


class Count(Enum):
    """How many processes of a stage kind a pipeline runs."""

    ONE = "one"
    PER_WORKER = "one per --workers"
    PER_SINK = "one per sink"


@dataclass(frozen=True)
class StageKind:
    kind: str
    entry: str
    """`module:function(ctx, index, sink_spec)` that runs one such stage."""
    count: Count
    ports: tuple[Port, ...]
    starts_when_ready: bool = False
    """Started once every other stage has reported in (capture: a camera is
    not read while nobody can process its frames yet)."""
    uses_gpu: bool = False
    """Each process is pinned to one of `--gpus`."""
    needed: Callable[[PipelineConfig], bool] = lambda config: True
    """Whether a pipeline with this config runs it at all."""
    in_flow: bool = True
    """Frames pass through it (capture to the sinks); else it runs beside
    them and is stopped once the score stage has finished."""

    def port(self, role: str) -> Port:
        for port in self.ports:
            if port.role == role:
                return port
        if role == REPORTS.role and self.kind != "supervisor":
            return REPORTS  # every stage reports
        raise KeyError(f"{self.kind} has no {role} socket")

    def process_name(self, index: int = 0, sink_label: str = "") -> str:
        """`capture`, `segment-1`, `sink-web`, `sink-history@door`, `sink-jsonl#2`:
        what logs, reports and status call it. A sink's `index` counts the
        sinks before it with the same label (`#` and `@` are in no station's
        or sink kind's name, so no two sinks share a name)."""
        if self.count is Count.PER_WORKER:
            return f"{self.kind}-{index}"
        if self.count is Count.PER_SINK:
            return f"{self.kind}-{sink_label}" + (f"#{index + 1}" if index else "")
        return self.kind


def _lossless(config: PipelineConfig) -> bool:
    return config.policy is FlowPolicy.LOSSLESS


def _results_options(config: PipelineConfig) -> list[tuple[int, int]]:
    return transport.xpub_options(_lossless(config))


def _tap_options(config: PipelineConfig) -> list[tuple[int, int]]:
    # Attached sinks are never waited for: a full one loses messages alone.
    return transport.xpub_options(lossless=False)


def _router_options(config: PipelineConfig) -> list[tuple[int, int]]:
    return transport.router_options()


# Every stage reports to the supervisor on this socket.
REPORTS = Port("reports", transport.PUSH, binds=False, hwm=4)
# The segment workers and the joints stage hear on the tap whether any sink
# takes frames with pixels (`runner.PixelDemand`): if none does, they stop
# passing the frames' pixels on.
PIXEL_DEMAND = Port("tap", transport.SUB, binds=False, hwm=16)

STAGES = (
    StageKind(
        "capture",
        "repcoach.launch.entries:run_capture",
        Count.ONE,
        (
            # A chunk of frames may go out beyond a worker's credits.
            Port(
                "work",
                transport.ROUTER,
                binds=True,
                hwm=lambda c: max(16, 4 * c.prefetch) + MAX_CHUNK_FRAMES,
                options=_router_options,
            ),
        ),
        starts_when_ready=True,
    ),
    StageKind(
        "segment",
        "repcoach.launch.entries:run_segment",
        Count.PER_WORKER,
        (
            Port(
                "work",
                transport.DEALER,
                binds=False,
                hwm=lambda c: c.prefetch + MAX_CHUNK_FRAMES + 4,
            ),
            Port("segmented", transport.PUSH, binds=False, hwm=4, watched=True),
            PIXEL_DEMAND,
        ),
        uses_gpu=True,
    ),
    StageKind(
        "joints",
        "repcoach.launch.entries:run_joints",
        Count.ONE,
        (
            Port("segmented", transport.PULL, binds=True, hwm=8),
            Port("joined", transport.PUSH, binds=False, hwm=4, watched=True),
            PIXEL_DEMAND,
        ),
    ),
    StageKind(
        "score",
        "repcoach.launch.entries:run_score",
        Count.ONE,
        (
            Port("joined", transport.PULL, binds=True, hwm=8),
            # The sinks `up` started: lossless for files (waited for).
            Port("results", transport.XPUB, binds=True, hwm=2000, options=_results_options),
            Port("snapshot", transport.ROUTER, binds=True, hwm=64),
            Port("tap", transport.XPUB, binds=True, hwm=2000, options=_tap_options),
        ),
    ),
    StageKind(
        "sink",
        "repcoach.launch.entries:run_sink",
        Count.PER_SINK,
        (
            # One of the two feeds: `results` when `up` started the sink,
            # `tap` when it was attached later. A sink taking pixels (~1 MB a
            # frame) asks for a short queue instead (see `runner.SinkFeed`).
            Port("results", transport.SUB, binds=False, hwm=20000),
            Port("tap", transport.SUB, binds=False, hwm=20000),
            Port("snapshot", transport.REQ, binds=False, hwm=1),
        ),
    ),
    # Heart-rate straps (Bluetooth LE): each reading is a request on the
    # score stage's snapshot socket, so it needs no port of its own.
    StageKind(
        "wearables",
        "repcoach.launch.entries:run_wearables",
        Count.ONE,
        (Port("snapshot", transport.REQ, binds=False, hwm=1),),
        needed=lambda config: bool(config.straps),
        in_flow=False,
    ),
)

SUPERVISOR = StageKind(
    "supervisor",
    "repcoach.launch.supervisor:Supervisor",
    Count.ONE,
    (
        Port("reports", transport.PULL, binds=True, hwm=1000),
        Port("control", transport.ROUTER, binds=True, hwm=100),
    ),
)

FLOW = tuple(stage.kind for stage in STAGES if stage.in_flow)
"""Stage kinds in the order frames flow."""

ENTRIES = Registry("stage", {stage.kind: stage.entry for stage in STAGES})


def stage_kind(kind: str) -> StageKind:
    for stage in (*STAGES, SUPERVISOR):
        if stage.kind == kind:
            return stage
    raise UserError(f"unknown stage {kind!r}; valid: {', '.join(s.kind for s in STAGES)}")


def open_port(
    config: PipelineConfig,
    kind: str,
    role: str,
    *,
    hwm: int | None = None,
    identity: bytes | None = None,
):
    """Open the `role` socket of a `kind` stage as the graph describes it;
    a watched output comes back with its `PeerWatch` as a pair. `hwm`
    shortens the queue for this process (never lengthens it)."""
    return _open(config, stage_kind(kind).port(role), hwm, identity)


def open_reports(config: PipelineConfig):
    """The socket any stage process sends its reports on."""
    return _open(config, REPORTS, None, None)


def _open(config: PipelineConfig, port: Port, hwm: int | None, identity: bytes | None):
    topology = config.endpoints()
    endpoint = topology.bind(port.role) if port.binds else topology.connect(port.role)
    length = port.queue_length(config)
    if hwm is not None:
        length = min(length, hwm)
    if port.watched:
        return transport.open_watched(port.pattern, endpoint, hwm=length)
    return transport.open_socket(
        port.pattern,
        endpoint,
        bind=port.binds,
        hwm=length,
        identity=identity,
        options=port.options(config),
    )
