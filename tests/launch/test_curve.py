"""CURVE on tcp, with real pipelines, real processes and real sockets.

A pipeline bound on tcp serves a segment worker and a sink from "another
host" (their own key folder); peers without an allowed key get nothing. Where
the tests run as root, a second test puts the pipeline and the worker in two
Linux network namespaces joined by a veth pair and cuts the link mid-file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
import zmq

from repcoach.common.endpoints import ROLES, outgoing_ports_start
from tests.conftest import (
    free_port_block,
    netns_allowed,
    pipeline_command,
    read_jsonl,
    run_keys,
    stage_report,
)

FAST = ["--joints", "none", "--no-console"]
STRANGER_WAIT_S = 2.5


def frame_seqs(records: list[dict]) -> list[int]:
    return [r["seq"] for r in records if r["type"] == "frame"]


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def public_key(pipeline, folder: Path) -> str:
    return run_keys(pipeline, folder, "show").strip()


def secret_key(folder: Path) -> str:
    text = (folder / "self.key_secret").read_text()
    return next(line.split('"')[1] for line in text.splitlines() if "secret-key" in line)


@pytest.fixture
def hosts(pipeline, tmp_path):
    """Key folders of three hosts: the pipeline's ("edge"), an allowed worker
    host ("gpu") and a stranger that trusts the pipeline but is not allowed."""
    folders = {name: tmp_path / f"keys-{name}" for name in ("edge", "gpu", "stranger")}
    for name, folder in folders.items():
        run_keys(pipeline, folder, "init", "--name", name)
    edge = public_key(pipeline, folders["edge"])
    run_keys(pipeline, folders["edge"], "add", "gpu", public_key(pipeline, folders["gpu"]))
    for client in ("gpu", "stranger"):
        run_keys(pipeline, folders[client], "add", "edge", edge, "--server")
    pipeline.env["REPCOACH_KEYS_DIR"] = str(folders["edge"])
    return folders


def as_host(pipeline, folder: Path) -> dict:
    return {**pipeline.env, "REPCOACH_KEYS_DIR": str(folder)}


def start(command: list[str], env: dict, pipeline) -> subprocess.Popen:
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    pipeline.processes.append(process)  # killed by the fixture if the test fails
    return process


# --- refusals (no pipeline starts)


def test_tcp_bind_without_keys_refuses_in_one_line(pipeline, video, tmp_path):
    pipeline.env["REPCOACH_KEYS_DIR"] = str(tmp_path / "no-keys")
    source = str(video(5))
    result = pipeline.run("up", "--source", source, "--bind", "tcp://127.0.0.1:25550", *FAST)
    line = one_line_error(result)
    assert "needs CURVE keys" in line and "`pipeline keys init`" in line
    assert "--insecure" in line


@pytest.mark.parametrize(
    "command",
    [
        ["up", "--source", "{video}", "--bind", "tcp://0.0.0.0:25550", "--insecure", *FAST],
        ["up", "--source", "{video}", "--bind", "tcp://10.20.30.40:25550", "--insecure", *FAST],
        ["stage", "segment", "--connect", "tcp://10.20.30.40:25550", "--insecure"],
        ["status", "--connect", "tcp://192.168.1.9:25550", "--insecure"],
    ],
)
def test_insecure_is_refused_off_loopback(pipeline, video, command):
    source = str(video(5))
    result = pipeline.run(*(source if arg == "{video}" else arg for arg in command))
    line = one_line_error(result)
    assert "only a loopback address may" in line


def test_insecure_needs_a_tcp_address(pipeline, video):
    result = pipeline.run("up", "--source", str(video(5)), "--insecure", *FAST)
    assert "--insecure only applies with --bind" in one_line_error(result)


def _chown_nobody(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a folder to another user")
    import pwd

    nobody = pwd.getpwnam("nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)


@pytest.mark.parametrize("problem", ["world-writable", "group-writable", "another user's"])
def test_a_run_folder_others_control_is_refused(pipeline, video, run_root, problem):
    folder = run_root / "default"
    folder.mkdir(mode=0o700)
    if problem == "world-writable":
        folder.chmod(0o777)
    elif problem == "group-writable":
        folder.chmod(0o770)
    else:
        _chown_nobody(folder)
    for args in (["up", "--source", str(video(5)), *FAST], ["status"]):
        line = one_line_error(pipeline.run(*args))
        assert f"run folder {folder}" in line
        assert (
            "belongs to user nobody" if problem == "another user's" else "writable by others"
        ) in line
    assert not (folder / "logs").exists()  # nothing was started in it


def test_a_default_run_root_planted_by_another_user_is_refused(pipeline, video, tmp_path):
    """The default run root is /tmp/repcoach-UID: anyone can create that name first."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    planted = temp / f"repcoach-{os.getuid()}"
    planted.mkdir()
    _chown_nobody(planted)
    env = {k: v for k, v in pipeline.env.items() if k != "REPCOACH_RUN_DIR"}
    pipeline.env = {**env, "TMPDIR": str(temp)}
    line = one_line_error(pipeline.run("up", "--source", str(video(5)), *FAST))
    assert f"run root {planted} belongs to user nobody" in line


