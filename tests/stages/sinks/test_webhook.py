"""The webhook sink against a real HTTP server on 127.0.0.1 that fails for a
while, is down, or is slow: every event arrives once per id, in order, and
what could not be sent waits in the queue file for the next run."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from repcoach.common.errors import UserError
from repcoach.common.messages import FeedbackEvent, FrameMeta, FramePacket
from repcoach.common.specs import Spec
from repcoach.stages.sinks import make_sink
from repcoach.stages.sinks.outbox import Outbox
from repcoach.stages.sinks.webhook import (
    WebhookSink,
    default_queue,
    from_spec,
    retry_after_s,
)
from tests.conftest import REPO, read_jsonl, stage_report

SESSION = "20250101-000000-abcdef"


class App:
    """A real HTTP app: records each POST; answers `fail_status` for
    `fail_for_s` from the first POST (and always for the ids in `refuse`),
    and can be slow."""

    def __init__(
        self,
        port: int = 0,
        fail_for_s: float = 0.0,
        fail_status: int = 503,
        retry_after: str | None = None,
        refuse: frozenset[str] = frozenset(),
        delay_s: float = 0.0,
    ):
        self.received: list[tuple[str, dict]] = []  # (Idempotency-Key, body)
        self.attempts: list[tuple[float, str]] = []  # (time, key) of every POST
        self.failures = 0
        self.fail_for_s = fail_for_s
        self.first_post: float | None = None
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers.get("Idempotency-Key", "")
                now = time.monotonic()
                app.attempts.append((now, key))
                app.first_post = app.first_post or now
                time.sleep(delay_s)
                if now < app.first_post + app.fail_for_s or key in refuse:
                    app.failures += 1
                    status = 400 if key in refuse else fail_status
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                app.received.append((key, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self) -> list[str]:
        return [body["id"] for _key, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def apps():
    started: list[App] = []

    def start(**kwargs) -> App:
        started.append(App(**kwargs))
        return started[-1]

    yield start
    for app in started:
        app.close()


def closed_port() -> int:
    """A port nothing listens on (free just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def packet(seq: int, kinds: tuple[str, ...] = ("rep",)) -> FramePacket:
    meta = FrameMeta("synthetic:squat", seq, seq - 1, 0, time.time(), seq / 30, 64, 48)
    events = tuple(
        FeedbackEvent(f"{SESSION}:{seq}:{i}", kind, 1, seq, seq / 30, f"{kind} {seq}", data={})
        for i, kind in enumerate(kinds)
    )
    return FramePacket(meta, events=events)


def make_webhook(url: str, queue: Path, **options: str) -> WebhookSink:
    text = ",".join(f"{k}={v}" for k, v in {"url": url, "queue": queue, **options}.items())
    sink = from_spec(Spec.parse(f"webhook:{text}", "--sink"), build=True)
    assert isinstance(sink, WebhookSink)
    return sink


def queued_ids(queue: Path) -> list[str]:
    outbox = Outbox(queue)
    try:
        return [event_id for event_id, _body in outbox.peek(1_000_000)]
    finally:
        outbox.close()


# --- the queue file


def test_outbox_keeps_one_copy_per_id_oldest_first(tmp_path):
    outbox = Outbox(tmp_path / "q.sqlite", max_events=10)
    assert outbox.put("a", "{}") and outbox.put("b", "{}") and outbox.put("c", "{}")
    assert not outbox.put("a", "{}")  # already queued: ignored
    assert len(outbox) == 3
    assert [event_id for event_id, _ in outbox.peek(2)] == ["a", "b"]
    outbox.remove(["a", "zzz"])
    outbox.reject("b", "HTTP 400 Bad Request")
    assert outbox.peek(5) == [("c", "{}")]
    assert (len(outbox), outbox.rejected, outbox.dropped) == (1, 1, 0)
    outbox.close()


# --- the sink on its own


def test_app_failing_for_3_s_gets_every_event_once_in_order(apps, tmp_path):
    app = apps(fail_for_s=3.0)
    queue = tmp_path / "q.sqlite"
    sink = make_webhook(app.url, queue)
    sent = []
    for seq in range(20):
        sink.on_result(packet(seq, ("rep", "cue")))
        sent += [f"{SESSION}:{seq}:0", f"{SESSION}:{seq}:1"]
        time.sleep(0.05)
    wait_until(lambda: len(app.received) >= len(sent), 30, "every event to arrive")
    sink.close(0)
    assert 3 <= app.failures <= 10  # it kept trying, backing off (new events do not hurry it)
    outage_to_done = app.attempts[-1][0] - app.attempts[0][0]
    assert outage_to_done < 15, f"a 3 s outage delayed delivery by {outage_to_done:.1f} s"
    assert app.ids() == sent
    assert [key for key, _body in app.received] == sent  # Idempotency-Key = id
    first = app.received[0][1]
    assert first["kind"] == "rep" and first["session"] == SESSION
    assert first["source"] == "synthetic:squat" and first["seq"] == 0
    assert queued_ids(queue) == []


def test_kinds_picks_which_events_are_posted(apps, tmp_path):
    app = apps()
    sink = make_webhook(app.url, tmp_path / "q.sqlite", kinds="rep+cue")
    sink.on_result(packet(0, ("person_enter", "rep", "visibility", "cue", "person_leave")))
    wait_until(lambda: len(app.received) >= 2, 20, "the rep and the cue")
    sink.close(0)
    assert [body["kind"] for _key, body in app.received] == ["rep", "cue"]


def test_a_slow_app_never_slows_on_result(apps, tmp_path):
    app = apps(delay_s=2.0)
    sink = make_webhook(app.url, tmp_path / "q.sqlite", flush="0")
    started = time.perf_counter()
    for seq in range(200):
        sink.on_result(packet(seq))
    elapsed = time.perf_counter() - started
    sink.close(0)
    assert elapsed < 2.0, f"200 on_result calls took {elapsed:.2f} s"
    assert len(app.received) <= 2
    assert len(queued_ids(tmp_path / "q.sqlite")) >= 198


def test_bounded_queue_keeps_the_newest_and_counts_the_dropped(tmp_path):
    queue = tmp_path / "q.sqlite"
    url = f"http://127.0.0.1:{closed_port()}/events"
    sink = make_webhook(url, queue, max_queue="5", flush="0")
    for seq in range(20):
        sink.on_result(packet(seq))
    assert sink.dropped == 15
    sink.close(0)
    assert queued_ids(queue) == [f"{SESSION}:{seq}:0" for seq in range(15, 20)]
    outbox = Outbox(queue)
    assert outbox.dropped == 15  # kept in the file, for whoever looks later
    outbox.close()


def test_a_refused_event_is_moved_aside_and_the_rest_flow(apps, tmp_path):
    app = apps(refuse=frozenset({f"{SESSION}:1:0"}))
    queue = tmp_path / "q.sqlite"
    sink = make_webhook(app.url, queue)
    for seq in range(4):
        sink.on_result(packet(seq))
    wait_until(lambda: len(app.received) >= 3, 20, "the three good events")
    sink.close(0)
    assert app.ids() == [f"{SESSION}:{seq}:0" for seq in (0, 2, 3)]
    assert sink.sender.rejected == 1
    assert [key for _t, key in app.attempts].count(f"{SESSION}:1:0") == 1  # never retried
    outbox = Outbox(queue)
    assert len(outbox) == 0 and outbox.rejected == 1
    outbox.close()


def test_retry_after_is_honoured(apps, tmp_path):
    app = apps(fail_for_s=0.5, fail_status=429, retry_after="2")
    sink = make_webhook(app.url, tmp_path / "q.sqlite")
    sink.on_result(packet(0))
    wait_until(lambda: len(app.received) == 1, 20, "the event")
    sink.close(0)
    times = [t for t, _key in app.attempts]
    assert len(times) == 2  # refused once, then it waited as told and got through
    assert times[1] - times[0] >= 1.9


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0", 0.0), ("100000", 300.0), ("soon", None), (None, None)],
)
def test_retry_after_values(value, expected):
    assert retry_after_s(value) == expected


