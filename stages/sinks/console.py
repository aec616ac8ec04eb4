"""Live console view: a table of people and a progress bar for files."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from repcoach.common.config import MAX_STATIONS
from repcoach.common.messages import (
    PHASE_IDLE,
    PHASE_RECOGNISING,
    PHASE_REFLECTION,
    EndOfStream,
    FramePacket,
    SessionState,
)
from repcoach.common.specs import Spec

# What the table says for someone present but not coached (phases from the coach).
NOT_TRAINING = {
    PHASE_IDLE: "not training",
    PHASE_RECOGNISING: "recognising...",
    PHASE_REFLECTION: "mirror reflection",
}

REFRESH_S = 0.25
PLAIN_EVERY_S = 5.0


def _who(person) -> str:
    """A person's number, the member they checked in as, their heart rate."""
    heart = f"\u2665{person.heart_rate}" if person.heart_rate else ""
    return " ".join(part for part in (str(person.track_id), person.member, heart) if part)


class ConsoleSink:
    topics = (b"res",)

    def __init__(self, plain: bool = False):
        self.console = Console()
        self.plain = plain or not self.console.is_terminal
        self.states: dict[str, SessionState] = {}  # by station
        self.cues: dict[tuple[str, int], str] = {}
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._tasks: dict[str, int] = {}  # progress bars, by station
        self._live: Live | None = None
        self._last_draw = 0.0

    def on_state(self, state: SessionState) -> None:
        if state.station not in self.states and len(self.states) >= MAX_STATIONS:
            return
        self.states[state.station] = state
        present = {(state.station, p.track_id) for p in state.people}
        for key in [k for k in self.cues if k[0] == state.station and k not in present]:
            del self.cues[key]  # people who left: the table stays bounded
        for person in state.people:
            if person.last_cue:
                self.cues[state.station, person.track_id] = person.last_cue

    def on_result(self, packet: FramePacket) -> None:
        station = packet.meta.station
        if station not in self.states:
            return  # cues only for stations in the table (bounded)
        for event in packet.events:
            self.cues[station, event.track_id] = event.text

    def on_eos(self, eos: EndOfStream) -> None:
        self._draw(force=True)

    def table(self, state: SessionState | None = None) -> Table:
        title = "waiting for the pipeline..."
        if state is not None:
            named = f"{state.station}: " if len(self.states) > 1 else ""
            title = (
                f"{named}{state.source_id}  frames {state.frames}  dropped {state.dropped}"
                f"  {state.duration_s:.1f} s" + ("  [ended]" if state.ended else "")
            )
        table = Table(title=title, expand=False)
        for column in ("person", "exercise", "reps", "partial", "form", "angles", "last cue"):
            table.add_column(column)
        for person in state.people if state else ():
            angles = " ".join(f"{k}={v:.0f}" for k, v in sorted(person.angles.items())[:4])
            form = "" if person.form_score is None else f"{person.form_score:.0f}"
            table.add_row(
                _who(person),
                person.exercise or NOT_TRAINING.get(person.phase, "-"),
                str(person.reps),
                str(person.partial_reps),
                form,
                angles,
                self.cues.get((state.station, person.track_id), ""),
            )
        return table

    def tables(self) -> Group:
        """A table per station (a placeholder before the first state)."""
        return (
            Group(*(self.table(s) for s in self.states.values()))
            if self.states
            else Group(self.table())
        )

    def _renderable(self):
        files = [s for s in self.states.values() if s.total > 0]
        for state in files:
            if state.station not in self._tasks:
                label = state.station or "frames"
                self._tasks[state.station] = self._progress.add_task(label, total=state.total)
            self._progress.update(self._tasks[state.station], completed=state.last_seq + 1)
        return Group(self._progress, self.tables()) if files else self.tables()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.plain:
            if force or now - self._last_draw > PLAIN_EVERY_S:
                self._last_draw = now
                self.console.print(self.tables())
            return
        if self._live is None:
            self._live = Live(self._renderable(), console=self.console, auto_refresh=False)
            self._live.start()
        if force or now - self._last_draw > REFRESH_S:
            self._last_draw = now
            self._live.update(self._renderable(), refresh=True)

    def tick(self) -> None:
        self._draw()

    def close(self, missed: int) -> None:
        if self._live is not None:
            self._live.update(self._renderable(), refresh=True)
            self._live.stop()
        if missed:
            self.console.print(f"console view missed {missed} update(s) (it was too slow)")


def from_spec(spec: Spec, build: bool) -> ConsoleSink | None:
    spec.check_known({"plain"})
    return ConsoleSink(plain=spec.options.get("plain") == "1") if build else None