def test_run_folder_is_created_private(pipeline, video, run_root):
    result = pipeline.run("up", "--source", str(video(10)), "--segmenter", "passthrough", *FAST)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((run_root / "default").stat().st_mode) == 0o700


def test_insecure_loopback_pipeline_runs_without_keys(pipeline, video, tmp_path):
    """Plain tcp on loopback with --insecure: the stages it starts and a local
    `status` (which reads the run folder) follow it; a remote stage must say so too."""
    pipeline.env["REPCOACH_KEYS_DIR"] = str(tmp_path / "no-keys")
    frames = 300
    address = f"tcp://127.0.0.1:{free_port_block()}"
    summary = tmp_path / "summary.json"
    up = pipeline.start(
        "up",
        "--source",
        str(video(frames)),
        "--bind",
        address,
        "--insecure",
        "--segmenter",
        "passthrough:jitter_ms=20-40",
        "--workers",
        "1",
        *FAST,
        "--summary",
        str(summary),
    )
    pipeline.wait_for(
        lambda s: (stage_report(s, "score")["report"] or {}).get("frames_out", 0) > 5,
        timeout=60,
        what="frames over plain loopback tcp",
    )
    # A client is CURVE unless told otherwise: without keys it says how to get them.
    curve_client = pipeline.run("status", "--connect", address)
    assert "no CURVE key pair" in one_line_error(curve_client)
    extra = pipeline.start("stage", "segment", "--connect", address, "--insecure", "--index", "9")
    assert up.wait(120) == 0, up.stderr.read()
    assert extra.wait(30) == 0, extra.stderr.read()
    document = json.loads(summary.read_text())
    assert (document["frames"], document["dropped"]) == (frames, 0)


def test_a_bind_port_another_program_holds_is_one_line(pipeline, video, tmp_path):
    """A port of the block already taken: the stage that binds it says so and
    the pipeline stops at once (a restart cannot free it), with nothing lost to
    report but the run itself."""
    pipeline.env["REPCOACH_KEYS_DIR"] = str(tmp_path / "no-keys")
    base = free_port_block()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + ROLES.index("results")))
        holder.listen()
        started = time.monotonic()
        result = pipeline.run(
            "up", "--source", str(video(50)), "--bind", f"tcp://127.0.0.1:{base}",
            "--insecure", *FAST,
        )  # fmt: skip
        took = time.monotonic() - started
    line = one_line_error(result)
    assert f"tcp://127.0.0.1:{base + ROLES.index('results')} is already in use" in line
    assert "pick another --bind port" in line
    assert f"under {outgoing_ports_start()} stays clear" in line
    assert took < 30, f"took {took:.0f} s: restarted a stage whose port is taken"


