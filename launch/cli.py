"""`pipeline`: start a pipeline, attach sinks, show status, manage weights.

Library errors become one line and a non-zero exit here, at the boundary;
nothing below prints tracebacks at the user.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from repcoach.common import transport
from repcoach.common.config import FlowPolicy, PipelineConfig
from repcoach.common.endpoints import Topology, run_dir
from repcoach.common.errors import UserError

app = typer.Typer(
    name="pipeline",
    help="AI personal trainer: camera or video in, coaching out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sink_app = typer.Typer(help="Attach extra sinks to a running pipeline.", no_args_is_help=True)
app.add_typer(sink_app, name="sink")


def _sink_kinds() -> tuple[str, ...]:
    from repcoach.stages.sinks import SINK_KINDS

    return SINK_KINDS


def _exercises() -> tuple[str, ...]:
    from repcoach.stages.coaching import registry

    return ("auto", *registry().names())


class JointsBackend(str, Enum):
    blazepose = "blazepose"
    haar = "haar"
    none = "none"


class Level(str, Enum):
    beginner = "beginner"
    intermediate = "intermediate"
    advanced = "advanced"


HistoryOption = Annotated[
    Path | None,
    typer.Option(
        "--history-db",
        envvar="REPCOACH_HISTORY",
        help="History database (default: $REPCOACH_DATA_DIR/history.sqlite).",
    ),
]
NameOption = Annotated[
    str, typer.Option("--name", envvar="REPCOACH_NAME", help="Pipeline name (one per camera).")
]
ConnectOption = Annotated[
    str | None,
    typer.Option("--connect", help="Reach a pipeline on another host: tcp://HOST:PORT."),
]


def _topology(name: str, connect: str | None) -> Topology:
    if connect:
        return Topology.tcp(connect, for_binding=False)
    info = run_dir(name) / "pipeline.json"
    if info.exists():
        return Topology.from_dict(json.loads(info.read_text())["topology"])
    raise UserError(
        f"no pipeline named {name!r} is running here; start one with "
        "`pipeline up --source ...` or give --connect tcp://HOST:PORT"
    )


def _remote_config(topology: Topology, where: str) -> PipelineConfig:
    """The running pipeline's config, re-pointed at the addresses we reach it by."""
    reply = transport.request(topology.connect("control"), b"CONFIG", timeout_s=3.0)
    if reply is None:
        raise UserError(f"pipeline {where} did not answer within 3 s (is it still running?)")
    data = json.loads(reply[0])
    data.update(
        policy=FlowPolicy(data["policy"]), gpus=tuple(data["gpus"]), topology=topology.to_dict()
    )
    return PipelineConfig(**data)


def _policy_for(source: str, realtime: bool) -> FlowPolicy:
    from repcoach.stages.capture import open_source

    opened = open_source(source)  # validates now, in one line, before any process starts
    live = opened.live
    opened.close()
    return FlowPolicy.LATEST if live or realtime else FlowPolicy.LOSSLESS


def _parse_gpus(gpus: str | None) -> tuple[str, ...]:
    if not gpus:
        return ()
    items = tuple(g.strip() for g in gpus.split(","))
    if not all(g.isdigit() for g in items):
        raise UserError(f"--gpus {gpus!r}: give GPU indices like 0,1")
    return items


def _check_running(name: str) -> None:
    info = run_dir(name) / "pipeline.json"
    if not info.exists():
        return
    pid = json.loads(info.read_text()).get("pid", 0)
    try:
        os.kill(pid, 0)
    except OSError:
        info.unlink(missing_ok=True)  # left behind by a killed pipeline
        return
    raise UserError(
        f"a pipeline named {name!r} is already running (pid {pid}); "
        "stop it or start this one with --name OTHER"
    )


