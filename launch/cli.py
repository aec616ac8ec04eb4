"""`pipeline`: start a pipeline, attach sinks, show status, manage weights.

Library errors become one line and a non-zero exit here, at the boundary;
nothing below prints tracebacks at the user.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pwd
import re
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from repcoach.common import transport
from repcoach.common.atomic import atomic_file, write_failure, write_json_atomic
from repcoach.common.config import (
    FlowPolicy,
    PipelineConfig,
    Station,
    make_stations,
    make_straps,
)
from repcoach.common.endpoints import Topology, check_name, run_dir
from repcoach.common.errors import UserError
from repcoach.common.history import Level
from repcoach.common.messages import MessageError, decode_plain
from repcoach.common.specs import Spec

app = typer.Typer(
    name="pipeline",
    help="AI personal trainer: camera or video in, coaching out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sink_app = typer.Typer(help="Attach extra sinks to a running pipeline.", no_args_is_help=True)
app.add_typer(sink_app, name="sink")
keys_app = typer.Typer(
    help="CURVE keys for tcp: this host's key pair, allowed clients, trusted pipelines.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
source_app = typer.Typer(help="Add or remove a running pipeline's stations.", no_args_is_help=True)
app.add_typer(source_app, name="source")
members_app = typer.Typer(help="Members and their check-in codes.", no_args_is_help=True)
wearables_app = typer.Typer(help="Heart-rate straps and watches.", no_args_is_help=True)
app.add_typer(wearables_app, name="wearables")
app.add_typer(members_app, name="members")
service_app = typer.Typer(help="Run the pipeline as a systemd service.", no_args_is_help=True)
app.add_typer(service_app, name="service")


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


HistoryOption = Annotated[
    Path | None,
    typer.Option(
        "--history-db",
        envvar="REPCOACH_HISTORY",
        help="History database (default: $REPCOACH_DATA_DIR/history.sqlite).",
    ),
]
NameOption = Annotated[
    str,
    typer.Option(
        "--name", envvar="REPCOACH_NAME", help="Pipeline name (picks its run folder and socket)."
    ),
]
ConnectOption = Annotated[
    str | None,
    typer.Option("--connect", help="Reach a pipeline on another host: tcp://HOST:PORT."),
]
ServerKeyOption = Annotated[
    str | None,
    typer.Option(
        "--server-key",
        envvar="REPCOACH_SERVER_KEY",
        help="With --connect: the pipeline's public key, or the name it was added under with "
        "`pipeline keys add NAME KEY --server` (default: the only one added).",
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure", help="Plain tcp without CURVE keys; loopback addresses only (tests, benches)."
    ),
]


def _use_insecure(address: str) -> None:
    """Plain tcp for this process and the stages it starts, loopback only."""
    if not transport.is_loopback_endpoint(address):
        raise UserError(
            f"--insecure serves plain tcp, which only a loopback address may ({address} is not "
            "one): use tcp://127.0.0.1:PORT, or drop --insecure and make keys with "
            "`pipeline keys init`"
        )
    os.environ[transport.INSECURE_ENV] = "1"
    transport.use_insecure_loopback()


def _use_keys(connect: str | None, server_key: str | None, insecure: bool) -> None:
    """Choose how this process talks tcp, before any socket opens."""
    from repcoach.common.keys import client_curve, keys_dir

    os.environ.pop(transport.INSECURE_ENV, None)  # only an explicit --insecure counts
    if insecure:
        if not connect:
            raise UserError("--insecure only applies with --connect tcp://... or --bind tcp://...")
        _use_insecure(connect)
    elif connect:
        os.environ["REPCOACH_KEYS_DIR"] = str(keys_dir())
        transport.use_curve(client_curve(server_key))


def _topology(name: str, connect: str | None) -> Topology:
    if connect:
        return Topology.tcp(connect, for_binding=False)
    info = run_dir(name) / "pipeline.json"
    if info.exists():
        topology = Topology.from_dict(json.loads(info.read_text())["topology"])
        if topology.insecure:  # a local pipeline started with --insecure
            _use_insecure(topology.connect("control"))
        return topology
    raise UserError(
        f"no pipeline named {name!r} is running here; start one with "
        "`pipeline up --source ...` or give --connect tcp://HOST:PORT"
    )


def _no_answer(where: str, topology: Topology) -> UserError:
    hint = "is it still running?"
    if topology.is_tcp and not topology.insecure:
        hint += (
            " over tcp this host's public key must be allowed there (`pipeline keys add NAME "
            "KEY` on the pipeline's host) and --server-key must be the pipeline's key"
        )
    return UserError(f"pipeline {where} did not answer within 3 s ({hint})")


def _remote_config(topology: Topology, where: str) -> PipelineConfig:
    """The running pipeline's config, re-pointed at the addresses we reach it by."""
    reply = transport.request(topology.connect("control"), b"CONFIG", timeout_s=3.0)
    if reply is None:
        raise _no_answer(where, topology)
    try:
        data = json.loads(reply[0])
        data["topology"] = topology.to_dict()
        return PipelineConfig.from_dict(data)
    except (ValueError, KeyError, TypeError) as error:  # an older or hostile peer
        raise UserError(
            f"pipeline {where} sent a config this version cannot read ({error})"
        ) from None


