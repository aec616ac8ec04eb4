"""What every stage process shares: stop signals, counters and reporting."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

from repcoach.common import graph, transport
from repcoach.common.config import PipelineConfig, Station
from repcoach.common.stats import StageStats

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 1.0


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        info = path.stat() if path is not None else None
    except OSError:
        return None
    return None if info is None else (info.st_mtime_ns, info.st_size)


def setup_logging(stage: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {stage} %(levelname)s %(message)s",
    )


class StageContext:
    """A stage's view of the pipeline: config, stop requests, counters.

    SIGTERM and SIGINT raise the stop count instead of killing the process,
    so each loop can finish its current frame and shut down in order. A
    supervised stage also stops when its supervisor disappears.
    """

    def __init__(
        self,
        name: str,
        config: PipelineConfig,
        supervised: bool = True,
        config_file: Path | None = None,
    ):
        self.name = name
        self.config = config
        # The run folder's copy, re-read when stations are added or removed
        # (None: a stage attached from elsewhere keeps what it was given).
        self._config_file = config_file
        self._config_stamp = _stamp(config_file)
        self.stats = StageStats(name)
        self.rejects = transport.RejectCounter(name)
        self.stop_requests = 0
        self.supervised = supervised
        """Started by `pipeline up` (not attached by hand)."""
        self._parent = os.getppid() if supervised else None
        self._last_report = 0.0
        self._reports = graph.open_reports(config)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def refresh_config(self) -> bool:
        """Re-read the config if the supervisor has rewritten it (a station
        added or removed); True if it changed. Cheap: one stat when it has not."""
        stamp = _stamp(self._config_file)
        if stamp is None or stamp == self._config_stamp:
            return False
        try:
            config = PipelineConfig.load(self._config_file)
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s: could not re-read %s: %s", self.name, self._config_file, error)
            return False
        self.config, self._config_stamp = config, stamp
        return True

    def station(self, name: str) -> Station | None:
        """The pipeline's station `name` (one added since this stage started
        included), None if the pipeline has none by that name."""
        found = self.config.station(name)
        if found is None and self.refresh_config():
            found = self.config.station(name)
        return found

    def _on_signal(self, signum: int, _frame) -> None:
        self.stop_requests += 1
        log.info("%s received %s", self.name, signal.Signals(signum).name)

    def should_stop(self) -> bool:
        # Checked here too, not only in tick(): a stage blocked sending to a
        # stage that died with the supervisor only calls this.
        if self.stop_requests < 2 and self._orphaned():
            # Urgent, like a second Ctrl-C: with the supervisor gone nobody
            # downstream is left to finish the frames in flight.
            log.warning("%s: supervisor is gone, stopping now", self.name)
            self.stop_requests = 2
        return self.stop_requests > 0

    def _orphaned(self) -> bool:
        return self._parent is not None and os.getppid() != self._parent

    def waiting(self) -> bool:
        """Call while blocked on the next stage: keeps the reports coming (so
        the supervisor can tell a stage that waits from one that stopped) and
        says whether to give up."""
        self.tick()
        return self.should_stop()

    def tick(self) -> None:
        """Call often: sends the periodic report (and notices an orphaned stage)."""
        now = time.monotonic()
        if now - self._last_report < REPORT_INTERVAL_S:
            return
        self._last_report = now
        self.should_stop()
        self.send_report()

    def send_report(self) -> None:
        report = self.stats.report(dict(self.rejects.counts))
        # Nobody may be collecting reports (an attached sink without `up`).
        with contextlib.suppress(transport.Again):
            transport.send(self._reports, report.to_wire(), nonblocking=True)

    def close(self) -> None:
        self.send_report()
        transport.close_all(self._reports)
