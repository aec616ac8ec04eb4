"""`pipeline up --metrics PORT`: Prometheus metrics, /healthz and /readyz
from the supervisor, read over HTTP and scraped by a real Prometheus server."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from repcoach.launch.metrics import PipelineCollector, Snapshot
from tests.conftest import free_port

PROMETHEUS = shutil.which("prometheus")
DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "repcoach-floor.json"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def wait_for(predicate, timeout: float, what: str, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the pipeline ended before {what}: {process.stderr.read()}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, frozenset of labels): value} of a /metrics page."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_health_and_readiness_of_a_running_pipeline(pipeline, tmp_path):
    port = free_port()
    up = pipeline.start(
        "up", "--source", "synthetic:squat,reps=12", "--realtime", "--no-console",
        "--no-history", "--summary", str(tmp_path / "s.json"), "--metrics", str(port),
        "--name", "floor",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(base + "/readyz")[0] == 200, 180, "ready", up)
    assert get(base + "/healthz") == (200, "ok\n")
    assert get(base + "/nothing")[0] == 404

    def scored() -> dict | None:
        page = samples(get(base + "/metrics")[1])
        rep = ("repcoach_feedback_events_total", frozenset(
            {"pipeline": "floor", "station": "squat", "kind": "rep", "severity": "info"}.items()
        ))  # fmt: skip
        return page if page.get(rep, 0) >= 1 else None

    page = wait_for(scored, 120, "a rep counted", up)
    score = frozenset({"pipeline": "floor", "stage": "score"}.items())
    station = frozenset({"pipeline": "floor", "station": "squat"}.items())
    assert page[("repcoach_stage_frames_out_total", score)] > 0
    assert page[("repcoach_stage_up", score)] == 1.0
    assert page[("repcoach_people_in_view", station)] == 1.0
    analysed = page[("repcoach_station_frames_total", station)]
    assert 0 < analysed <= page[("repcoach_stage_frames_out_total", score)]
    assert page[("repcoach_station_frame_age_seconds_count", station)] == analysed
    assert page[("repcoach_stage_processing_seconds_count", score)] > 0
    sink = frozenset({"pipeline": "floor", "stage": "sink-summary"}.items())
    assert page[("repcoach_frame_age_seconds_count", sink)] > 0  # capture to sink
    up.terminate()
    assert up.wait(60) in (0, 130)


def test_a_busy_metrics_port_is_one_line_before_anything_starts(pipeline, run_root):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = pipeline.run(
            "up", "--source", "synthetic:squat", "--metrics", str(port), "--no-history"
        )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--metrics 127.0.0.1:{port}: cannot listen there" in lines[0]
    assert not list(run_root.rglob("*.log"))  # no stage was started


@pytest.fixture
def prometheus(tmp_path):
    if PROMETHEUS is None:
        pytest.skip("needs the prometheus server (Debian package prometheus; install.sh adds it)")
    target, web = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: repcoach\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target}']\n"
    )
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api = f"http://127.0.0.1:{web}"
        wait_for(lambda: get(f"{api}/-/ready")[0] == 200, 60, "prometheus")
        # Prometheus hands new targets to its scrapers every few seconds: wait
        # until it has tried ours once (down: nothing listens there yet).
        wait_for(lambda: scraping(api), 60, "prometheus to scrape the target")
        yield target, api
    finally:
        server.terminate()
        server.wait(30)


def scraping(api: str) -> bool:
    status, body = get(f"{api}/api/v1/targets")
    targets = json.loads(body)["data"]["activeTargets"] if status == 200 else []
    return any(not t["lastScrape"].startswith("0001-") for t in targets)


def query(api: str, promql: str) -> float | None:
    status, body = get(f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    result = json.loads(body)["data"]["result"] if status == 200 else []
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_counts_the_summary_reports(pipeline, prometheus, tmp_path: Path):
    target, api = prometheus
    summary = tmp_path / "summary.json"
    result = pipeline.run(
        "up", "--source", "synthetic:squat", "--no-console", "--no-history",
        "--summary", str(summary), "--metrics", str(target), "--name", "gym",
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(summary.read_text())
    frames = query(api, 'repcoach_stage_frames_out_total{pipeline="gym",stage="score"}')
    assert frames == document["frames"] > 0
    assert query(api, 'repcoach_station_frames_total{pipeline="gym",station="squat"}') == frames
    reps = query(api, 'sum(repcoach_feedback_events_total{pipeline="gym",kind="rep"})')
    counted = sum(e["reps"] for p in document["people"] for e in p["exercises"])
    assert reps == counted == 3

    # The floor dashboard asks for metrics the pipeline serves, in PromQL
    # that Prometheus accepts.
    status, body = get(f"{api}/api/v1/label/__name__/values")
    stored = set(json.loads(body)["data"])
    assert status == 200 and "repcoach_stage_processing_seconds_bucket" in stored
    served = set()
    collector = PipelineCollector("x")
    collector.snapshot = Snapshot({"stages": [], "supervisor": {"rejected": {}}}, False)
    for family in collector.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        served |= {family.name + end for end in suffixes.get(family.type, [""])}
    assert {n for n in stored if n.startswith("repcoach_")} <= served
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$pipeline", ".*").replace("$station", ".*")
            assert set(re.findall(r"repcoach_\w+", expr)) <= served, (panel["title"], expr)
            url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            assert get(url)[0] == 200, (panel["title"], expr, get(url)[1])