def _with_policies(stations: tuple[Station, ...], realtime: bool) -> tuple[Station, ...]:
    """Each station with its flow policy: a camera or stream (or any source
    with `--realtime`) LATEST, a file LOSSLESS. Each source is opened now,
    so a bad one is said in one line before any process starts."""
    from repcoach.stages.capture import open_source

    placed = []
    for station in stations:
        opened = open_source(station.source)
        live = opened.live or realtime
        opened.close()
        policy = FlowPolicy.LATEST if live else FlowPolicy.LOSSLESS
        placed.append(dataclasses.replace(station, policy=policy))
    return tuple(placed)


def _pipeline_policy(stations: tuple[Station, ...]) -> FlowPolicy:
    """LOSSLESS while any station is (its results must reach the sinks)."""
    if any(s.policy is FlowPolicy.LOSSLESS for s in stations):
        return FlowPolicy.LOSSLESS
    return FlowPolicy.LATEST


# Sinks that show or say one station's picture or counts at a time.
ONE_STATION_SINKS = ("video", "voice")


def _check_sinks_serve(sinks: list[Spec], stations: tuple[Station, ...], profile: str | None):
    """Every sink's `station=` names a station; with several stations a sink
    that shows or says one station's (video, voice) says which."""
    from repcoach.stages.sinks import station_of

    names = tuple(s.name for s in stations)
    for spec in sinks:
        if station_of(spec, names) is None and spec.name in ONE_STATION_SINKS and len(names) > 1:
            raise UserError(
                f"--sink {spec.name} shows one station: add station=NAME, one of "
                f"{', '.join(names)} (console, jsonl, summary, webhook, history and web serve all)"
            )
    if profile and len(names) > 1:
        raise UserError(
            f"--profile binds one station's person to a member; with {len(names)} "
            "sources every station's people are recorded as guests for now"
        )


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
    ctx: typer.Context,
    sources: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="cameraN, a video file, rtsp://... or http(s)://..., synthetic:EXERCISE; "
            "repeat it for several stations, each NAME=SOURCE or named after its source.",
        ),
    ] = None,
    gym_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A TOML file of stations (source, name, exercise, sinks) and options; "
            "see docs/stations.md.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=64,
            help="Segmentation workers (default: one per GPU, else one per core up to 4; "
            "1 for maskrcnn on CPU; 0 with --bind: all of them on other hosts).",
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
    stall_timeout: Annotated[
        float,
        typer.Option(
            min=0, help="Files: end the run as failed when no frame moves this long (s; 0 = never)."
        ),
    ] = 60.0,
    weights_dir: Annotated[
        Path | None, typer.Option(envvar="REPCOACH_WEIGHTS_DIR", help="Model weights folder.")
    ] = None,
    bind: Annotated[
        str | None, typer.Option(help="Listen on tcp://HOST:PORT (+7 ports) instead of ipc.")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="Member the station's person trains as (history, level).")
    ] = None,
    level: MemberLevelOption = None,
    history: HistoryOption = None,
    keep_history: Annotated[
        bool, typer.Option("--history/--no-history", help="Record reps in the history database.")
    ] = True,
    report: Annotated[
        Path | None, typer.Option(help="Write the HTML session report into this folder at the end.")
    ] = None,
    metrics: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve Prometheus metrics, /healthz and /readyz on this port (0: any free one).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address the metrics endpoint listens on.")
    ] = "127.0.0.1",
    checkin: Annotated[
        bool,
        typer.Option(help="Members check in by showing their code (`pipeline members qr`)."),
    ] = True,
    checkin_hold: Annotated[
        float,
        typer.Option(
            min=1, max=86400, help="A check-in ends once its person is out of view this long (s)."
        ),
    ] = 60.0,
    ble: Annotated[
        str | None,
        typer.Option(
            help="Bluetooth controller for heart-rate straps, a bumble transport: "
            "usb:0, hci-socket:0, tcp-client:HOST:PORT."
        ),
    ] = None,
    strap: Annotated[
        list[str] | None,
        typer.Option(
            help="A heart-rate strap: ADDRESS=MEMBER (theirs wherever they check in) or "
            "ADDRESS@STATION (whoever trains there); repeatable; see `pipeline wearables scan`."
        ),
    ] = None,
    insecure: InsecureOption = False,
    name: NameOption = "default",
) -> None:
    """Start every stage and run until the sources end (files) or Ctrl-C."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    station_sinks: list[Spec] = []
    if gym_file is not None:
        from repcoach.launch.gym_file import read_gym_file

        if sources:
            raise UserError("give the stations in --config or with --source, not both")
        gym = read_gym_file(gym_file)
        stations = gym.stations
        # An option typed on the command line beats the file, the file a default.
        name = _typed_or(ctx, "name", name, gym.name)
        exercise = _typed_or(ctx, "exercise", exercise, gym.exercise)
        summary = _typed_or(ctx, "summary", summary, gym.summary)
        workers = _typed_or(ctx, "workers", workers, gym.workers)
        realtime = _typed_or(ctx, "realtime", realtime, gym.realtime)
        checkin_hold = _typed_or(ctx, "checkin_hold", checkin_hold, gym.checkin_hold_s)
        ble = _typed_or(ctx, "ble", ble, gym.ble)
        strap = _typed_or(ctx, "strap", strap, list(gym.straps) or None)
        station_sinks = [_station_sink(text, station) for text, station in gym.sinks]
    elif sources:
        stations = make_stations(sources)
    else:
        raise UserError("give what to watch: --source (cameraN, a file, a URL) or --config FILE")
    topology = _bind_topology(bind, insecure, name)
    from repcoach.common.history import default_history_path
    from repcoach.common.weights import default_weights_dir
    from repcoach.launch.supervisor import Supervisor
    from repcoach.stages.segmenters import check_segmenter, default_workers
    from repcoach.stages.sinks import check_sink, parse_sink

    for exercise_name in {exercise, *(s.exercise for s in stations if s.exercise)}:
        _check_exercise(exercise_name)
    if workers == 0 and not bind:
        raise UserError(
            "--workers 0 needs --bind tcp://...: the workers then run on other hosts "
            "(`pipeline stage segment --connect ...`)"
        )
    gpu_ids = _parse_gpus(gpus)
    check_segmenter(segmenter, weights_dir or default_weights_dir())
    if truth is not None and not any(s.source.startswith("synthetic:") for s in stations):
        raise UserError("--truth only applies to synthetic:... sources")
    folder = run_dir(name)
    _check_running(name)
    stations = _with_policies(stations, realtime)
    policy = _pipeline_policy(stations)
    if loop and not realtime and any(s.policy is FlowPolicy.LATEST for s in stations):
        raise UserError("--loop applies to files and synthetic sources, not live ones")
    sinks = [parse_sink(text) for text in (["console"] if console else []) + list(sink or [])]
    sinks += station_sinks
    _check_sinks_serve(sinks, stations, profile)
    if summary is not None:
        sinks.append(Spec("summary", {"path": str(summary)}))
    session_id = PipelineConfig.new_session_id()
    if report is not None:
        if not keep_history:
            raise UserError("--report needs the history database; drop --no-history")
        from repcoach.stages.report.writer import check_target

        check_target(report)
    for spec in sinks:
        check_sink(spec)
    straps = _straps(strap or [], ble, stations)
    history_db = str(history or default_history_path()) if keep_history else ""
    # Last of the checks: it creates the member (and the database) if new.
    member, level_name = _member(profile, level, Path(history_db) if keep_history else None)
    reports = _report_files(report, stations)
    if keep_history:
        recorder = _history_sink(history_db, session_id, member, level_name, name, stations, report)
        check_sink(recorder)
        sinks.append(recorder)
    config = PipelineConfig(
        name=name,
        stations=stations,
        policy=policy,
        realtime=realtime,
        loop=loop,
        workers=default_workers(segmenter, gpu_ids) if workers is None else workers,
        gpus=gpu_ids,
        segmenter=segmenter,
        joints=joints.value,
        exercise=exercise,
        weights_dir=str(weights_dir or ""),
        max_age_s=max_age,
        stall_s=stall_timeout,
        # One frame a worker at a time where a camera waits for the workers.
        prefetch=1 if any(s.policy is FlowPolicy.LATEST for s in stations) else 2,
        expect_sinks=len(sinks),
        truth_path=str(truth or ""),
        session_id=session_id,
        profile=member or "",
        level=level_name,
        history_db=history_db,
        checkin=checkin,
        checkin_hold_s=checkin_hold,
        ble=ble or "",
        straps=straps,
        topology=topology.to_dict(),
    )
    metrics_server = None
    if metrics is not None:
        from repcoach.launch.metrics import MetricsServer

        metrics_server = MetricsServer(metrics_host, metrics, pipeline=name)
        typer.echo(f"metrics: http://{metrics_host}:{metrics_server.port}/metrics", err=True)
    supervisor = Supervisor(config, folder, sinks, metrics_server)
    # "written" only for a file this run replaced, never for a stale one
    before = {p: _file_id(p) for p in (summary, *reports) if p}
    code = supervisor.run()
    fresh = [p for p, seen in before.items() if p.exists() and _file_id(p) != seen]
    if supervisor.failure:
        if summary in fresh:
            _add_warning(summary, supervisor.failure)
        raise UserError(supervisor.failure)
    if summary is not None and summary in fresh:
        typer.echo(f"summary written to {summary}")
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if warning := json.loads(summary.read_text()).get("warning"):
                typer.echo(f"warning: {warning}", err=True)  # e.g. a truncated file
    elif summary is not None:
        typer.echo(
            f"error: the summary {summary} was not written (see {folder / 'logs'})", err=True
        )
        code = code or 1
    for index in reports:
        if index in fresh:
            typer.echo(f"report written to {index}")
    raise typer.Exit(code)


def _add_warning(summary: Path, failure: str) -> None:
    """Say in a summary written by a failed run why its numbers are not
    whole (its `warning`), keeping what it holds."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        document = json.loads(summary.read_text())
        document["warning"] = "; ".join(w for w in (document.get("warning"), failure) if w)
        write_json_atomic(summary, document)


