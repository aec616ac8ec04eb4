"""Live console view: a table of people and a progress bar for files."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

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


class ConsoleSink:
    topics = (b"res",)

    def __init__(self, plain: bool = False):
        self.console = Console()
        self.plain = plain or not self.console.is_terminal
        self.state: SessionState | None = None
        self.cues: dict[int, str] = {}
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task = None
        self._live: Live | None = None
        self._last_draw = 0.0

    def on_state(self, state: SessionState) -> None:
        self.state = state
        for person in state.people:
            if person.last_cue:
                self.cues[person.track_id] = person.last_cue

    def on_result(self, packet: FramePacket) -> None:
        for event in packet.events:
            self.cues[event.track_id] = event.text

    def on_eos(self, eos: EndOfStream) -> None:
        self._draw(force=True)

    def table(self) -> Table:
        state = self.state
        title = "waiting for the pipeline..."
        if state is not None:
            title = (
                f"{state.source_id}  frames {state.frames}  dropped {state.dropped}"
                f"  {state.duration_s:.1f} s" + ("  [ended]" if state.ended else "")
            )
        table = Table(title=title, expand=False)
        for column in ("person", "exercise", "reps", "partial", "form", "angles", "last cue"):
            table.add_column(column)
        for person in state.people if state else ():
            angles = " ".join(f"{k}={v:.0f}" for k, v in sorted(person.angles.items())[:4])
            form = "" if person.form_score is None else f"{person.form_score:.0f}"
            table.add_row(
                str(person.track_id),
                person.exercise or NOT_TRAINING.get(person.phase, "-"),
                str(person.reps),
                str(person.partial_reps),
                form,
                angles,
                self.cues.get(person.track_id, ""),
            )
        return table

    def _renderable(self):
        state = self.state
        if state is not None and state.total > 0:
            if self._task is None:
                self._task = self._progress.add_task("frames", total=state.total)
            self._progress.update(self._task, completed=state.last_seq + 1)
            return Group(self._progress, self.table())
        return self.table()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.plain:
            if force or now - self._last_draw > PLAIN_EVERY_S:
                self._last_draw = now
                self.console.print(self.table())
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
