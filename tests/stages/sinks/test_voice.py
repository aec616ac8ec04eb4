"""The voice sink with the real espeak-ng, rendering to a WAV: bursts of
events are said one at a time (latest count only, no repeats), the WAV holds
speech exactly where the sidecar says and silence elsewhere, and a real
pipeline's reps are counted aloud in order."""

from __future__ import annotations

import json
import shutil
import time
import wave
from contextlib import nullcontext
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from repcoach.common.errors import UserError
from repcoach.common.messages import FeedbackEvent, FrameMeta, FramePacket
from repcoach.stages.sinks import make_sink
from repcoach.stages.sinks.speech import Voice, audio_device
from repcoach.stages.sinks.speech_queue import SpeechQueue, Utterance
from repcoach.stages.sinks.voice import Recording, VoiceSink

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng)",
)
GAP_S = 0.25  # the sink's gap between utterances (voice.GAP_S)
COUNT, CUE, PRAISE = 3, 2, 1


# --- the queue policy (no audio)


def item(text: str, priority: int = CUE, at: float = 0.0, person: int = 1) -> Utterance:
    count = priority == COUNT
    return Utterance(text, priority, ("count", person) if count else (person, text), at, count)


@pytest.mark.parametrize(
    ("offers", "now", "said", "dropped"),
    [
        # a newer count replaces the pending one; other people's counts stay
        (
            [item("1", COUNT), item("2", COUNT), item("7", COUNT, person=2), item("3", COUNT)],
            0.0,
            ["7", "3"],  # in order of arrival: "3" came last
            [("1", "superseded"), ("2", "superseded")],
        ),
        # the same cue twice while pending: said once
        (
            [item("Chest up"), item("Chest up", at=0.5)],
            0.0,
            ["Chest up"],
            [("Chest up", "repeated")],
        ),
        # the same text for another person is another message
        ([item("Chest up"), item("Chest up", person=2)], 0.0, ["Chest up", "Chest up"], []),
        # full (3): the lowest priority, oldest first, goes; counts go first when said
        (
            [item("Nice!", PRAISE), item("a"), item("Great!", PRAISE), item("b"), item("4", COUNT)],
            0.0,
            ["4", "a", "b"],
            [("Nice!", "queue-full"), ("Great!", "queue-full")],
        ),
        # a cue that waited too long is stale; a count never is
        ([item("a", at=0.0), item("5", COUNT, at=0.0)], 10.0, ["5"], [("a", "stale")]),
    ],
)
def test_queue_says_latest_counts_no_repeats_and_stays_bounded(offers, now, said, dropped):
    queue = SpeechQueue(size=3, repeat_s=8.0, max_wait_s=6.0)
    lost = [drop for offer in offers for drop in queue.offer(offer, offer.queued_s)]
    spoken = []
    while queue:
        next_item, stale = queue.take(now)
        lost += stale
        if next_item is not None:
            spoken.append(next_item.text)
    assert spoken == said
    assert [(i.text, reason) for i, reason in lost] == dropped


def test_queue_does_not_repeat_what_was_just_said():
    queue = SpeechQueue(repeat_s=8.0)
    queue.offer(item("Chest up"), 0.0)
    assert queue.take(1.0)[0].text == "Chest up"
    assert [r for _, r in queue.offer(item("Chest up", at=5.0), 5.0)] == ["repeated"]
    assert queue.offer(item("Chest up", at=9.5), 9.5) == []  # 8.5 s after it was said


@pytest.mark.parametrize(
    ("size", "expectation"),
    [(1, nullcontext()), (0, pytest.raises(ValueError, match="at least 1, got 0"))],
)
def test_queue_size_is_checked(size, expectation):
    with expectation:
        SpeechQueue(size=size)


# --- the sink, rendering to a WAV


def packet(seq: int, *events: FeedbackEvent) -> FramePacket:
    return FramePacket(FrameMeta("cam", seq, seq - 1, 0, 0.0, seq / 30, 8, 8), events=events)


