"""The web dashboard: a real pipeline, a real HTTP server and a real headless
browser (Debian's chromium and chromedriver through selenium).

One looping, paced squat pipeline with a dashboard serves the tests in the
first half of this file (it starts once: the rendered athlete runs the real
pose models); the rest use a plain video with the pass-through backends, or
drive a WebSink directly with rendered packets.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from repcoach.common.errors import UserError
from repcoach.common.messages import (
    EndOfStream,
    FeedbackEvent,
    FrameMeta,
    FramePacket,
    PersonScore,
    SessionState,
)
from repcoach.stages.sinks import make_sink
from repcoach.stages.sinks.web_board import Scoreboard
from tests.conftest import Pipeline, free_port, stage_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FAST = ["--segmenter", "passthrough", "--joints", "none", "--no-console"]


def fetch(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def fetch_json(url: str) -> dict:
    return json.loads(fetch(url))


def wait_until(predicate, timeout: float, what: str, process: subprocess.Popen | None = None):
    """Poll until predicate() is truthy (errors count as not yet); fail, never hang."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited ({process.returncode}) first")
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError) as error:  # not serving yet, half a document
            last_error = error
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


def read_line(process: subprocess.Popen, timeout: float) -> str:
    """One line of a child's stdout, or fail after `timeout` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"no output within {timeout} s")
    return process.stdout.readline()


def read_jpegs(response, count: int) -> list[np.ndarray]:
    """The first `count` JPEG parts of a multipart/x-mixed-replace response."""
    boundary = response.headers["Content-Type"].split("boundary=")[1].strip()
    images = []
    while len(images) < count:
        line = response.readline()
        assert line, "the stream ended early"
        if line.strip() != f"--{boundary}".encode():
            continue
        headers = {}
        while (line := response.readline().strip()) != b"":
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        body = response.read(int(headers["content-length"]))
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None, "a part did not decode as JPEG"
        images.append(image)
    return images


def read_events(response, until: str, limit: int = 500) -> list[tuple[str, object]]:
    """Server-Sent Events (name, parsed data) up to and including `until`."""
    events, name, data = [], "message", ""
    for _ in range(limit * 4):
        line = response.readline().decode()
        assert line, f"the event stream ended before an {until!r} event"
        line = line.rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data += line[len("data: ") :]
        elif line == "" and data:
            events.append((name, json.loads(data)))
            if name == until:
                return events
            name, data = "message", ""
    pytest.fail(f"no {until!r} event in {len(events)} events")


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    return lines[0]


# --- one live pipeline with a dashboard, shared by the tests below


@dataclass
class Live:
    runner: Pipeline
    process: subprocess.Popen
    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def people(self) -> list[dict]:
        return fetch_json(self.url + "state.json")["people"]


@pytest.fixture(scope="module")
def live():
    root = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    runner = Pipeline(root)
    runner.env["REPCOACH_DATA_DIR"] = str(root / "data")
    port = free_port()
    # Paced like a camera and looped, so reps keep coming while a test watches.
    process = runner.start(
        "up",
        "--source",
        "synthetic:squat,reps=4",
        "--realtime",
        "--loop",
        "--no-console",
        "--sink",
        f"web:port={port},fps=10",
    )
    state = Live(runner, process, root, port)
    wait_until(lambda: fetch(state.url + "healthz") == b"ok\n", 120, "the dashboard", process)
    yield state
    runner.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def chrome():
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs Debian's chromium and chromium-driver (install.sh installs both)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip: .[dev])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1300"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.mark.slow
def test_browser_shows_the_stream_and_a_rising_rep_counter(live, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chrome()
    try:
        driver.get(live.url)
        assert driver.title == "repcoach live"
        counters = WebDriverWait(driver, 120, poll_frequency=0.5).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "[id^='reps-']"),
            "no person card appeared",
        )
        counter_id = counters[0].get_attribute("id")
        first = int(counters[0].text)
        target = max(first + 1, 2)
        WebDriverWait(driver, 150, poll_frequency=0.5).until(
            lambda d: int(d.find_element(By.ID, counter_id).text) >= target,
            f"the counter stayed below {target} (it showed {first} at first)",
        )
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return document.getElementById('stream').naturalWidth") > 0,
            "no video frame was shown",
        )
        card = driver.find_element(By.ID, counter_id.replace("reps-", "person-"))
        assert "squat" in card.text.lower()
        rows = driver.find_elements(By.CSS_SELECTOR, "#rep-rows tr")
        assert rows, "the rep table has no rows"
        cells = [c.text for c in rows[-1].find_elements(By.TAG_NAME, "td")]
        assert cells[0] == "#" + counter_id.removeprefix("reps-") and cells[1] == "Squat"
        assert cells[2] == "1", f"the oldest row should be rep 1: {cells}"

        png = driver.get_screenshot_as_png()
        (tmp_path / "dashboard.png").write_bytes(png)
        shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        width, height, ratio = driver.execute_script(
            "return [innerWidth, innerHeight, devicePixelRatio]"
        )
        assert shot.shape[:2] == (round(height * ratio), round(width * ratio))
        box = driver.find_element(By.ID, "stream").rect
        x0, y0 = round(box["x"] * ratio), round(box["y"] * ratio)
        x1, y1 = x0 + round(box["width"] * ratio), y0 + round(box["height"] * ratio)
        assert x1 - x0 > 300 and y1 - y0 > 200, f"the stream is too small: {box}"
        stream = shot[y0:y1, x0:x1]
        assert stream.std() > 20, "the stream area of the screenshot is blank"
        # The overlay draws the person in their card's colour: it is in the picture.
        colour = card.value_of_css_property("border-left-color")  # rgba(r, g, b, 1)
        r, g, b = (int(v) for v in colour[colour.index("(") + 1 :].split(",")[:3])
        near = np.abs(stream.astype(int) - (b, g, r)).max(axis=2) < 40
        assert near.sum() > 100, f"the person's colour {colour} is not in the stream"
    finally:
        driver.quit()


@pytest.mark.slow
def test_state_json_events_and_mjpeg_over_http(live):
    people = wait_until(
        lambda: [p for p in live.people() if p["exercise"] == "squat"], 120, "a squatter"
    )
    assert set(people[0]) >= {"id", "colour", "exercise", "reps", "partial", "form_score"}
    assert "last_cue" in people[0]
    document = fetch_json(live.url + "state.json")
    session = document["session"]
    assert session["source"].startswith("synthetic:") and session["frames"] > 0
    assert session["ended"] is False and session["joined_late"] is False
    assert set(document["stream"]) >= {"viewers", "frames_in", "encoded", "dropped"}
    assert document["privacy"] == {"blur_faces": False}
    for row in document["reps"]:
        assert row["exercise"] == "squat" and row["person"] == people[0]["id"]
        assert isinstance(row["faults"], list) and row["tempo_down_s"] > 0

    with urllib.request.urlopen(live.url + "stream.mjpg", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        frames = read_jpegs(response, 2)
    assert all(f.shape == (480, 640, 3) for f in frames)
    assert fetch_json(live.url + "state.json")["stream"]["encoded"] >= 2

    with urllib.request.urlopen(live.url + "events", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        name, state = read_events(response, until="state")[-1]
    assert {p["id"] for p in state["people"]} >= {people[0]["id"]}

    report = wait_until(
        lambda: stage_report(live.runner.status(), "sink-web")["report"], 10, "a sink report"
    )
    assert {"superseded", "slow-viewer"} <= set(report["dropped"])

    assert fetch(live.url + "healthz") == b"ok\n"
    page = fetch(live.url).decode()
    assert '<img id="stream"' in page and '<script src="/app.js">' in page
    script = fetch(live.url + "app.js")
    assert b'scoped("/stream.mjpg")' in script and b'EventSource(scoped("/events"))' in script
    with pytest.raises(urllib.error.HTTPError) as missing:
        fetch(live.url + "nothing-here")
    assert missing.value.code == 404


@pytest.mark.slow
def test_attached_dashboard_blurs_faces_and_says_it_joined_late(live):
    wait_until(lambda: live.people(), 120, "someone in view")
    attached = live.runner.start("sink", "attach", "web", "--port", "0", "--blur-faces")
    try:
        line = read_line(attached, timeout=60)
        assert line.startswith("web dashboard: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        document = wait_until(
            lambda: (d := fetch_json(url + "state.json"))["session"]["frames"] and d,
            30,
            "the attached dashboard's first state",
        )
        assert document["session"]["joined_late"] is True
        assert document["privacy"] == {"blur_faces": True}
        with urllib.request.urlopen(url + "stream.mjpg", timeout=30) as response:
            assert read_jpegs(response, 1)[0].shape == (480, 640, 3)
    finally:
        os.killpg(attached.pid, signal.SIGINT)
    assert attached.wait(30) == 0, attached.stderr.read()
    assert "frames encoded" in attached.stderr.read()


def test_attaching_on_a_busy_port_is_one_line(live):
    result = live.runner.run("sink", "attach", "web", "--port", str(live.port), timeout=60)
    line = one_line_error(result)
    assert f"port {live.port} on 127.0.0.1 is already in use" in line


# --- bad options, checked before anything starts


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("web:port=70000", "port=70000 is outside [0, 65535]"),
        ("web:port=-1", "port='-1' is not a whole number"),
        ("web:port=eighty", "port='eighty' is not a whole number"),
        ("web:host=", "host= is empty"),
        ("web:fps=0", "fps=0 is outside [1, 30]"),
        ("web:blur_faces=yes", "blur_faces='yes' is not one of"),
        ("web:colour=red", "unknown option(s) ['colour']"),
        ("web:port=0,host=0.0.0.0,fps=30,blur_faces=1", None),
    ],
)
def test_options_are_checked_in_one_line(spec, message):
    if message is None:
        assert make_sink(spec, build=False) is None
    else:
        with pytest.raises(UserError, match=re.escape(message)):
            make_sink(spec, build=False)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("192.0.2.1", "192.0.2.1 is not an address of this machine"),
        ("no-such-host.invalid", "cannot resolve host 'no-such-host.invalid'"),
    ],
)
def test_a_host_it_cannot_listen_on_is_one_line(host, message):
    with pytest.raises(UserError, match=message):
        make_sink(f"web:host={host},port=0")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may listen on any port")
def test_a_privileged_port_is_one_line():
    with pytest.raises(UserError, match="no permission to listen on port 80"):
        make_sink("web:port=80")


def test_out_of_range_port_is_one_line_from_the_cli(pipeline, video):
    attach = one_line_error(pipeline.run("sink", "attach", "web", "--port", "70000"))
    assert "web: port=70000 is outside [0, 65535]" in attach
    source = video(10)
    up = one_line_error(
        pipeline.run("up", "--source", str(source), *FAST, "--sink", "web:port=1e3")
    )
    assert "port='1e3' is not a whole number" in up


def test_pipeline_up_with_a_busy_port_stops_in_one_line(pipeline, video):
    source = video(300)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = pipeline.run("up", "--source", str(source), *FAST, "--sink", f"web:port={port}")
    line = one_line_error(result)
    assert f"web: port {port} on 127.0.0.1 is already in use" in line


# --- a short paced video through `pipeline up --sink web`: the end reaches the browser


def test_events_follow_a_clip_to_its_end_and_the_server_closes(pipeline, video):
    frames = 150  # five seconds, paced
    source = video(frames)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    up = pipeline.start(
        "up", "--source", str(source), "--realtime", *FAST, "--sink", f"web:port={port}"
    )
    response = wait_until(
        lambda: urllib.request.urlopen(url + "events", timeout=30), 60, "the dashboard", up
    )
    with response:
        events = read_events(response, until="end")
    states = [data for name, data in events if name == "state"]
    assert states[-1]["session"]["ended"] is True
    assert states[-1]["session"]["reason"] == "end of source"
    assert 0 < states[-1]["session"]["frames"] <= frames
    assert [s["session"]["frames"] for s in states] == sorted(
        s["session"]["frames"] for s in states
    )
    assert up.wait(60) == 0, up.stderr.read()
    with pytest.raises(OSError):
        fetch(url + "healthz", timeout=2)


# --- the sink on its own: a slow viewer never slows the sink thread


def _packet(seq: int, pixels: np.ndarray | None, scores=(), events=()) -> FramePacket:
    height, width = (480, 640) if pixels is None else pixels.shape[:2]
    meta = FrameMeta(
        "test", seq, seq - 1, time.monotonic_ns(), time.time(), seq / 30, width, height
    )
    return FramePacket(meta, pixels, scores=tuple(scores), events=tuple(events))


def test_a_stalled_viewer_costs_the_sink_thread_nothing():
    sink = make_sink("web:port=0,fps=30")
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
    # A viewer that connects with a tiny window and never reads: its server
    # thread blocks on the first frames.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", sink.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    received = []

    def watch() -> None:  # a viewer that keeps up
        with urllib.request.urlopen(sink.url + "stream.mjpg", timeout=30) as response:
            received.extend(read_jpegs(response, 5))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wait_until(lambda: sink.view(None).hub.stats()["viewers"] == 2, 10, "two viewers")
        slowest = 0.0
        for seq in range(600):
            packet = _packet(seq, noise[seq % 4])
            started = time.perf_counter()
            sink.on_result(packet.replace(pixels=None))
            sink.on_result(packet)
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.002)
        watcher.join(30)
        stats = sink.view(None).hub.stats()
        drops = sink.drops()
    finally:
        stalled.close()
        started = time.monotonic()
        sink.close(0)
        closing = time.monotonic() - started
    # Generous for a busy machine; waiting on the stalled viewer would take 20 s.
    assert slowest < 0.25, f"on_result took {slowest * 1000:.0f} ms"
    assert len(received) == 5 and received[0].shape == (480, 640, 3)
    assert stats["frames_in"] == 600
    assert 0 < stats["encoded"] < 600 and stats["dropped"] > 0
    assert stats["encoded"] + stats["dropped"] <= 600
    assert drops["superseded"] == stats["dropped"]
    assert closing < 5, f"closing waited {closing:.1f} s for a stalled viewer"


# --- the scoreboard: people and rep rows from results


def _state(frames: int, people=()) -> SessionState:
    return SessionState("cam", frames, 0, 0, frames - 1, frames / 30, 0.0, False, "", people)


def _rep(event_id: str, kind: str, rep: int, **data) -> FeedbackEvent:
    detail = {"rep": rep, "exercise": "squat", "score": 90.0, "faults": [], **data}
    return FeedbackEvent(event_id, kind, 3, rep * 40, rep * 1.3, f"Rep {rep}", data=detail)


def test_scoreboard_builds_rep_rows_once_each_from_rep_events():
    board = Scoreboard()
    board.on_state(_state(0))
    score = PersonScore(3, exercise="squat", reps=2, partial_reps=1, form_score=81.26)
    events = [
        _rep("s:1", "rep", 1, tempo_down_s=1.1, tempo_up_s=0.9),
        _rep("s:2", "partial_rep", 1, partial=True),
        _rep("s:3", "rep", 2, faults=["knees_in"]),
        FeedbackEvent("s:4", "cue", 3, 90, 3.0, "Knees out"),
    ]
    board.on_result(_packet(80, None, [score], events))
    board.on_result(_packet(80, None, [score], events[:1]))  # sent again: no new row
    document = {**board.live(), "reps": board.rows_since(0)}  # what /state.json serves
    assert [(r["rep"], r["partial"], r["faults"]) for r in document["reps"]] == [
        (1, False, []),
        (1, True, []),
        (2, False, ["knees_in"]),
    ]
    assert document["reps"][0]["tempo_down_s"] == 1.1
    person = document["people"][0]
    assert (person["id"], person["reps"], person["partial"], person["form_score"]) == (
        3,
        2,
        1,
        81.3,
    )
    assert person["colour"].startswith("#") and len(person["colour"]) == 7
    assert document["session"]["joined_late"] is False
    board.on_eos(EndOfStream("cam", 80, 81, 0, "end of file"))
    assert board.live()["session"]["ended"] is True


def test_scoreboard_started_mid_session_says_how_many_reps_it_has_no_rows_for():
    board = Scoreboard()
    board.on_state(_state(300, (PersonScore(1, exercise="squat", reps=4, partial_reps=1),)))
    session = board.live()["session"]
    assert session["joined_late"] is True and session["reps_before_join"] == 5
    assert board.live()["people"][0]["reps"] == 4 and board.rows_since(0) == []


@pytest.mark.slow
def test_the_floor_shows_a_tile_per_station_and_their_counts_rise(pipeline, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    process = pipeline.start(
        "up", "--source", "rack1=synthetic:squat,reps=4",
        "--source", "rack2=synthetic:lunge,reps=4", "--realtime", "--loop", "--no-console",
        "--no-history", "--sink", f"web:port={port},fps=10", "--name", "floor",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    wait_until(lambda: len(fetch_json(url + "floor.json")["stations"]) == 2, 120, "2 stations",
               process)  # fmt: skip
    driver = chrome()
    try:
        driver.get(url)
        assert driver.title == "repcoach floor"
        # The page redraws its tiles as states arrive: an element read while
        # it is replaced is stale, and the wait looks again.
        settled = WebDriverWait(
            driver, 120, poll_frequency=0.5, ignored_exceptions=(StaleElementReferenceException,)
        )

        def stations() -> list[str]:
            return [
                t.get_attribute("data-station")
                for t in driver.find_elements(By.CSS_SELECTOR, ".tile")
            ]

        settled.until(lambda d: stations() == ["rack1", "rack2"], "no tile per station")

        def reps(station: str) -> int:
            tile = driver.find_element(By.CSS_SELECTOR, f".tile[data-station='{station}']")
            counts = [e.text for e in tile.find_elements(By.CSS_SELECTOR, ".reps")]
            return max((int(c) for c in counts if c.isdigit()), default=0)

        def exercises() -> dict[str, str]:
            return {
                t.get_attribute("data-station"): t.find_element(By.CSS_SELECTOR, ".what").text
                for t in driver.find_elements(By.CSS_SELECTOR, ".tile")
            }

        settled.until(lambda d: reps("rack1") >= 1 and reps("rack2") >= 1, "no reps on both tiles")
        settled.until(
            lambda d: exercises() == {"rack1": "squat", "rack2": "lunge"},
            "the tiles do not name rack1's squat and rack2's lunge",
        )
        # Each tile's picture is that station's stream, and its page is its own.
        with urllib.request.urlopen(url + "stream.mjpg?station=rack2", timeout=30) as response:
            assert read_jpegs(response, 1)[0].shape[:2] == (480, 640)
        assert fetch_json(url + "state.json?station=rack2")["station"] == "rack2"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            fetch(url + "state.json?station=nowhere")
        driver.get(url + "?station=rack2")
        assert driver.title == "repcoach live"
        WebDriverWait(driver, 60, poll_frequency=0.5).until(
            lambda d: d.find_element(By.ID, "session").text.startswith("rack2: "),
            "the station page does not name its station",
        )
    finally:
        driver.quit()
        process.terminate()
        process.wait(60)