def test_retry_after_as_an_http_date():
    from email.utils import formatdate

    assert retry_after_s(formatdate(time.time() + 10, usegmt=True)) == pytest.approx(10, abs=1.5)


# --- the queue outlives the process


KILLED_SINK = """
import sys, time
from repcoach.common.errors import UserError
from repcoach.common.messages import FeedbackEvent, FrameMeta, FramePacket
from repcoach.stages.sinks import make_sink

sink = make_sink(sys.argv[1])
for seq in range(12):
    meta = FrameMeta("cam", seq, seq - 1, 0, time.time(), seq / 30, 64, 48)
    event = FeedbackEvent(f"S:{seq}:{seq}", "rep", 1, seq, seq / 30, "Rep", data={})
    sink.on_result(FramePacket(meta, events=(event,)))
print("queued", flush=True)
time.sleep(60)
"""


def test_queue_survives_a_killed_sink_and_the_next_run_delivers_it(apps, tmp_path):
    port = closed_port()
    url = f"http://127.0.0.1:{port}/events"
    queue = tmp_path / "q.sqlite"
    spec = f"webhook:url={url},queue={queue}"
    sink_process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_SINK), spec],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink_process.stdout.readline().strip() == "queued"
    finally:
        sink_process.send_signal(signal.SIGKILL)
        sink_process.wait(10)
    expected = [f"S:{seq}:{seq}" for seq in range(12)]
    assert queued_ids(queue) == expected

    app = apps(port=port, fail_for_s=1.0)
    sink = make_sink(spec)  # a fresh run, no new events: sends what was left
    wait_until(lambda: len(app.received) >= 12, 30, "the left-over events")
    sink.close(0)
    assert app.ids() == expected
    assert queued_ids(queue) == []