def event(n: int, kind: str, text: str, track: int = 1, severity: str = "info", **data):
    return FeedbackEvent(f"s:{n}", kind, track, n, n / 30, text, severity, data)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples.astype(np.float64), rate


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def check_recording(wav_path: Path) -> dict:
    """The sidecar's utterances never overlap, and the WAV has speech in each
    of them and silence between them."""
    document = json.loads(wav_path.with_suffix(".json").read_text())
    said = document["utterances"]
    for before, after in pairwise(said):
        assert after["start_s"] >= before["end_s"] + GAP_S - 0.01, (before, after)
    samples, rate = read_wav(wav_path)
    assert rate == document["sample_rate"]
    assert len(samples) / rate == pytest.approx(document["length_s"], abs=0.01)
    assert len(samples) / rate >= said[-1]["end_s"]
    edges = [0.0] + [t for u in said for t in (u["start_s"], u["end_s"])] + [len(samples) / rate]
    margin = 0.002  # the sidecar's times are rounded to the millisecond
    for i, (a, b) in enumerate(pairwise(edges)):
        part = samples[round((a + margin) * rate) : round((b - margin) * rate)]
        if i % 2:  # an utterance: clearly audible
            assert rms(part) > 300, f"no speech in {a:.2f}-{b:.2f} s (rms {rms(part):.0f})"
        elif i > 0 or b - a > 0.05:  # between utterances (and a real lead-in): silence
            assert rms(part) < 1, f"sound between utterances {a:.2f}-{b:.2f} s"
    return document


@needs_espeak
def test_a_burst_is_said_one_line_at_a_time_latest_count_only(tmp_path):
    wav_path = tmp_path / "session.wav"
    sink = make_sink(f"voice:path={wav_path}")
    sink.on_result(packet(0, event(0, "person_enter", "Welcome! Step in.")))
    busy = 0.0  # time spent inside on_result
    for rep in range(1, 11):  # ten reps in about a second, a cue repeated among them
        events = [event(rep, "rep", f"Rep {rep}", rep=rep)]
        if rep in (1, 4, 7):
            events.append(event(100 + rep, "cue", "Keep your chest up", severity="warn"))
        started = time.monotonic()
        sink.on_result(packet(rep, *events))
        busy += time.monotonic() - started
        time.sleep(0.1)
    assert busy < 1.0, f"feeding the sink must not wait for speech ({busy:.2f} s)"
    sink.on_eos(None)
    sink.close(0)

    document = check_recording(wav_path)
    said = [u["text"] for u in document["utterances"]]
    counts = [int(u["text"]) for u in document["utterances"] if u["kind"] == "rep"]
    assert counts[-1] == 10, said
    assert counts == sorted(counts) and len(counts) < 10, said
    superseded = [int(d["text"]) for d in document["dropped"] if d["reason"] == "superseded"]
    assert sorted(counts + superseded) == list(range(1, 11))
    # said once; on a very busy machine it may wait past max_wait_s and go stale
    stale = [d for d in document["dropped"] if d["reason"] == "stale"]
    assert said.count("Keep your chest up") + len(stale) == 1
    repeated = [d for d in document["dropped"] if d["reason"] == "repeated"]
    assert [d["event_id"] for d in repeated] == ["s:104", "s:107"]
    assert document["dropped_counts"] == {
        "superseded": len(superseded),
        "repeated": 2,
        **({"stale": 1} if stale else {}),
    }
    assert "Welcome! Step in." not in said  # entering is not announced
    assert not list(tmp_path.glob(".session.*")), "no temporary files left behind"


@needs_espeak
def test_several_people_are_named_and_people_option_filters(tmp_path):
    both, only_two = tmp_path / "both.wav", tmp_path / "two.wav"
    sinks = [make_sink(f"voice:path={both}"), make_sink(f"voice:path={only_two},people=2")]
    for sink in sinks:
        sink.on_result(packet(0, event(0, "person_enter", "Welcome! Step in.", track=1)))
        sink.on_result(packet(1, event(1, "rep", "Rep 1", track=1, rep=1)))
        sink.on_result(packet(2, event(2, "person_enter", "Welcome! Step in.", track=2)))
        # person 2 was track 5 before a tracker hand-over: still called person 2
        sink.on_result(
            packet(3, event(3, "cue", "Knees out", track=5, severity="warn", tracks=[2, 5]))
        )
        sink.on_eos(None)
        sink.close(0)
    assert [u["text"] for u in check_recording(both)["utterances"]] == [
        "1",
        "Person 2: Knees out",
    ]
    assert [u["text"] for u in check_recording(only_two)["utterances"]] == ["Knees out"]


