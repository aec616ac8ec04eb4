"""Spoken rep counts and cues for the person training (espeak-ng, offline).

    --sink voice                       speak on this machine's audio device
    --sink voice:path=session.wav      render the session to a WAV file instead,
                                       plus session.json listing what was said
    options: voice=en (an espeak-ng voice), rate=175 (words per minute),
             people=all or track ids joined by '+', e.g. people=1+3

One speaker thread says one thing at a time, with a short gap after each;
what arrives meanwhile waits in a small queue (`speech_queue.py` has the
policy: only the latest count, no repeats, bounded). So the pipeline never
waits for speech, and the voice never talks over itself.

What is said: a rep's number ("3"; digits, so other voices say it in their
language), "Not counted" for a partial rep, and the text of cues, visibility
warnings, finished holds and recognised exercises. People entering and
leaving are not announced. With more than one person present (of those
spoken for), each line starts with "Person N:", N being the first track id
the person had, so it stays the same when the tracker hands them over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from repcoach.common.atomic import write_json_atomic
from repcoach.common.errors import UserError
from repcoach.common.messages import (
    EndOfStream,
    EventKind,
    FeedbackEvent,
    FramePacket,
    SessionState,
    Severity,
)
from repcoach.common.specs import Spec
from repcoach.stages.sinks import check_writable, required_path
from repcoach.stages.sinks.speech import ESPEAK_RATE_HZ, Clip, Speakers, Timeline, Voice
from repcoach.stages.sinks.speech_queue import SpeechQueue, Utterance

log = logging.getLogger(__name__)

OPTIONS = {"path", "voice", "rate", "people"}
DEFAULT_RATE = 175
GAP_S = 0.25  # silence after each utterance, so lines do not run together
DRAIN_S = 10.0  # at the end of a session, time left to say what still waits
SHUTDOWN = "shutdown"  # drop reasons besides the queue's own
FAILED = "failed"

# What matters most to the person training goes first and is dropped last.
PRIORITY = {
    EventKind.REP: 3,
    EventKind.PARTIAL_REP: 2,
    EventKind.CUE: 2,
    EventKind.VISIBILITY: 2,
    EventKind.HOLD: 2,
    EventKind.EXERCISE: 1,
}
PRAISE_PRIORITY = 1  # a cue with severity "info": nice to hear, first to go


def spoken_text(event: FeedbackEvent) -> str:
    if event.kind == EventKind.REP:
        return str(event.data.get("rep") or event.text.removeprefix("Rep "))
    if event.kind == EventKind.PARTIAL_REP:
        return "Not counted"
    return event.text


def utterance_for(event: FeedbackEvent, now: float, prefix: bool) -> Utterance | None:
    """What to say for `event` (None: nothing), queued at `now`."""
    priority = PRIORITY.get(event.kind)
    if priority is None or not event.text:
        return None
    if event.kind == EventKind.CUE and event.severity == Severity.INFO:
        priority = PRAISE_PRIORITY
    person, text = event.person, spoken_text(event)
    count = event.kind == EventKind.REP
    return Utterance(
        text=f"Person {person}: {text}" if prefix else text,
        priority=priority,
        key=("count", person) if count else (person, text),
        queued_s=now,
        count=count,
        about={
            "event_id": event.event_id,
            "kind": event.kind,
            "track": event.track_id,
            "pts": round(event.pts, 3),
        },
    )


class Output(Protocol):
    def play(self, clip: Clip, text: str, start_s: float) -> tuple[float, float]:
        """Say `clip` from `start_s` (session seconds); returns its (start, end)."""
        ...


class LiveOutput:
    """The audio device: returns once the clip has been heard."""

    def __init__(self, speakers: Speakers):
        self.speakers = speakers

    def play(self, clip: Clip, text: str, start_s: float) -> tuple[float, float]:
        self.speakers.play(clip, text)
        return start_s, start_s + clip.seconds


class Recording:
    """A WAV of the session (`path`) and what was said in it (`path`.json)."""

    def __init__(self, path: Path):
        self.path = path
        self.sidecar = sidecar_path(path)
        self.timeline = Timeline()

    def play(self, clip: Clip, text: str, start_s: float) -> tuple[float, float]:
        return self.timeline.place(start_s, clip)


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


@dataclass
class _Said:
    item: Utterance
    start_s: float
    end_s: float


class VoiceSink:
    """Feeds events to one speaker thread through a `SpeechQueue`."""

    topics = (b"res",)

    def __init__(
        self,
        voice: Voice,
        output: Output,
        people: frozenset[int] | None = None,
        queue: SpeechQueue | None = None,
        gap_s: float = GAP_S,
    ):
        self.voice, self.output, self.people, self.gap_s = voice, output, people, gap_s
        self.queue = queue or SpeechQueue()
        self.said: list[_Said] = []
        self.dropped: list[tuple[Utterance, str, float]] = []  # item, reason, when
        self._drop_counts: Counter[str] = Counter()
        self._present: set[int] = set()
        self._ended = False
        self._busy = False
        self._failure: Exception | None = None  # raised on the runner's thread by tick()
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self.started_wall = time.time()
        self._thread = threading.Thread(target=self._speak, name="voice", daemon=True)
        self._thread.start()

    def now(self) -> float:
        """Seconds since the sink started (the WAV's time axis)."""
        return time.monotonic() - self._t0

    # --- the sink interface (the runner's thread): queue work, never wait for speech

    def on_state(self, state: SessionState) -> None:
        pass

    def on_result(self, packet: FramePacket) -> None:
        for event in packet.events:
            self.offer(event)

    def wanted(self, event: FeedbackEvent) -> bool:
        """Is `event` about someone this sink speaks for (under any track id)?"""
        if self.people is None:
            return True
        return bool(self.people.intersection(event.data.get("tracks") or (event.track_id,)))

    def offer(self, event: FeedbackEvent) -> None:
        if not self.wanted(event):
            return
        person = event.person
        if event.kind == EventKind.PERSON_LEAVE:
            self._present.discard(person)
            return
        self._present.add(person)
        now = self.now()
        item = utterance_for(event, now, prefix=len(self._present) > 1)
        if item is None:
            return
        with self._lock:
            self._drop(self.queue.offer(item, now))
            self._lock.notify_all()

    def on_eos(self, eos: EndOfStream) -> None:
        self._ended = True

    def tick(self) -> None:
        if self._failure is not None:
            raise self._failure

    def close(self, missed: int) -> None:
        with self._lock:
            # At the end of a session, say what waits; on Ctrl-C, stop now.
            self._lock.wait_for(
                lambda: self._failure is not None or not (self.queue or self._busy),
                timeout=DRAIN_S if self._ended else 0.0,
            )
            self._stop.set()
            self._lock.notify_all()
        self._thread.join(timeout=2.0)
        with self._lock:
            self._drop([(item, SHUTDOWN) for item in self.queue.clear()])
            said, dropped = list(self.said), list(self.dropped)
        if isinstance(self.output, Recording):
            self._write(self.output, said, dropped, missed)
        counts = Counter(reason for _, reason, _ in dropped)
        detail = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
        log.info(
            "voice sink said %d line(s), dropped %d%s%s",
            len(said),
            len(dropped),
            f" ({detail})" if detail else "",
            f"; missed {missed} result(s)" if missed else "",
        )

    # --- the speaker thread

    def drops(self) -> dict[str, int]:
        return dict(self._drop_counts)

    def _drop(self, dropped: list[tuple[Utterance, str]]) -> None:
        when = self.now()
        self._drop_counts.update(reason for _, reason in dropped)
        self.dropped.extend((item, reason, when) for item, reason in dropped)

    def _speak(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._stop.is_set() or bool(self.queue))
                if self._stop.is_set():
                    return
                item, stale = self.queue.take(self.now())
                self._drop(stale)
                if item is None:
                    continue
                self._busy = True
            try:
                clip = self.voice.render(item.text)
                start_s, end_s = self.output.play(clip, item.text, self.now())
            except Exception as error:  # no audio device, espeak-ng broke, or a bug
                with self._lock:
                    self._failure, self._busy = error, False
                    self._drop([(item, FAILED)])
                    self._lock.notify_all()
                return
            with self._lock:
                self.said.append(_Said(item, start_s, end_s))
            # A recording is not heard in real time: wait as if it were, so the
            # queue fills and drops exactly as it would live.
            self._stop.wait(max(end_s - self.now(), 0.0) + self.gap_s)
            with self._lock:
                self._busy = False
                self._lock.notify_all()

    # --- the recording's files

    def _write(
        self,
        recording: Recording,
        said: list[_Said],
        dropped: list[tuple[Utterance, str, float]],
        missed: int,
    ) -> None:
        length = recording.timeline.write(recording.path, self.now(), ESPEAK_RATE_HZ)
        document = {
            "wav": recording.path.name,
            "sample_rate": recording.timeline.rate or ESPEAK_RATE_HZ,
            "length_s": round(length, 3),
            "started_wall": round(self.started_wall, 3),
            "voice": self.voice.name,
            "rate_wpm": self.voice.rate,
            "utterances": [
                {
                    "text": s.item.text,
                    **s.item.about,
                    "queued_s": round(s.item.queued_s, 3),
                    "start_s": round(s.start_s, 3),
                    "end_s": round(s.end_s, 3),
                }
                for s in said
            ],
            "dropped": [
                {
                    "text": item.text,
                    **item.about,
                    "queued_s": round(item.queued_s, 3),
                    "dropped_s": round(when, 3),
                    "reason": reason,
                }
                for item, reason, when in dropped
            ],
            "dropped_counts": dict(Counter(reason for _, reason, _ in dropped)),
            "missed_results": missed,
        }
        write_json_atomic(recording.sidecar, document)


def parse_people(raw: str) -> frozenset[int] | None:
    if raw == "all":
        return None
    parts = raw.split("+")
    if not all(part.strip().isdigit() for part in parts):
        raise UserError(
            f"voice: people={raw!r}: give track ids joined by '+' (people=1+2) or people=all"
        )
    return frozenset(int(part) for part in parts)


def from_spec(spec: Spec, build: bool) -> VoiceSink | None:
    spec.check_known(OPTIONS)
    rate = int(spec.take_number("rate", DEFAULT_RATE, 80, 450))
    people = parse_people(spec.take("people", "all"))
    voice = Voice(spec.take("voice", "en"), rate)  # fails first without espeak-ng
    voice.check()
    output: Output
    if "path" in spec.options:
        example = "--sink voice:path=session.wav"
        path = required_path(spec, "voice sink file", example)
        if path.suffix.lower() != ".wav":
            raise UserError(f"voice sink file {path} must end in .wav, e.g. {example}")
        check_writable(sidecar_path(path), "voice sink's list of what was said")
        output = Recording(path)
    else:
        output = LiveOutput(Speakers(voice))  # fails without an audio device
    return VoiceSink(voice, output, people) if build else None
