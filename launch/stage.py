"""Entry point of one stage process: builds the stage's logic and runs its loop.

Exit codes tell the supervisor what happened: 0 done, 2 a user error that a
restart cannot fix (its one-line message is on stderr), anything else a crash
worth restarting.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

from repcoach.common import transport
from repcoach.common.atomic import write_json_atomic
from repcoach.common.config import PipelineConfig
from repcoach.common.errors import UserError
from repcoach.common.stage_context import StageContext, setup_logging
from repcoach.common.weights import default_weights_dir

log = logging.getLogger(__name__)

ROLES = ("capture", "segment", "joints", "score", "sink")
EXIT_USER_ERROR = 2


def weights_dir(config: PipelineConfig) -> Path:
    return Path(config.weights_dir) if config.weights_dir else default_weights_dir()


def _run_capture(ctx: StageContext) -> None:
    from repcoach.common.dispatch import Dispatcher
    from repcoach.stages.capture import Looped, Paced, SyntheticFrames, open_source

    source = Looped(ctx.config.source) if ctx.config.loop else open_source(ctx.config.source)
    if ctx.config.truth_path and isinstance(source, SyntheticFrames):
        write_json_atomic(ctx.config.truth_path, source.renderer.truth_document())
    if ctx.config.realtime and not source.live:
        source = Paced(source)
    Dispatcher(ctx, source).run()


def _run_segment(ctx: StageContext, index: int) -> None:
    from repcoach.common.runner import run_segment_worker
    from repcoach.stages.segmenters import finds_landmarks, make_segmenter

    config = ctx.config
    segmenter = make_segmenter(
        config.segmenter,
        weights_dir(config),
        seed=index,
        landmarks=finds_landmarks(config.segmenter, config.joints),
    )
    run_segment_worker(segmenter, ctx, identity=f"segment-{index}")


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


def _run_joints(ctx: StageContext) -> None:
    from repcoach.common.runner import run_ordered_stage

    run_ordered_stage(_joints_logic(ctx.config), ctx)


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


def _run_score(ctx: StageContext) -> None:
    from repcoach.common.history import DEFAULT_LEVEL
    from repcoach.common.runner import run_publisher
    from repcoach.stages.coaching import Coach
    from repcoach.stages.coaching.levels import for_level

    config = ctx.config
    coach = Coach(
        config.exercise,
        adapt=for_level(config.level or DEFAULT_LEVEL),
        session_id=config.session_id,
        member=config.profile,
        priors=_member_priors(config),
    )
    run_publisher(coach, ctx)


def _run_sink(ctx: StageContext, sink_spec: str, supervised: bool) -> None:
    from repcoach.common.runner import run_sink
    from repcoach.stages.sinks import make_sink

    # The sinks `up` started are part of the run and get every result; a sink
    # attached later taps the stream and is cut loose when it falls behind.
    run_sink(make_sink(sink_spec), ctx, feed="results" if supervised else "tap")


def run_stage(role: str, config: PipelineConfig, index: int = 0, sink: str = "") -> int:
    """Run one stage to completion in this process; returns the exit code."""
    name = {"segment": f"segment-{index}", "sink": f"sink-{sink.split(':')[0]}"}.get(role, role)
    setup_logging(name)
    supervised = os.environ.get("REPCOACH_SUPERVISED") == "1"
    ctx = StageContext(name, config, supervised=supervised)
    try:
        if role == "capture":
            _run_capture(ctx)
        elif role == "segment":
            _run_segment(ctx, index)
        elif role == "joints":
            _run_joints(ctx)
        elif role == "score":
            _run_score(ctx)
        elif role == "sink":
            _run_sink(ctx, sink, supervised)
        else:
            raise UserError(f"unknown stage {role!r}; valid: {', '.join(ROLES)}")
        return 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        ctx.close()
        transport.shutdown()


def main() -> None:
    """`python -m repcoach.launch.stage ROLE CONFIG [INDEX] [SINK]` (used by the supervisor)."""
    role, config_path = sys.argv[1], Path(sys.argv[2])
    index = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    sink = sys.argv[4] if len(sys.argv) > 4 else ""
    sys.exit(run_stage(role, PipelineConfig.load(config_path), index, sink))


if __name__ == "__main__":
    main()