# --- a real pipeline


@needs_espeak
def test_pipeline_counts_the_reps_of_a_rendered_squat_aloud(pipeline, run_root, tmp_path):
    wav_path = tmp_path / "voice.wav"
    result = pipeline.run(
        "up",
        "--name",
        "voice-e2e",
        "--source",
        "synthetic:squat,reps=3",
        "--no-console",
        "--sink",
        f"voice:path={wav_path}",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    document = check_recording(wav_path)
    said_counts = [u for u in document["utterances"] if u["kind"] == "rep"]
    superseded = [d for d in document["dropped"] if d["kind"] == "rep"]
    assert sorted(int(u["text"]) for u in said_counts + superseded) == [1, 2, 3]
    assert [u["text"] for u in said_counts][-1] == "3"
    # Slower than real time (as on a CPU), reps arrive seconds apart and every
    # count is said; only a much faster machine could supersede one.
    arrivals = sorted(u["queued_s"] for u in said_counts + superseded)
    if min(np.diff(arrivals)) > 3.0:
        assert [u["text"] for u in said_counts] == ["1", "2", "3"]
    log = (run_root / "voice-e2e" / "logs" / "sink-voice.log").read_text()
    assert f"voice sink said {len(document['utterances'])} line(s)" in log


# --- bad input: one line


@pytest.mark.parametrize(
    ("sink", "path_env", "expected"),
    [
        ("voice:path={tmp}/v.wav", "/nonexistent", "voice sink needs espeak-ng (apt-get install"),
        ("voice:path=/sys/v.wav", None, "voice sink file /sys/v.wav is not writable"),
        ("voice:path={tmp}/no/v.wav", None, "folder {tmp}/no does not exist"),
        ("voice:path={tmp}/v.mp3", None, "must end in .wav"),
        ("voice:path={tmp}/v.wav,voice=xx-nosuch", None, "espeak-ng has no voice 'xx-nosuch'"),
        ("voice:path={tmp}/v.wav,rate=5", None, "rate=5 is outside [80, 450]"),
        ("voice:path={tmp}/v.wav,people=one", None, "people='one'"),
        ("voice:path={tmp}/v.wav,volume=3", None, "unknown option(s) ['volume']"),
    ],
)
def test_bad_voice_options_get_one_line(pipeline, tmp_path, sink, path_env, expected):
    if path_env is None and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    if path_env is not None:
        pipeline.env["PATH"] = path_env
    sink = sink.format(tmp=tmp_path)
    result = pipeline.run("up", "--source", "synthetic:squat", "--no-console", "--sink", sink)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected.format(tmp=tmp_path) in lines[0]
    assert not (tmp_path / "v.wav").exists()


@needs_espeak
@pytest.mark.skipif(audio_device() is not None, reason="this machine has an audio device")
def test_speaking_live_without_an_audio_device_says_to_give_a_path(pipeline):
    for args in (
        ["up", "--source", "synthetic:squat", "--sink", "voice"],
        ["sink", "attach", "voice"],
    ):
        result = pipeline.run(*args, "--no-console" if args[0] == "up" else "--name=default")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "no audio device" in lines[0] and "voice:path=FILE.wav" in lines[0]


@needs_espeak
def test_speech_that_fails_mid_session_stops_the_sink_with_one_line(tmp_path):
    # A voice espeak-ng lacks, past the checks from_spec makes: the speaker
    # thread fails and the runner's next tick() raises the one-line error.
    wav_path = tmp_path / "v.wav"
    sink = VoiceSink(Voice("zz-nosuch"), Recording(wav_path))
    sink.on_result(packet(1, event(1, "rep", "Rep 1", rep=1)))
    deadline = time.monotonic() + 20
    with pytest.raises(UserError, match="espeak-ng has no voice 'zz-nosuch'"):
        while time.monotonic() < deadline:
            sink.tick()
            time.sleep(0.05)
    sink.close(0)
    document = json.loads(wav_path.with_suffix(".json").read_text())
    assert document["utterances"] == []
    assert [(d["text"], d["reason"]) for d in document["dropped"]] == [("1", "failed")]