@app.command()
def up(
    source: Annotated[
        str,
        typer.Option(help="cameraN, a video file, rtsp://... or http(s)://..., synthetic:EXERCISE"),
    ],
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Segmentation workers (default: one per GPU, else one per core up to 4; "
            "1 for maskrcnn on CPU).",
        ),
    ] = None,
    gpus: Annotated[str | None, typer.Option(help="GPU ids, one per worker in turn: 0,1")] = None,
    exercise: Annotated[
        str, typer.Option(help="auto, or an exercise defined in exercises/ (e.g. squat).")
    ] = "auto",
    segmenter: Annotated[
        str, typer.Option(help="blazepose | maskrcnn | passthrough")
    ] = "blazepose",
    joints: Annotated[JointsBackend, typer.Option(help="Joint backend.")] = JointsBackend.blazepose,
    summary: Annotated[Path | None, typer.Option(help="Write a JSON session summary here.")] = None,
    sink: Annotated[
        list[str] | None,
        typer.Option(
            help="Extra sinks, KIND:key=value,...: jsonl, video, web, webhook, voice; repeatable."
        ),
    ] = None,
    console: Annotated[bool, typer.Option(help="Show the live console view.")] = True,
    realtime: Annotated[
        bool, typer.Option(help="Play a file at its frame rate, as a camera.")
    ] = False,
    loop: Annotated[bool, typer.Option(help="Replay a file from the start when it ends.")] = False,
    truth: Annotated[
        Path | None, typer.Option(help="Synthetic sources: write ground truth here.")
    ] = None,
    max_age: Annotated[
        float, typer.Option(min=0.05, max=60, help="Live: drop frames older than this (s).")
    ] = 1.0,
    weights_dir: Annotated[
        Path | None, typer.Option(envvar="REPCOACH_WEIGHTS_DIR", help="Model weights folder.")
    ] = None,
    bind: Annotated[
        str | None, typer.Option(help="Listen on tcp://HOST:PORT (+6 ports) instead of ipc.")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="Member the station's person trains as (history, level).")
    ] = None,
    level: Annotated[
        Level | None, typer.Option(help="Strictness; saved to the member's profile.")
    ] = None,
    history: HistoryOption = None,
    keep_history: Annotated[
        bool, typer.Option("--history/--no-history", help="Record reps in the history database.")
    ] = True,
    report: Annotated[
        Path | None, typer.Option(help="Write the HTML session report into this folder at the end.")
    ] = None,
    name: NameOption = "default",
) -> None:
    """Start every stage and run until the source ends (files) or Ctrl-C."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from repcoach.common.history import default_history_path
    from repcoach.common.weights import default_weights_dir
    from repcoach.launch.supervisor import Supervisor
    from repcoach.stages.segmenters import check_segmenter, default_workers
    from repcoach.stages.sinks import check_sink

    if exercise not in _exercises():
        raise UserError(f"--exercise {exercise!r} is not known; valid: {', '.join(_exercises())}")
    gpu_ids = _parse_gpus(gpus)
    check_segmenter(segmenter, weights_dir or default_weights_dir())
    if truth is not None and not source.startswith("synthetic:"):
        raise UserError("--truth only applies to synthetic:... sources")
    folder = run_dir(name)
    _check_running(name)
    policy = _policy_for(source, realtime)
    if loop and policy is FlowPolicy.LATEST and not realtime:
        raise UserError("--loop applies to files and synthetic sources, not live ones")
    sinks = (["console"] if console else []) + list(sink or [])
    if summary is not None:
        sinks.append(f"summary:path={summary}")
    session_id = PipelineConfig.new_session_id()
    if report is not None:
        if not keep_history:
            raise UserError("--report needs the history database; drop --no-history")
        from repcoach.stages.report.writer import check_target

        check_target(report)
    for spec in sinks:
        check_sink(spec)
    history_db = str(history or default_history_path()) if keep_history else ""
    # Last of the checks: it creates the member (and the database) if new.
    member, level_name = _member(profile, level, Path(history_db) if keep_history else None)
    if keep_history:
        options = {
            "path": history_db,
            "session": session_id,
            "member": member,
            "level": level_name,
            "station": name,
            "report": report,
        }
        sinks.append("history:" + ",".join(f"{k}={v}" for k, v in options.items() if v))
        check_sink(sinks[-1])
    topology = Topology.tcp(bind, for_binding=True) if bind else Topology.local(name)
    config = PipelineConfig(
        name=name,
        source=source,
        policy=policy,
        realtime=realtime,
        loop=loop,
        workers=workers or default_workers(segmenter, gpu_ids),
        gpus=gpu_ids,
        segmenter=segmenter,
        joints=joints.value,
        exercise=exercise,
        weights_dir=str(weights_dir or ""),
        max_age_s=max_age,
        prefetch=1 if policy is FlowPolicy.LATEST else 2,
        expect_sinks=len(sinks),
        truth_path=str(truth or ""),
        session_id=session_id,
        profile=member or "",
        level=level_name,
        history_db=history_db,
        topology=topology.to_dict(),
    )
    supervisor = Supervisor(config, folder, sinks)
    code = supervisor.run()
    if supervisor.failure:
        raise UserError(supervisor.failure)
    if summary is not None and summary.exists():
        typer.echo(f"summary written to {summary}")
    if report is not None and (report / "index.html").exists():
        typer.echo(f"report written to {report / 'index.html'}")
    raise typer.Exit(code)


def _member(profile: str | None, level: Level | None, history: Path | None) -> tuple[str, str]:
    """The member's name and strictness level. With a history database a new
    member is created there and `--level` saved to their profile; without
    one (`--no-history`) nothing is read or written."""
    from repcoach.common.history import DEFAULT_LEVEL, History

    if profile and not re.fullmatch(r"[\w .'-]{1,64}", profile):
        raise UserError(f"--profile {profile!r}: use letters, digits, spaces, '.', '-' or '_'")
    if not profile or history is None:
        return profile or "", level.value if level else DEFAULT_LEVEL
    db = History.open(history)
    try:
        return profile, db.member_level(profile, level.value if level else "")
    finally:
        db.close()


@app.command()
def status(
    name: NameOption = "default",
    connect: ConnectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each stage: alive, restarts, frames, fps, queue, drops, latency."""
    from repcoach.launch.status_view import status_table
    from repcoach.launch.supervisor import read_status

    topology = _topology(name, connect)
    reply = transport.request(topology.connect("control"), b"STATUS", timeout_s=3.0)
    if reply is None:
        raise UserError(f"pipeline {name!r} did not answer within 3 s (is it still running?)")
    data = read_status(reply)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        from rich.console import Console

        Console().print(status_table(data))


