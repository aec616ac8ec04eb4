"""Entry point of one stage process: finds its kind in the pipeline graph
(`repcoach.common.graph`) and runs it.

Exit codes tell the supervisor what happened: 0 done, 2 a user error that a
restart cannot fix (its one-line message is on stderr), anything else a crash
worth restarting.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from repcoach.common import graph, transport
from repcoach.common.config import PipelineConfig
from repcoach.common.errors import UserError
from repcoach.common.specs import Spec
from repcoach.common.stage_context import StageContext, setup_logging
from repcoach.stages.sinks import sink_label

EXIT_USER_ERROR = 2


def run_stage(
    kind: str,
    config: PipelineConfig,
    index: int = 0,
    sink: Spec | None = None,
    config_file: Path | None = None,
) -> int:
    """Run one stage to completion in this process; returns the exit code.
    `config_file`: where `config` came from, re-read when stations change."""
    try:
        stage = graph.stage_kind(kind)
        entry = graph.ENTRIES.factory(kind)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    name = stage.process_name(index, sink_label(sink) if sink else "")
    setup_logging(name)
    supervised = os.environ.get("REPCOACH_SUPERVISED") == "1"
    ctx = StageContext(name, config, supervised=supervised, config_file=config_file)
    try:
        entry(ctx, index, sink)
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
    """`python -m repcoach.launch.stage KIND CONFIG INDEX SINK_OPTIONS_FILE`
    (used by the supervisor; the file is "" for stages other than sinks)."""
    kind, config_path, index, sink_file = sys.argv[1:5]
    try:
        sink = Spec.load(Path(sink_file)) if sink_file else None
    except UserError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    path = Path(config_path)
    sys.exit(run_stage(kind, PipelineConfig.load(path), int(index), sink, config_file=path))


if __name__ == "__main__":
    main()
