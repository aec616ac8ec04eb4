"""Prometheus metrics and health checks of a running pipeline (`pipeline up
--metrics PORT`), served by the supervisor from the reports every stage
sends it about once a second.

    /metrics   Prometheus text format (prometheus-client)
    /healthz   200 while the supervisor's loop runs
    /readyz    200 once every stage has reported in and frames are moving, else 503

The supervisor's loop hands over a fresh `status()` snapshot each turn; the
server thread only reads the latest one, so a scrape never sees a table
being changed. Counters come from each stage's running totals: a restarted
stage starts again from 0, which Prometheus' `rate()` takes as a reset.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from repcoach.common.errors import UserError
from repcoach.common.messages import LATENCY_BUCKETS_S

log = logging.getLogger(__name__)

# A supervisor's loop turns every 0.2 s: this long without a turn, it is not healthy.
HEALTHY_TURN_S = 5.0
# At the end of a run, how long to wait for the scraper to see the final
# counts (only if anyone has scraped at all).
FINAL_SCRAPE_S = 5.0


@dataclass(frozen=True)
class Snapshot:
    status: dict
    ready: bool


class PipelineCollector(Collector):
    """Metric families built from the latest snapshot at each scrape."""

    def __init__(self, pipeline: str):
        self.pipeline = pipeline
        self.snapshot: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        if snapshot is None:
            return
        pipeline, rows = self.pipeline, snapshot.status["stages"]
        labels = ["pipeline", "stage"]
        frames_in = CounterMetricFamily(
            "repcoach_stage_frames_in", "Frames a stage received.", labels=labels
        )
        frames_out = CounterMetricFamily(
            "repcoach_stage_frames_out", "Frames a stage put out.", labels=labels
        )
        dropped = CounterMetricFamily(
            "repcoach_stage_dropped_frames", "Frames a stage dropped, by reason.",
            labels=[*labels, "reason"],
        )  # fmt: skip
        rejected = CounterMetricFamily(
            "repcoach_stage_rejected_messages",
            "Messages a stage refused (malformed, forged, wrong version), by kind.",
            labels=[*labels, "kind"],
        )
        restarts = CounterMetricFamily(
            "repcoach_stage_restarts", "Times the supervisor restarted a stage.", labels=labels
        )
        up = GaugeMetricFamily(
            "repcoach_stage_up", "1 while a stage's process runs.", labels=labels
        )
        queue = GaugeMetricFamily(
            "repcoach_stage_queue_depth", "Frames waiting inside a stage.", labels=labels
        )
        memory = GaugeMetricFamily(
            "repcoach_stage_resident_memory_bytes", "A stage's resident memory.", labels=labels
        )
        processing = HistogramMetricFamily(
            "repcoach_stage_processing_seconds", "Time a stage spent on a frame.", labels=labels
        )
        age = HistogramMetricFamily(
            "repcoach_frame_age_seconds",
            "Time from capture to this stage (at a sink: end to end).",
            labels=labels,
        )
        per_station = ["pipeline", "station"]
        events = CounterMetricFamily(
            "repcoach_feedback_events", "Feedback events published (reps, cues, ...).",
            labels=[*per_station, "kind", "severity"],
        )  # fmt: skip
        people = GaugeMetricFamily(
            "repcoach_people_in_view", "People the coach sees now.", labels=per_station
        )
        analysed = CounterMetricFamily(
            "repcoach_station_frames", "Frames of a station's source analysed.", labels=per_station
        )
        lost = CounterMetricFamily(
            "repcoach_station_dropped_frames",
            "Frames of a station's source lost before analysis (live: stale).",
            labels=per_station,
        )
        station_age = HistogramMetricFamily(
            "repcoach_station_frame_age_seconds",
            "Time from capture to scoring, per station.",
            labels=per_station,
        )
        for row in rows:
            stage_labels = [pipeline, row["stage"]]
            restarts.add_metric(stage_labels, row["restarts"])
            up.add_metric(stage_labels, 1.0 if row["alive"] else 0.0)
            report = row["report"]
            if report is None:
                continue
            frames_in.add_metric(stage_labels, report["frames_in"])
            frames_out.add_metric(stage_labels, report["frames_out"])
            for reason, count in report["dropped"].items():
                dropped.add_metric([*stage_labels, reason], count)
            for kind, count in report["rejected"].items():
                rejected.add_metric([*stage_labels, kind], count)
            queue.add_metric(stage_labels, report["queue_depth"])
            memory.add_metric(stage_labels, report["rss_mb"] * 2**20)
            _histogram(processing, stage_labels, report["latency_counts"], report["latency_sum_s"])
            _histogram(age, stage_labels, report["age_counts"], report["age_sum_s"])
            for station, figures in report.get("stations", {}).items():
                station_labels = [pipeline, station]
                people.add_metric(station_labels, figures["people"])
                analysed.add_metric(station_labels, figures["frames"])
                lost.add_metric(station_labels, figures["dropped"])
                _histogram(station_age, station_labels, figures["age_counts"], figures["age_sum_s"])
                for name, count in figures["events"].items():
                    kind, _, severity = name.partition(":")
                    events.add_metric([*station_labels, kind, severity], count)
        for kind, count in snapshot.status["supervisor"]["rejected"].items():
            rejected.add_metric([pipeline, "supervisor", kind], count)
        yield from (frames_in, frames_out, dropped, rejected, restarts, up, queue, memory)
        yield from (processing, age, events, people, analysed, lost, station_age)


def _histogram(family: HistogramMetricFamily, labels: list[str], counts, sum_s: float) -> None:
    if not counts:
        return
    buckets, total = [], 0
    for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts, strict=True):
        total += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
    family.add_metric(labels, buckets, sum_s)


class _QuietHandler(WSGIRequestHandler):
    timeout = 5  # a client that stalls mid-request is dropped, not waited for

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
        pass


class MetricsServer:
    """The HTTP endpoint, on its own thread inside the supervisor."""

    def __init__(self, host: str, port: int, pipeline: str):
        self.collector = PipelineCollector(pipeline)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        self._metrics = make_wsgi_app(registry)
        self._turned = time.monotonic()
        self.scrapes = 0
        self._scraped_after = threading.Condition()
        try:
            self._server: WSGIServer = make_server(
                host, port, self._app, handler_class=_QuietHandler
            )
        except OSError as error:
            raise UserError(
                f"--metrics {host}:{port}: cannot listen there ({error.strerror}); "
                "pick another port"
            ) from None
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", *self._server.server_address[:2])

    def update(self, status: dict, ready: bool) -> None:
        """Called by the supervisor's loop each turn."""
        self._turned = time.monotonic()
        self.collector.snapshot = Snapshot(status, ready)

    def _app(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            with self._scraped_after:
                self.scrapes += 1
                self._scraped_after.notify_all()
            return self._metrics(environ, start_response)
        if path == "/healthz":
            healthy = time.monotonic() - self._turned < HEALTHY_TURN_S
            return _plain(start_response, healthy, "ok" if healthy else "supervisor stalled")
        if path == "/readyz":
            snapshot = self.collector.snapshot
            ready = snapshot is not None and snapshot.ready
            return _plain(start_response, ready, "ready" if ready else "not ready")
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: /metrics, /healthz, /readyz\n"]

    def final_scrape(self, status: dict) -> None:
        """Show the final counts and, if anyone scrapes, wait (briefly) until
        they have been scraped once."""
        with self._scraped_after:
            seen = self.scrapes
            self.update(status, ready=False)
            if seen:
                self._scraped_after.wait_for(lambda: self.scrapes > seen, FINAL_SCRAPE_S)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _plain(start_response, ok: bool, text: str) -> list[bytes]:
    start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
    return [f"{text}\n".encode()]
