"""Records the sessions in the history database (`common/history.py`) as
they happen: each rep, partial rep and hold in its own transaction the
moment its event arrives (a crash keeps every rep already counted), a
thinned angle trace for the report, and each session's totals. Each station
is a session of its own, stations added while the pipeline runs included.
`pipeline up` starts it unless `--no-history`; with `--report DIR` it writes
each session's report when its source ends.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from repcoach.common.atomic import disk_full
from repcoach.common.config import MAX_STATIONS, station_session
from repcoach.common.errors import UserError
from repcoach.common.history import (
    DEFAULT_LEVEL,
    REP_KINDS,
    AngleSample,
    History,
    check_level,
)
from repcoach.common.messages import EndOfStream, FramePacket, SessionState
from repcoach.common.specs import Spec

log = logging.getLogger(__name__)

ANGLE_FLUSH_S = 1.0


class StationRecord:
    """One station's session in the history database."""

    def __init__(
        self,
        path: Path,
        session: str,
        member: str | None,
        level: str,
        label: str,
        angles_hz: float = 10.0,
        report_dir: Path | None = None,
    ):
        self.history = History.open(path)
        self.session, self.member, self.level, self.label = session, member, level, label
        self.report_dir = report_dir
        self._started = False
        self._source_known = False
        self._angle_gap_s = 1.0 / angles_hz if angles_hz > 0 else float("inf")
        self._last_angle_pts: dict[int, float] = {}
        self._angles: list[AngleSample] = []
        self._last_flush = time.monotonic()
        self._ended = False
        self.failure: str | None = None  # the first write the database refused
        self.lost = 0  # reps, holds and state updates not recorded since

    def _guard(self, write, *args) -> bool:
        """Run one database write; a refused one (disk full, file gone) is said
        once and counted, and the session goes on. What was committed before
        stays in the database (each write is its own transaction)."""
        try:
            write(*args)
        except (sqlite3.Error, OSError) as exc:
            self.lost += 1
            if self.failure is None:
                full = disk_full(self.history.path.parent)
                reason = f"{exc}" + (", no space left on device" if full else "")
                self.failure = f"could not write the history database {self.history.path}: {reason}"
                log.error("error: %s; what was recorded before is kept", self.failure)
            return False
        return True

    def _start(self, source: str) -> None:
        self._guard(self._start_now, source)

    def _start_now(self, source: str) -> None:
        if not self._started:
            self.history.start_session(self.session, self.member, self.level, source, self.label)
            self._started = True
        if source and not self._source_known:  # the very first state may precede any frame
            self._source_known = True
            self.history.set_source(self.session, source)

    def on_state(self, state: SessionState) -> None:
        self._start(state.source_id)
        status = "ended" if state.ended else "running"
        self._guard(
            self.history.update_session, self.session, state.frames, state.duration_s, status
        )
        self._ended = self._ended or state.ended

    def on_result(self, packet: FramePacket) -> None:
        self._start(packet.meta.source_id)
        for event in packet.events:
            if event.kind in REP_KINDS:
                # the coach names the member on their own reps only (guests: none)
                self._guard(
                    self.history.add_rep,
                    self.session,
                    event.event_id,
                    event.kind,
                    event.person,
                    event.data,
                )
        pts = packet.meta.pts
        for score in packet.scores:
            last = self._last_angle_pts.get(score.track_id, -1e9)
            if score.angles and pts - last >= self._angle_gap_s:
                self._last_angle_pts[score.track_id] = pts
                self._angles.append(
                    AngleSample(
                        score.track_id, pts, score.exercise, dict(score.angles), score.heart_rate
                    )
                )

    def _flush_angles(self) -> None:
        self._guard(self.history.add_angles, self.session, list(self._angles))
        self._angles.clear()
        self._last_flush = time.monotonic()

    def on_eos(self, eos: EndOfStream) -> None:
        self._flush_angles()

    def tick(self) -> None:
        if self._angles and time.monotonic() - self._last_flush > ANGLE_FLUSH_S:
            self._flush_angles()

    def _end_session(self, status: str) -> None:
        row = self.history.session(self.session)
        self.history.update_session(self.session, row["frames"], row["duration_s"], status)

    def close(self, missed: int) -> None:
        """Ends the session row and writes the report; raises UserError (the
        sink exits non-zero) if any write failed, so a run is never reported
        as recorded when it was not."""
        try:
            self._flush_angles()
            if self._started:
                self._guard(self._end_session, "ended" if self._ended else "stopped")
            if self.failure is not None:
                raise UserError(
                    f"{self.failure} ({self.lost} write(s) lost; what was recorded before is "
                    "kept" + ("; no report was written" if self.report_dir else "") + ")"
                )
            if self._started and self.report_dir is not None:
                from repcoach.stages.report import write_report

                index = write_report(self.history, self.session, self.report_dir)
                log.warning("session report written to %s", index)
        finally:
            self.history.close()