def test_a_queue_file_has_one_owner(tmp_path):
    queue = tmp_path / "q.sqlite"
    url = f"http://127.0.0.1:{closed_port()}/events"
    first = make_webhook(url, queue, flush="0")
    try:
        with pytest.raises(UserError, match="is in use by another sink"):
            make_webhook(url, queue)
    finally:
        first.close(0)
    make_webhook(url, queue, flush="0").close(0)  # free again once closed


# --- the real pipeline


def webhook_log(run_root: Path) -> str:
    logs = list(run_root.glob("*/logs/sink-webhook.log"))
    return logs[0].read_text() if logs else ""


def test_pipeline_delivers_left_over_and_new_events_once_each(
    pipeline, apps, tmp_path, run_root, monkeypatch
):
    """Run 1 with the app down: the events stay queued. Run 2 with the app
    failing for its first seconds: run 1's events, then run 2's, each once."""
    monkeypatch.setenv("REPCOACH_DATA_DIR", str(tmp_path / "data"))
    pipeline.env["REPCOACH_DATA_DIR"] = str(tmp_path / "data")
    port = closed_port()
    url = f"http://127.0.0.1:{port}/events"
    queue = default_queue(url)  # no queue=: the default one, per URL
    source = "synthetic:squat,reps=3"

    def run(jsonl: Path) -> list[str]:
        result = pipeline.run(
            "up",
            "--source",
            source,
            "--no-console",
            "--sink",
            f"webhook:url={url},flush=2",
            "--sink",
            f"jsonl:path={jsonl}",
            timeout=240,
        )
        assert result.returncode == 0, result.stderr
        return [r["id"] for r in read_jsonl(jsonl) if r["type"] == "event"]

    first_ids = run(tmp_path / "run1.jsonl")
    log_text = webhook_log(run_root)
    assert f"{len(first_ids)} still queued in" in log_text, log_text
    assert queued_ids(queue) == first_ids

    app = apps(port=port, fail_for_s=4.0)
    second_ids = run(tmp_path / "run2.jsonl")
    assert app.failures >= 1
    assert "answers again after" in webhook_log(run_root)
    assert app.ids() == first_ids + second_ids  # in order, none twice, none lost
    assert [key for key, _body in app.received] == app.ids()
    for ids in (first_ids, second_ids):
        session = ids[0].rsplit(":", 2)[0]
        reps = [
            b["data"]["rep"]
            for _k, b in app.received
            if b["session"] == session and b["kind"] == "rep"
        ]
        assert reps == [1, 2, 3]
    assert queued_ids(queue) == []


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        ("webhook", "webhook sink needs a url"),
        ("webhook:url=ftp://example.com/x", "must start with http:// or https://"),
        ("webhook:url=http:///events", "has no host"),
        ("webhook:url=http://127.0.0.1:99999/events", "has a bad port"),
        ("webhook:url=http://127.0.0.1:8000/e,kinds=rep+dance", "unknown ['dance']"),
        ("webhook:url=http://127.0.0.1:8000/e,queue=/no/folder/q.sqlite", "does not exist"),
        ("webhook:url=http://127.0.0.1:8000/e,queue={folder}", "is a folder"),
        ("webhook:url=http://127.0.0.1:8000/e,queue=/proc/q.sqlite", "is not writable"),
        ("webhook:url=http://127.0.0.1:8000/e,max_queue=0", "max_queue=0 is outside"),
        ("webhook:url=http://127.0.0.1:8000/e,retries=3", "unknown option(s) ['retries']"),
    ],
)
def test_bad_webhook_options_get_one_clear_line(pipeline, tmp_path, sink, expected):
    pipeline.env["REPCOACH_DATA_DIR"] = str(tmp_path / "data")
    sink = sink.format(folder=tmp_path)
    result = pipeline.run("up", "--source", "synthetic:squat", "--sink", sink, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]