def test_every_worker_on_another_host_with_workers_0(pipeline, video, tmp_path):
    """`--workers 0`: the pipeline starts no worker of its own; the remote
    workers (here two on loopback) get every frame, each exactly once."""
    frames = 200
    address = f"tcp://127.0.0.1:{free_port_block()}"
    events = tmp_path / "events.jsonl"
    up = pipeline.start(
        "up", "--source", str(video(frames)), "--bind", address, "--insecure",
        "--segmenter", "passthrough:jitter_ms=5-20", "--workers", "0", *FAST,
        "--sink", f"jsonl:path={events},frames=1",
    )  # fmt: skip
    status = pipeline.wait_for(lambda s: s is not None, 60, what="the pipeline up")
    assert not [r for r in status["stages"] if r["stage"].startswith("segment")]
    workers = [
        pipeline.start("stage", "segment", "--connect", address, "--insecure", "--index", str(i))
        for i in (3, 4)
    ]
    assert up.wait(180) == 0, up.stderr.read()
    seqs = [r["seq"] for r in read_jsonl(events) if r.get("type") == "frame"]
    assert sorted(seqs) == list(range(frames))
    for worker in workers:
        assert worker.wait(30) == 0, worker.stderr.read()


def test_workers_0_without_bind_is_one_line(pipeline, video):
    result = pipeline.run("up", "--source", str(video(5)), "--workers", "0", *FAST)
    assert "--workers 0 needs --bind tcp://" in one_line_error(result)


# --- a pipeline on tcp with CURVE