@app.command("history")
def history_command(
    profile: Annotated[str | None, typer.Option(help="Only this member's sessions.")] = None,
    history: HistoryOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many recent sessions.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Progress over sessions: reps, form score, range of motion, faults."""
    from repcoach.common.history import History
    from repcoach.launch.history_view import progress_table

    db = History.open(history, create=False)
    try:
        if profile is not None and profile not in db.members():
            known = ", ".join(db.members()) or "none yet"
            raise UserError(f"no member {profile!r} in {db.path}; members: {known}")
        rows = db.progress(profile, limit)
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console

    Console().print(progress_table(rows, profile))


@app.command("report")
def report_command(
    session: Annotated[str, typer.Argument(help="Session id (see `pipeline history`), or last.")],
    history: HistoryOption = None,
    out: Annotated[Path | None, typer.Option(help="Folder (default ./report-SESSION).")] = None,
) -> None:
    """Write a session's HTML report with plots, from the history database."""
    from repcoach.common.history import History
    from repcoach.stages.report import write_report

    db = History.open(history, create=False)
    try:
        session_id = db.session(session)["id"]
        index = write_report(db, session_id, out or Path(f"report-{session_id}"))
    finally:
        db.close()
    typer.echo(f"report written to {index}")


@sink_app.command("attach")
def sink_attach(
    kind: Annotated[str, typer.Argument(help="A sink kind: " + ", ".join(_sink_kinds()))],
    path: Annotated[Path | None, typer.Option(help="Output file or folder.")] = None,
    frames: Annotated[bool, typer.Option(help="jsonl: one line per frame too.")] = False,
    port: Annotated[int | None, typer.Option(help="web: TCP port to serve on.")] = None,
    host: Annotated[str | None, typer.Option(help="web: address to bind.")] = None,
    url: Annotated[str | None, typer.Option(help="webhook: where to POST events.")] = None,
    blur_faces: Annotated[
        bool, typer.Option(help="Blur faces in what is written or served.")
    ] = False,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Any other sink option: KEY=VALUE.")
    ] = None,
    name: NameOption = "default",
    connect: ConnectOption = None,
) -> None:
    """Run one more sink against a running pipeline, until it ends or Ctrl-C."""
    from repcoach.launch.stage import EXIT_USER_ERROR, run_stage
    from repcoach.stages.sinks import check_sink

    given = {"path": path, "port": port, "host": host, "url": url}
    options = [f"{key}={value}" for key, value in given.items() if value is not None]
    options += ["frames=1"] * frames + ["blur_faces=1"] * blur_faces + list(option or [])
    spec = kind + (":" + ",".join(options) if options else "")
    check_sink(spec)
    config = _remote_config(_topology(name, connect), repr(name))
    code = run_stage("sink", config, 0, spec)
    # A sink that cannot start (port in use, ...) printed its one line; exit 1 as other errors do.
    raise typer.Exit(1 if code == EXIT_USER_ERROR else code)


@app.command("stage", hidden=True)
def stage(
    role: Annotated[str, typer.Argument(help="segment | joints | score | capture")],
    connect: Annotated[str, typer.Option(help="The pipeline: tcp://HOST:PORT")],
    index: Annotated[int, typer.Option(help="Worker number (unique per pipeline).")] = 100,
) -> None:
    """Run one stage of a pipeline that lives on another host."""
    from repcoach.launch.stage import run_stage

    config = _remote_config(Topology.tcp(connect, for_binding=False), f"at {connect}")
    raise typer.Exit(run_stage(role, config, index))


def _mount_weights() -> None:
    try:
        from repcoach.launch.weights import weights_app
    except ImportError:
        return
    app.add_typer(weights_app, name="weights")


_mount_weights()


def main() -> None:
    """Console entry point: one clear line for every error, never a traceback."""
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as error:  # bad options and arguments
        ctx = getattr(error, "ctx", None)
        command = ctx.command_path if ctx is not None else "pipeline"
        print(f"error: {error.format_message()} (see `{command} --help`)", file=sys.stderr)
        sys.exit(error.exit_code)