def test_a_data_folder_that_cannot_be_made_is_one_clear_line(pipeline, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    pipeline.env["REPCOACH_DATA_DIR"] = str(not_a_folder / "data")
    sink = "webhook:url=http://127.0.0.1:8000/events"
    result = pipeline.run("up", "--source", "synthetic:squat", "--sink", sink, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: webhook queue folder {not_a_folder}/data/webhook cannot be made: "
        f"{not_a_folder} is not a folder"
    ]


def test_unreachable_app_is_a_warning_not_an_error(pipeline, tmp_path):
    """The app may come up later: the check warns in one line and goes on
    (here to the next check: no pipeline is running to attach to)."""
    pipeline.env["REPCOACH_DATA_DIR"] = str(tmp_path / "data")
    url = f"http://127.0.0.1:{closed_port()}/events"
    result = pipeline.run("sink", "attach", "webhook", "--url", url, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"warning: webhook {url} does not answer now (")
    assert lines[1].startswith("error: no pipeline named 'default'")


def test_what_a_sink_drops_on_its_side_shows_in_pipeline_status(pipeline, tmp_path):
    """App down and a queue of 2: the sink drops the oldest events itself (the
    pipeline runs on), and `pipeline status` says how many, by reason."""
    url = f"http://127.0.0.1:{closed_port()}/events"
    queue, events = tmp_path / "q.sqlite", tmp_path / "events.jsonl"
    up = pipeline.start(
        "up",
        "--source",
        "synthetic:squat,reps=6",
        "--realtime",
        "--no-console",
        "--sink",
        f"webhook:url={url},queue={queue},max_queue=2,flush=0",
        "--sink",
        f"jsonl:path={events}",
    )
    status = pipeline.wait_for(
        lambda s: (
            (stage_report(s, "sink-webhook")["report"] or {})
            .get("dropped", {})
            .get("queue-full", 0)
            >= 2
        ),
        timeout=150,
        what="the webhook sink to report its queue-full drops",
    )
    assert stage_report(status, "score")["report"]["dropped"].get("slow-sink", 0) == 0
    time.sleep(3)  # a few more status reports: the figure is a running total, not a sum of them
    later = pipeline.status()
    up.send_signal(signal.SIGINT)
    assert up.wait(60) == 130
    dropped = stage_report(later, "sink-webhook")["report"]["dropped"]["queue-full"]
    sent_to_sink = sum(1 for r in read_jsonl(events) if r["type"] == "event")
    assert 2 <= dropped <= sent_to_sink - 2  # the queue keeps the newest 2
