"""What one process of each stage kind runs: builds the stage's logic from
the typed config and hands it to its socket loop. `repcoach.common.graph`
names these functions; each takes the stage context, the process's index
(segment workers) and its sink's options (sinks)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from repcoach.common.atomic import write_json_atomic
from repcoach.common.config import FlowPolicy, PipelineConfig, Station
from repcoach.common.errors import UserError
from repcoach.common.specs import Spec
from repcoach.common.stage_context import StageContext
from repcoach.common.weights import default_weights_dir


def weights_dir(config: PipelineConfig) -> Path:
    return Path(config.weights_dir) if config.weights_dir else default_weights_dir()


def run_capture(ctx: StageContext, index: int, sink: Spec | None) -> None:
    from repcoach.common.dispatch import Dispatcher
    from repcoach.stages.capture import Looped, Paced, SyntheticFrames, open_source

    config = ctx.config

    def open_station(station: Station):
        """A station's source as capture reads it: looped with `--loop`, and
        a file paced at its frame rate where the station is live."""
        source = Looped(station.source) if config.loop else open_source(station.source)
        if station.policy is FlowPolicy.LATEST and not source.live:
            source = Paced(source)
        return source

    sources = [open_station(station) for station in config.stations]
    unpaced = [source.inner if isinstance(source, Paced) else source for source in sources]
    truths = {
        station.name: source.renderer.truth_document()
        for station, source in zip(config.stations, unpaced, strict=True)
        if isinstance(source, SyntheticFrames)
    }
    if config.truth_path and truths:
        # One station: its truth as it is; several: each station's by name.
        single = len(config.stations) == 1
        write_json_atomic(config.truth_path, next(iter(truths.values())) if single else truths)
    Dispatcher(ctx, sources, opener=open_station).run()


def run_segment(ctx: StageContext, index: int, sink: Spec | None) -> None:
    from repcoach.common.loop import run_loop
    from repcoach.common.runner import SegmentWorker
    from repcoach.stages.segmenters import WithColours, finds_landmarks, make_segmenter

    config = ctx.config
    segmenter = make_segmenter(
        config.segmenter,
        weights_dir(config),
        seed=index,
        landmarks=finds_landmarks(config.segmenter, config.joints),
    )
    worker = SegmentWorker(WithColours(segmenter), ctx, ctx.name, _joints_use_pixels(config))
    run_loop(ctx, worker)


def _joints_use_pixels(config: PipelineConfig) -> bool:
    """Whether the joints stage runs a landmark model of its own on the frame."""
    from repcoach.stages.segmenters import finds_landmarks

    return config.joints != "none" and not finds_landmarks(config.segmenter, config.joints)


def _joints_logic(config: PipelineConfig):
    if config.joints == "none":
        from repcoach.stages.base import PassThrough

        return PassThrough()
    from repcoach.stages.joints import JointsStage, make_joint_estimator
    from repcoach.stages.segmenters import finds_landmarks
    from repcoach.stages.tracking import Tracker

    if finds_landmarks(config.segmenter, config.joints):
        return JointsStage(None, Tracker())  # the segment workers found them
    return JointsStage(make_joint_estimator(config.joints), Tracker())


def run_joints(ctx: StageContext, index: int, sink: Spec | None) -> None:
    from repcoach.common.loop import run_loop
    from repcoach.common.runner import OrderedStage

    # Each station gets its own tracker and smoothing (and landmark model
    # state, where this stage runs one).
    run_loop(ctx, OrderedStage(lambda: _joints_logic(ctx.config), ctx))


def _member_priors(config: PipelineConfig) -> dict:
    """The member's baselines from earlier sessions ({} for a guest)."""
    if not (config.profile and config.history_db):
        return {}
    from repcoach.common.history import History

    history = History.open(Path(config.history_db))
    try:
        return history.baselines(config.profile, before=config.session_id)
    finally:
        history.close()


def _members(history_db: Path) -> list[str]:
    """The history's members, read when asked (one may join mid-run)."""
    from repcoach.common.history import History

    history = History.open(history_db, create=False)
    try:
        return history.members()
    finally:
        history.close()


def run_score(ctx: StageContext, index: int, sink: Spec | None) -> None:
    from repcoach.common.history import DEFAULT_LEVEL
    from repcoach.common.loop import run_loop
    from repcoach.common.runner import Publisher
    from repcoach.stages.coaching import Coach
    from repcoach.stages.coaching.checkin import CheckIns
    from repcoach.stages.coaching.levels import for_level

    config = ctx.config
    priors = _member_priors(config)
    members = partial(_members, Path(config.history_db)) if config.history_db else None

    def coach_for(station: str) -> Coach:
        # Read when the station is first seen: it may have been added since.
        current = ctx.config
        return Coach(
            current.station(station).exercise or config.exercise,
            adapt=for_level(config.level or DEFAULT_LEVEL),
            session_id=current.session_of(station),
            member=config.profile,
            priors=priors,
            checkins=CheckIns(config.checkin_hold_s, members=members) if config.checkin else None,
        )

    run_loop(ctx, Publisher(coach_for, ctx))


def run_sink(ctx: StageContext, index: int, sink: Spec | None) -> None:
    from repcoach.common.loop import run_loop
    from repcoach.common.runner import SinkFeed
    from repcoach.stages.sinks import make_sink, station_of

    if sink is None:
        raise UserError("a sink stage needs the sink's options")
    # The sinks `up` started are part of the run and get every result; a sink
    # attached later taps the stream and is cut loose when it falls behind.
    feed = "results" if ctx.supervised else "tap"
    station = station_of(sink, ctx.config.station_names)
    run_loop(ctx, SinkFeed(make_sink(sink), ctx, feed=feed, station=station))


def run_wearables(ctx: StageContext, index: int, sink: Spec | None) -> None:
    from repcoach.stages.wearables import Wearables

    Wearables(ctx).run()