class Stranger:
    """Raw pyzmq peers that try every socket of the pipeline; counts what they get."""

    def __init__(self, address_of):
        self.address_of = address_of
        self.got: dict[str, int] = {}

    def _socket(self, kind: int, role: str, curve: tuple[bytes, bytes, bytes] | None = None):
        sock = zmq.Context.instance().socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, 1000)
        if curve is not None:
            for option, value in zip(
                (zmq.CURVE_PUBLICKEY, zmq.CURVE_SECRETKEY, zmq.CURVE_SERVERKEY), curve, strict=True
            ):
                sock.setsockopt(option, value)
        sock.connect(self.address_of(role))
        return sock

    def _count(self, name: str, sock: zmq.Socket, send: list[bytes] | None) -> None:
        received = 0
        try:
            if send is not None:
                sock.send_multipart(send)
            deadline = time.monotonic() + STRANGER_WAIT_S
            while time.monotonic() < deadline:
                if sock.poll(100):
                    sock.recv_multipart()
                    received += 1
        except zmq.Again:  # refused: nowhere to send
            pass
        finally:
            sock.close(0)
        self.got[name] = received

    def try_everything(self, server_public: bytes) -> dict[str, int]:
        unknown = (*zmq.curve_keypair(), server_public)
        probes = [
            ("plain CONFIG", self._socket(zmq.REQ, "control"), [b"CONFIG"]),
            ("plain STATUS", self._socket(zmq.REQ, "control"), [b"STATUS"]),
            ("plain STOP", self._socket(zmq.REQ, "control"), [b"STOP"]),
            ("plain snapshot", self._socket(zmq.REQ, "snapshot"), [b"SNAPSHOT"]),
            ("plain work", self._socket(zmq.DEALER, "work"), [b"HELLO", b"\x81\xa7credits\x04"]),
            ("unknown-key CONFIG", self._socket(zmq.REQ, "control", unknown), [b"CONFIG"]),
            ("unknown-key work", self._socket(zmq.DEALER, "work", unknown), [b"HELLO"]),
        ]
        for feed in ("results", "tap"):
            for topic in (b"", b"video"):
                sub = self._socket(zmq.SUB, feed)
                sub.setsockopt(zmq.SUBSCRIBE, topic)
                probes.append((f"plain SUB {feed} {topic!r}", sub, None))
                sub = self._socket(zmq.SUB, feed, unknown)
                sub.setsockopt(zmq.SUBSCRIBE, topic)
                probes.append((f"unknown-key SUB {feed} {topic!r}", sub, None))
        threads = [
            threading.Thread(target=self._count, args=probe, daemon=True) for probe in probes
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(STRANGER_WAIT_S + 10)
        return self.got


def test_curve_pipeline_serves_an_allowed_remote_worker_and_sink_and_nobody_else(
    pipeline, hosts, video, tmp_path
):
    frames = 600
    port = free_port_block()
    address = f"tcp://127.0.0.1:{port}"
    events, attached, summary = (tmp_path / n for n in ("main.jsonl", "att.jsonl", "s.json"))
    up = pipeline.start(
        "up",
        "--source",
        str(video(frames)),
        "--bind",
        address,
        "--workers",
        "1",
        "--segmenter",
        "passthrough:jitter_ms=40-60",
        *FAST,
        "--sink",
        f"jsonl:path={events},frames=1",
        "--summary",
        str(summary),
    )
    gpu = as_host(pipeline, hosts["gpu"])
    worker = start(
        [*pipeline_command(), "stage", "segment", "--connect", address, "--index", "7"],
        gpu,
        pipeline,
    )
    sink_command = ["sink", "attach", "jsonl", "--path", str(attached), "--frames"]
    sink = start([*pipeline_command(), *sink_command, "--connect", address], gpu, pipeline)
    status = pipeline.wait_for(
        lambda s: (
            (stage_report(s, "segment-7")["report"] or {}).get("frames_out", 0) > 5
            if any(r["stage"] == "segment-7" for r in s["stages"])
            else False
        ),
        timeout=90,
        what="the remote worker to take frames over CURVE",
    )
    assert not stage_report(status, "segment-7")["supervised"]
    # The stranger: trusts the pipeline's key, but nobody allowed its own.
    refused = subprocess.run(
        [*pipeline_command(), "status", "--connect", address, "--json"],
        env=as_host(pipeline, hosts["stranger"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "did not answer within 3 s" in one_line_error(refused)
    assert refused.stdout == ""
    edge_public = public_key(pipeline, hosts["edge"]).encode()
    got = Stranger(lambda role: f"tcp://127.0.0.1:{port + ROLE_OFFSET[role]}").try_everything(
        edge_public
    )
    assert got and not any(got.values()), got
    # An allowed client reads status over tcp.
    allowed = subprocess.run(
        [*pipeline_command(), "status", "--connect", address, "--json"],
        env=gpu,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if up.poll() is None:  # the file may have ended meanwhile on a fast machine
        assert allowed.returncode == 0, allowed.stderr
        assert any(r["stage"] == "segment-7" for r in json.loads(allowed.stdout)["stages"])
    assert up.wait(120) == 0, up.stderr.read()
    assert worker.wait(30) == 0, worker.stderr.read()
    assert sink.wait(30) == 0, sink.stderr.read()
    # Every frame, so the stranger's STOP stopped nothing.
    assert frame_seqs(read_jsonl(events)) == list(range(frames))
    document = json.loads(summary.read_text())
    assert (document["frames"], document["dropped"]) == (frames, 0)
    seen = frame_seqs(read_jsonl(attached))
    assert seen and seen == sorted(seen) and seen[-1] == frames - 1
    logs = "".join(p.read_text() for p in (pipeline_run_dir(pipeline) / "logs").glob("*.log"))
    for folder in hosts.values():
        assert secret_key(folder) not in logs
    assert "refused a tcp peer whose public key" in logs


ROLE_OFFSET = {r: i for i, r in enumerate(ROLES)}


def pipeline_run_dir(pipeline, name: str = "default") -> Path:
    return Path(pipeline.env["REPCOACH_RUN_DIR"]) / name


# --- two hosts: network namespaces joined by a veth pair


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class TwoHosts:
    """Namespaces A (the pipeline, 10.231.X.1) and B (a worker, 10.231.X.2)."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.a, self.b = f"rcA{tag}", f"rcB{tag}"
        self.veth_a, self.veth_b = f"rcva{tag}", f"rcvb{tag}"
        subnet = os.getpid() % 200 + 20
        self.address_a, self.address_b = f"10.231.{subnet}.1", f"10.231.{subnet}.2"

    def __enter__(self) -> TwoHosts:
        try:
            _ip("netns", "add", self.a)
            _ip("netns", "add", self.b)
            _ip("link", "add", self.veth_a, "type", "veth", "peer", "name", self.veth_b)
            _ip("link", "set", self.veth_a, "netns", self.a)
            _ip("link", "set", self.veth_b, "netns", self.b)
            for ns, veth, address in (
                (self.a, self.veth_a, self.address_a),
                (self.b, self.veth_b, self.address_b),
            ):
                _ip("-n", ns, "addr", "add", f"{address}/24", "dev", veth)
                _ip("-n", ns, "link", "set", veth, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        for ns in (self.a, self.b):  # deleting a namespace deletes its veth end too
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)

    def link(self, up: bool) -> None:
        _ip("-n", self.b, "link", "set", self.veth_b, "up" if up else "down")

    def command(self, ns: str, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *pipeline_command(), *args]


def test_worker_in_another_network_namespace_survives_a_cut_link(pipeline, hosts, video, tmp_path):
    reason = netns_allowed()
    if reason:
        pytest.skip(reason)
    frames = 600
    port = free_port_block()
    summary, events = tmp_path / "summary.json", tmp_path / "frames.jsonl"
    with TwoHosts() as net:
        address = f"tcp://{net.address_a}:{port}"

        def status_in_a() -> dict | None:
            result = subprocess.run(
                net.command(net.a, ["status", "--json"]),
                env=pipeline.env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            return json.loads(result.stdout) if result.returncode == 0 else None

        def remote_frames(status: dict | None) -> int:
            rows = [r for r in (status or {}).get("stages", []) if r["stage"] == "segment-7"]
            return (rows[0]["report"] or {}).get("frames_out", 0) if rows else 0

        def wait_remote(at_least: int, what: str, timeout: float = 90) -> int:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                count = remote_frames(status_in_a())
                if count >= at_least:
                    return count
                assert up.poll() is None, f"pipeline ended early: {up.stderr.read()}"
                time.sleep(0.3)
            pytest.fail(f"timed out waiting for {what}")

        up = start(
            net.command(
                net.a,
                [
                    "up",
                    "--source",
                    str(video(frames)),
                    "--bind",
                    address,
                    "--workers",
                    "1",
                    "--segmenter",
                    "passthrough:jitter_ms=40-60",
                    *FAST,
                    "--summary",
                    str(summary),
                    "--sink",
                    f"jsonl:path={events},frames=1",
                ],
            ),
            pipeline.env,
            pipeline,
        )
        worker = start(
            net.command(net.b, ["stage", "segment", "--connect", address, "--index", "7"]),
            as_host(pipeline, hosts["gpu"]),
            pipeline,
        )
        try:
            before = wait_remote(10, "the worker in namespace B to take frames")
            net.link(up=False)
            time.sleep(2.5)
            net.link(up=True)
            wait_remote(before + 20, "the worker to take frames again after the cut")
            try:
                code = up.wait(120)
            except subprocess.TimeoutExpired:
                stages = {r["stage"]: r["report"] for r in (status_in_a() or {}).get("stages", [])}
                pytest.fail(f"the pipeline did not finish after the cut; stages: {stages}")
            assert code == 0, up.stderr.read()
            assert worker.wait(60) == 0, worker.stderr.read()
        finally:
            for process in (up, worker):
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
    document = json.loads(summary.read_text())
    assert (document["frames"], document["dropped"]) == (frames, 0)
    assert frame_seqs(read_jsonl(events)) == list(range(frames))