def _straps(texts: list[str], ble: str | None, stations: tuple[Station, ...]) -> tuple:
    """The `--strap` values, checked: a controller to read them through, and
    stations that exist."""
    straps = make_straps(texts)
    if straps and not ble:
        raise UserError("--strap needs --ble: the Bluetooth controller to read it through")
    names = {s.name for s in stations}
    for item in straps:
        if item.station and item.station not in names:
            raise UserError(
                f"--strap {item.address}@{item.station}: no station {item.station!r} "
                f"(stations: {', '.join(sorted(names))})"
            )
    return straps


def _typed_or(ctx: typer.Context, parameter: str, typed, from_file):
    """The option's value if it was given on the command line (or by its
    environment variable, such as REPCOACH_NAME), else the file's (when it
    has one), else the option's default."""
    source = ctx.get_parameter_source(parameter)
    if from_file is None or (source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")):
        return typed
    return from_file


def _station_sink(text: str, station: str | None) -> Spec:
    """A `--sink` text from a config file, serving `station` alone when given."""
    from repcoach.stages.sinks import STATION_OPTION, parse_sink

    spec = parse_sink(text)
    if station is None:
        return spec
    if STATION_OPTION in spec.options:
        raise UserError(f"station {station}: its {spec.name} sink serves it alone; drop station=")
    return Spec(spec.name, {**spec.options, STATION_OPTION: station})


def _report_files(report: Path | None, stations: tuple[Station, ...]) -> list[Path]:
    """The session reports `--report DIR` asks for: DIR/index.html for one
    station, DIR/STATION/index.html for each of several."""
    if report is None:
        return []
    if len(stations) == 1:
        return [report / "index.html"]
    return [report / s.name / "index.html" for s in stations]


def _history_sink(
    db: str,
    session_id: str,
    member: str,
    level: str,
    name: str,
    stations: tuple[Station, ...],
    report: Path | None,
) -> Spec:
    """The history sink: it records each station as a session of its own,
    stations added later too; a pipeline started with one station records it
    as session `session_id`, labelled with the pipeline's name."""
    options = {
        "path": db,
        "session": session_id,
        "member": member,
        "level": level,
        "label": name,
        "report": report,
        "first": stations[0].name if len(stations) == 1 else None,
    }
    return Spec("history", {k: str(v) for k, v in options.items() if v})


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _bind_topology(bind: str | None, insecure: bool, name: str) -> Topology:
    """Where `up` listens, refusing tcp without keys (or --insecure off loopback)."""
    from repcoach.common.keys import keys_dir, local_curve

    os.environ.pop(transport.INSECURE_ENV, None)  # only an explicit --insecure counts
    if not bind:
        if insecure:
            raise UserError("--insecure only applies with --bind tcp://...")
        return Topology.local(name)
    topology = Topology.tcp(bind, for_binding=True, insecure=insecure)
    if insecure:
        _use_insecure(bind)
        return topology
    try:
        curve = local_curve()
    except UserError as error:
        raise UserError(f"--bind {bind} needs CURVE keys: {error}") from None
    os.environ["REPCOACH_KEYS_DIR"] = str(keys_dir())  # the stages read the same folder
    transport.use_curve(curve)
    return topology


def _member(
    profile: str | None, level: Level | None, history: Path | None, what: str = "--profile"
) -> tuple[str, str]:
    """The member's name and strictness level. With a history database a new
    member is created there and `--level` saved to their profile; without
    one (`--no-history`) nothing is read or written."""
    from repcoach.common.history import DEFAULT_LEVEL, History

    if profile and not re.fullmatch(r"[\w .'-]{1,64}", profile):
        raise UserError(f"{what} {profile!r}: use letters, digits, spaces, '.', '-' or '_'")
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
    server_key: ServerKeyOption = None,
    insecure: InsecureOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each stage: alive, restarts, frames, fps, queue, drops, latency."""
    from repcoach.launch.status_view import station_table, status_table
    from repcoach.launch.supervisor import read_status

    _use_keys(connect, server_key, insecure)
    topology = _topology(name, connect)
    reply = transport.request(topology.connect("control"), b"STATUS", timeout_s=3.0)
    if reply is None:
        raise _no_answer(repr(name) if connect is None else f"at {connect}", topology)
    data = read_status(reply)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        from rich.console import Console

        Console().print(station_table(data))
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
    station: Annotated[
        str | None, typer.Option(help="Serve this station alone (a pipeline with several).")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Any other sink option: KEY=VALUE.")
    ] = None,
    name: NameOption = "default",
    connect: ConnectOption = None,
    server_key: ServerKeyOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Run one more sink against a running pipeline, until it ends or Ctrl-C."""
    from repcoach.launch.stage import EXIT_USER_ERROR, run_stage
    from repcoach.stages.sinks import check_sink

    options = {
        key: str(value)
        for key, value in {"path": path, "port": port, "host": host, "url": url}.items()
        if value is not None
    }
    options |= {"frames": "1"} if frames else {}
    options |= {"blur_faces": "1"} if blur_faces else {}
    options |= {"station": station} if station else {}
    for n, item in enumerate(option or [], 1):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():  # not echoed: it may be a secret
            raise UserError(f"--option number {n} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    spec = Spec(kind, options)
    check_sink(spec)
    _use_keys(connect, server_key, insecure)
    config = _remote_config(_topology(name, connect), repr(name) if connect is None else connect)
    _check_sinks_serve([spec], tuple(s for s in config.stations if not s.removed), None)
    code = run_stage("sink", config, 0, spec)
    # A sink that cannot start (port in use, ...) printed its one line; exit 1 as other errors do.
    raise typer.Exit(1 if code == EXIT_USER_ERROR else code)


@source_app.command("add")
def source_add(
    station: Annotated[str, typer.Argument(help="The new station's name (letters, digits, -_.).")],
    source: Annotated[
        str,
        typer.Argument(help="cameraN, a video file, rtsp://..., http(s)://... or synthetic:..."),
    ],
    exercise: Annotated[
        str | None, typer.Option(help="The exercise done there (default: the pipeline's).")
    ] = None,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for its first frames (0: do not wait).")
    ] = 30.0,
    name: NameOption = "default",
    connect: ConnectOption = None,
    server_key: ServerKeyOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Add a station to a running pipeline; the other stations go on undisturbed."""
    from repcoach.common.redact import mask_url
    from repcoach.launch.station_changes import add_request
    from repcoach.stages.capture import source_kind

    if exercise:
        _check_exercise(exercise)
    text = source.strip()
    if source_kind(text) == "file":  # the pipeline may run in another folder
        text = str(Path(text).resolve())
    _use_keys(connect, server_key, insecure)
    topology = _topology(name, connect)
    where = repr(name) if connect is None else f"at {connect}"
    answer = _station_change(topology, where, add_request(station, text, exercise or ""))
    flow = "live" if answer.get("policy") == FlowPolicy.LATEST.value else "every frame"
    typer.echo(f"station {station} added ({flow}): opening {mask_url(text)}")
    if wait > 0:
        _wait_for_station(topology, where, station, wait, until_ended=False)


@source_app.command("remove")
def source_remove(
    station: Annotated[str, typer.Argument(help="The station to take out.")],
    name: NameOption = "default",
    connect: ConnectOption = None,
    server_key: ServerKeyOption = None,
    insecure: InsecureOption = False,
) -> None:
    """End one station's stream in a running pipeline; the others go on."""
    from repcoach.launch.station_changes import remove_request

    _use_keys(connect, server_key, insecure)
    topology = _topology(name, connect)
    where = repr(name) if connect is None else f"at {connect}"
    _station_change(topology, where, remove_request(station))
    typer.echo(f"station {station} removed: its stream ends after the frames in flight")
    _wait_for_station(topology, where, station, 30.0, until_ended=True)


def _station_change(topology: Topology, where: str, body: bytes) -> dict:
    """Send a station change to the pipeline; its answer, or its one-line refusal."""
    reply = transport.request(topology.connect("control"), body, timeout_s=3.0)
    if reply is None:
        raise _no_answer(where, topology)
    try:
        answer = decode_plain(reply[0]) if reply else None
    except MessageError:
        answer = None
    if not isinstance(answer, dict):
        raise UserError(f"pipeline {where} answered with something unexpected")
    if "error" in answer:
        raise UserError(str(answer["error"]))
    return answer


def _wait_for_station(
    topology: Topology, where: str, station: str, timeout_s: float, until_ended: bool
) -> None:
    """Follow `pipeline status` until the station's first frames are
    analysed (or, `until_ended`, its stream has ended) and say so; a
    station that ended without a frame is an error."""
    from repcoach.launch.supervisor import read_status

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reply = transport.request(topology.connect("control"), b"STATUS", timeout_s=3.0)
        if reply is None:
            if until_ended:  # its last station ended: the run is over
                typer.echo(f"station {station}: the pipeline has ended")
                return
            raise UserError(f"pipeline {where} ended before station {station} had started")
        status = read_status(reply)
        score = next((r["report"] for r in status["stages"] if r["stage"] == "score"), None)
        row = ((score or {}).get("stations") or {}).get(station)
        if row and row["ended"] and not row["frames"] and not until_ended:
            raise UserError(f"station {station} ended without a frame: {row['ended']}")
        if row and (row["ended"] if until_ended else row["frames"]):
            done = f"its stream ended ({row['ended']})" if until_ended else "frames are flowing"
            typer.echo(f"station {station}: {done}; {row['frames']} frame(s) analysed")
            return
        time.sleep(0.5)
    typer.echo(
        f"station {station}: no "
        + ("end of stream" if until_ended else "frame")
        + f" analysed yet after {timeout_s:.0f} s; `pipeline status` shows when there is"
    )


@wearables_app.command("scan")
def wearables_scan(
    ble: Annotated[
        str,
        typer.Option(help="The Bluetooth controller: usb:0, hci-socket:0, tcp-client:HOST:PORT."),
    ],
    seconds: Annotated[float, typer.Option(min=1, max=60, help="How long to listen.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the heart-rate straps and watches in range (Heart Rate Service)."""
    import asyncio

    from repcoach.stages.wearables import scan

    found = asyncio.run(scan(ble, seconds))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for item in found:
        typer.echo(f"{item['address']}  {item['rssi']:>4} dBm  {item['name']}")
    typer.echo(f"{len(found)} heart-rate device(s) heard in {seconds:g} s")


MemberArgument = Annotated[str, typer.Argument(help="The member's name (made a member if new).")]
MemberLevelOption = Annotated[
    Level | None, typer.Option(help="Strictness of the coaching; saved to the member's profile.")
]


@members_app.command("qr")
def members_qr(
    member: MemberArgument,
    out: Annotated[
        Path | None, typer.Option(help="Save the code as a PNG here instead of printing it.")
    ] = None,
    level: MemberLevelOption = None,
    history: HistoryOption = None,
) -> None:
    """Issue a member's check-in code: shown to a station's camera, it makes
    the person holding it that member (their reps go to their history)."""
    from repcoach.common.history import default_history_path
    from repcoach.common.member_codes import MemberCodes, qr_image, qr_text

    code = MemberCodes(create=True).code_for(member)
    _member(member, level, history or default_history_path(), what="member name")
    if out is None:
        typer.echo(qr_text(code))
        typer.echo(f"{member}'s check-in code (show it to a station's camera)")
        return
    import cv2

    ok, png = cv2.imencode(".png", qr_image(code))
    try:
        with atomic_file(out) as handle:
            handle.write(png.tobytes())
    except OSError as error:
        raise UserError(write_failure(out, error)) from None
    typer.echo(f"{member}'s check-in code written to {out}")


@members_app.command("set")
def members_set(
    member: MemberArgument,
    level: MemberLevelOption = None,
    max_hr: Annotated[
        int | None,
        typer.Option(
            help="Maximum heart rate (bpm): the report's heart-rate zones are shares of it."
        ),
    ] = None,
    history: HistoryOption = None,
) -> None:
    """Save a member's profile: strictness level, maximum heart rate."""
    from repcoach.common.history import History, default_history_path

    path = history or default_history_path()
    name, level_name = _member(member, level, path, what="member name")
    db = History.open(path)
    try:
        if max_hr is not None:
            db.set_max_hr(name, max_hr)
        saved = db.max_hr(name)
    finally:
        db.close()
    heart = f", maximum heart rate {saved} bpm" if saved else ", no maximum heart rate"
    typer.echo(f"{name}: level {level_name}{heart}")


@app.command("stage", hidden=True)
def stage(
    role: Annotated[str, typer.Argument(help="segment | joints | score | capture")],
    connect: Annotated[str, typer.Option(help="The pipeline: tcp://HOST:PORT")],
    index: Annotated[int, typer.Option(help="Worker number (unique per pipeline).")] = 100,
    server_key: ServerKeyOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Run one stage of a pipeline that lives on another host."""
    from repcoach.launch.stage import run_stage

    _use_keys(connect, server_key, insecure)
    config = _remote_config(Topology.tcp(connect, for_binding=False), f"at {connect}")
    raise typer.Exit(run_stage(role, config, index))


# --- keys


@keys_app.command("init")
def keys_init(
    name: Annotated[
        str | None, typer.Option(help="What peers call this host (default: its hostname).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace an existing key pair (peers must allow the new key).")
    ] = False,
) -> None:
    """Make this host's CURVE key pair (for binding a pipeline and for connecting to one)."""
    from repcoach.common.keys import KeyStore

    store = KeyStore()
    pair = store.init(name, force)
    typer.echo(f"key pair {pair.name!r} written to {store.folder} (secret key: mode 0600)")
    key = pair.public.decode()
    typer.echo(f"public key: {key}")
    typer.echo(
        f"Quote it (Z85 has shell characters). Allow this host on a pipeline's host with "
        f"`pipeline keys add {pair.name} '{key}'`, or trust this pipeline on a worker's host "
        f"with `pipeline keys add {pair.name} '{key}' --server`."
    )


@keys_app.command("show")
def keys_show() -> None:
    """Print this host's public key (the one to hand to peers)."""
    from repcoach.common.keys import KeyStore

    typer.echo(KeyStore().own().public.decode())


# A Z85 key may start with "-": taken as the argument it is, not an option.
@keys_app.command("add", context_settings={"ignore_unknown_options": True})
def keys_add(
    name: Annotated[str, typer.Argument(help="A name for the peer: letters, digits, . _ -")],
    public_key: Annotated[str, typer.Argument(help="Its public key (40 Z85 characters).")],
    server: Annotated[
        bool,
        typer.Option(
            "--server", help="Trust NAME as a pipeline this host connects to (worker hosts)."
        ),
    ] = False,
) -> None:
    """Allow a client (worker, sink, status) here; with --server, trust a pipeline."""
    from repcoach.common.keys import KeyStore

    path = KeyStore().add(name, public_key, server=server)
    what = "trusted as a pipeline to connect to" if server else "allowed to connect"
    typer.echo(f"{name} {what} ({path})")


@keys_app.command("import")
def keys_import(
    folder: Annotated[
        Path, typer.Argument(help="A key folder (self.key_secret, allowed/, servers/).")
    ],
) -> None:
    """Copy a key folder someone else owns (a mounted Kubernetes Secret) into
    this host's private key folder."""
    from repcoach.common.keys import KeyStore

    store = KeyStore()
    name, allowed, servers = store.import_from(folder)
    typer.echo(
        f"imported {name}'s key pair, {allowed} allowed client(s) and "
        f"{servers} trusted pipeline(s) into {store.folder}"
    )


@keys_app.command("remove")
def keys_remove(
    name: Annotated[str, typer.Argument(help="The peer's name.")],
    server: Annotated[bool, typer.Option("--server", help="A trusted pipeline.")] = False,
) -> None:
    """Revoke an allowed client (new connections are refused at once)."""
    from repcoach.common.keys import KeyStore

    KeyStore().remove(name, server=server)
    typer.echo(f"{name} removed")


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """This host's public key, the allowed clients and the trusted pipelines."""
    from repcoach.common.keys import KeyStore

    store = KeyStore()
    own = store.own() if store.has_own() else None
    data = {
        "folder": str(store.folder),
        "self": None if own is None else {"name": own.name, "public_key": own.public.decode()},
        "allowed": {n: k.decode() for n, k in store.allowed().items()},
        "servers": {n: k.decode() for n, k in store.servers().items()},
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"key folder {data['folder']}")
    typer.echo(
        "this host: none (`pipeline keys init`)"
        if own is None
        else f"this host: {own.name} {own.public.decode()}"
    )
    for title, peers in (
        ("allowed clients", data["allowed"]),
        ("trusted pipelines", data["servers"]),
    ):
        typer.echo(f"{title}:" + ("" if peers else " none"))
        for peer, key in peers.items():
            typer.echo(f"  {peer} {key}")


# --- service


@service_app.command(
    "install", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def service_install(
    ctx: typer.Context,
    name: NameOption = "default",
    user: Annotated[str, typer.Option(help="The system user the pipeline runs as.")] = "repcoach",
    unit_dir: Annotated[Path, typer.Option(help="Where to write the unit.")] = Path(
        "/etc/systemd/system"
    ),
) -> None:
    """Write a systemd unit that runs `pipeline up ARGS` at boot: `pipeline
    service install --name floor -- --source rtsp://cam/1 --sink web:port=8080`."""
    from repcoach.launch.service import pipeline_executable, render_unit, unit_name

    up_args = list(ctx.args)
    if up_args[:1] == ["--"]:
        up_args = up_args[1:]
    check_name(name)
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        raise UserError(f"--user {user!r} is not a system user name")
    check_command(["up", "--no-console", *up_args])
    path = unit_dir / unit_name(name)
    text = render_unit(name, user, up_args, pipeline_executable())
    try:
        with atomic_file(path) as handle:
            handle.write(text.encode())
            os.fchmod(handle.fileno(), 0o644)  # systemd and admins read it
    except OSError as error:
        raise UserError(write_failure(path, error)) from None
    typer.echo(f"wrote {path}")
    try:
        pwd.getpwnam(user)
    except KeyError:
        typer.echo(
            f"create its user first: useradd --system --no-create-home "
            f"--shell /usr/sbin/nologin {user}"
        )
    typer.echo(f"then: systemctl daemon-reload && systemctl enable --now {unit_name(name)}")


def _check_exercise(exercise: str) -> None:
    if exercise not in _exercises():
        raise UserError(f"--exercise {exercise!r} is not known; valid: {', '.join(_exercises())}")


def check_command(words: list[str]) -> None:
    """Parse `pipeline WORDS...` as the CLI would (commands, options, types,
    ranges) without running anything; a UserError in one line if it would
    not start. Service units and Kubernetes manifests are checked with it."""
    command, rest = typer.main.get_command(app), list(words)
    while isinstance(command, typer.core.TyperGroup):  # `sink attach`, `keys import`, ...
        sub = command.get_command(None, rest[0]) if rest else None  # type: ignore[arg-type]
        if sub is None:
            raise UserError(f"`pipeline {' '.join(words)}`: no such command")
        command, rest = sub, rest[1:]
    try:
        params = command.make_context(command.name or "", rest).params
    except typer.TyperException as error:
        raise UserError(f"`pipeline {' '.join(words)}`: {error.format_message()}") from None
    if command.name == "up":  # what `up` checks before it starts anything, short of the source
        from repcoach.stages.sinks import check_sink, parse_sink

        _check_exercise(params["exercise"])
        for text in params["sink"] or []:
            check_sink(parse_sink(text))


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