class HistorySink:
    """Every station's session (`StationRecord`). The pipeline's session id
    is `session`; a station's is `SESSION.STATION`, except `first` (a
    pipeline started with one station), whose is `session` itself, labelled
    `label` and recorded as `member` (`--profile`), its report in `report`
    rather than `report/STATION`."""

    topics = (b"res",)

    def __init__(
        self,
        path: Path,
        session: str,
        member: str | None,
        level: str,
        label: str,
        angles_hz: float = 10.0,
        report_dir: Path | None = None,
        first: str | None = None,
    ):
        self.path, self.session, self.member, self.level = path, session, member, level
        self.label, self.angles_hz, self.first = label, angles_hz, first
        self.report_dir = report_dir
        self.records: dict[str, StationRecord] = {}

    def _record(self, station: str) -> StationRecord | None:
        record = self.records.get(station)
        if record is None and len(self.records) < MAX_STATIONS:
            first = station == self.first
            report = self.report_dir
            if report is not None and not first:
                report = report / station
            record = self.records[station] = StationRecord(
                self.path,
                self.session if first else station_session(self.session, station, 2),
                self.member if first else None,
                self.level,
                self.label if first else station,
                self.angles_hz,
                report,
            )
        return record

    def on_state(self, state: SessionState) -> None:
        if (record := self._record(state.station)) is not None:
            record.on_state(state)

    def on_result(self, packet: FramePacket) -> None:
        if (record := self._record(packet.meta.station)) is not None:
            record.on_result(packet)

    def on_eos(self, eos: EndOfStream) -> None:
        if (record := self._record(eos.station)) is not None:
            record.on_eos(eos)

    def tick(self) -> None:
        for record in self.records.values():
            record.tick()

    def drops(self) -> dict[str, int]:
        return {"history-lost": sum(r.lost for r in self.records.values())}

    def close(self, missed: int) -> None:
        """Ends every session; the first failure is raised (the sink exits
        non-zero) once all have been closed."""
        failures = []
        for record in self.records.values():
            try:
                record.close(missed)
            except UserError as error:
                failures.append(str(error))
        if failures:
            raise UserError(failures[0])


def from_spec(spec: Spec, build: bool) -> HistorySink | None:
    spec.check_known(
        {"path", "session", "member", "level", "label", "angles_hz", "report", "first"}
    )
    for key in ("path", "session"):
        if not spec.options.get(key):
            raise UserError(f"history sink needs {key}=... (pipeline up fills it in)")
    level = check_level(spec.take("level", DEFAULT_LEVEL))
    hz = spec.take_number("angles_hz", 10.0, 0.0, 120.0)
    report = spec.options.get("report")
    if report:
        from repcoach.stages.report.writer import check_target

        check_target(Path(report).expanduser())  # fail now, not after the session
    if not build:
        return None
    return HistorySink(
        Path(spec.options["path"]),
        spec.options["session"],
        spec.options.get("member") or None,
        level,
        spec.options.get("label", "default"),
        hz,
        Path(report).expanduser() if report else None,
        spec.options.get("first") or None,
    )
