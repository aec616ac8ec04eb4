"""Offline speech with espeak-ng: text to samples, samples to the speakers or
onto a WAV timeline. Everything the voice sink knows about audio is here."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from repcoach.common.atomic import atomic_file
from repcoach.common.errors import UserError

ESPEAK = "espeak-ng"
MISSING_ESPEAK = "voice sink needs espeak-ng (apt-get install espeak-ng)"
SAMPLE_WIDTH = 2  # espeak-ng writes 16-bit mono PCM
ESPEAK_RATE_HZ = 22050  # its sample rate (a WAV with nothing said still needs one)
RENDER_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Clip:
    """Rendered speech: 16-bit mono samples at `rate` Hz."""

    samples: np.ndarray
    rate: int

    def __post_init__(self) -> None:
        if self.samples.dtype != np.int16 or self.samples.ndim != 1:
            raise ValueError(
                f"clip samples must be 1-D int16, got {self.samples.ndim}-D {self.samples.dtype}"
            )

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def wav_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(SAMPLE_WIDTH)
            out.setframerate(self.rate)
            out.writeframes(self.samples.tobytes())
        return buffer.getvalue()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


@lru_cache(maxsize=128)  # counts and cues repeat: say each once to espeak-ng
def _render(exe: str, voice: str, rate: int, text: str) -> Clip:
    # The text goes in on stdin, so no text can be mistaken for an option.
    try:
        done = subprocess.run(
            [exe, "--stdout", "-v", voice, "-s", str(rate)],
            input=text.encode(),
            capture_output=True,
            timeout=RENDER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"voice sink: espeak-ng took over {RENDER_TIMEOUT_S:.0f} s") from None
    except OSError as error:
        raise UserError(f"voice sink: cannot run espeak-ng ({error.strerror})") from None
    stderr = done.stderr.decode(errors="replace")
    if "voice does not exist" in stderr:
        raise UserError(
            f"voice sink: espeak-ng has no voice {voice!r} (list them: espeak-ng --voices)"
        )
    if done.returncode != 0 or not done.stdout:
        raise UserError(f"voice sink: espeak-ng failed: {_last_line(stderr)}")
    # Streamed WAV: the header's sizes are placeholders; read what is there.
    with wave.open(io.BytesIO(done.stdout)) as source:
        if source.getsampwidth() != SAMPLE_WIDTH or source.getnchannels() != 1:
            raise UserError("voice sink: espeak-ng did not write 16-bit mono audio")
        rate_hz = source.getframerate()
        raw = source.readframes(source.getnframes())
    samples = np.frombuffer(raw[: len(raw) // SAMPLE_WIDTH * SAMPLE_WIDTH], dtype="<i2")
    samples = samples.astype(np.int16)
    samples.setflags(write=False)  # shared through the cache
    return Clip(samples, rate_hz)


class Voice:
    """An espeak-ng voice (`en`, `en-us`, `de`, ...) at `rate` words per minute."""

    def __init__(self, name: str = "en", rate: int = 175):
        exe = shutil.which(ESPEAK)
        if exe is None:
            raise UserError(MISSING_ESPEAK)
        self.exe, self.name, self.rate = exe, name, rate

    def render(self, text: str) -> Clip:
        return _render(self.exe, self.name, self.rate, text)

    def check(self) -> Clip:
        """Render a word now, so a bad voice name fails before the session."""
        return self.render("ready")


# --- live playback


def audio_device() -> str | None:
    """Where sound can go (ALSA cards, a PulseAudio or PipeWire server), or None."""
    if Path("/dev/snd").is_dir():
        return "/dev/snd"
    if os.environ.get("PULSE_SERVER"):
        return os.environ["PULSE_SERVER"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    for name in ("pulse/native", "pipewire-0"):
        if runtime and Path(runtime, name).exists():
            return str(Path(runtime, name))
    return None


NO_AUDIO = (
    "voice sink: no audio device here ({why}); render to a file instead: "
    "--sink voice:path=FILE.wav (or `pipeline sink attach voice --path FILE.wav`)"
)


class Speakers:
    """Plays clips on the audio device, returning when the sound has ended:
    through `aplay` when installed, else espeak-ng speaks the text itself."""

    def __init__(self, voice: Voice):
        if audio_device() is None:
            raise UserError(NO_AUDIO.format(why="no /dev/snd, no PulseAudio or PipeWire"))
        self.voice = voice
        self.aplay = shutil.which("aplay")

    def play(self, clip: Clip, text: str) -> None:
        if self.aplay is not None:
            command, data = [self.aplay, "-q", "-"], clip.wav_bytes()
        else:
            voice = self.voice
            command, data = [voice.exe, "-v", voice.name, "-s", str(voice.rate)], text.encode()
        try:
            done = subprocess.run(
                command, input=data, capture_output=True, timeout=clip.seconds + 10.0
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise UserError(NO_AUDIO.format(why=f"{Path(command[0]).name}: {error}")) from None
        # espeak-ng exits 0 even when it cannot open the device; it only complains.
        if done.returncode != 0 or (self.aplay is None and done.stderr.strip()):
            raise UserError(NO_AUDIO.format(why=_last_line(done.stderr.decode(errors="replace"))))


# --- rendering to a file


class Timeline:
    """Clips placed at moments of a session, written as one WAV with silence
    between them: what a listener beside the station heard."""

    def __init__(self) -> None:
        self.rate: int | None = None
        self._placed: list[tuple[int, np.ndarray]] = []  # (first sample, samples)

    def place(self, start_s: float, clip: Clip) -> tuple[float, float]:
        """Put `clip` at `start_s` (after anything placed earlier); returns the
        (start, end) seconds it really occupies, to the sample."""
        if self.rate is None:
            self.rate = clip.rate
        samples = clip.samples
        if clip.rate != self.rate:  # another voice family (mbrola) mid-session: resample
            length = round(len(samples) * self.rate / clip.rate)
            grid = np.linspace(0, len(samples) - 1, length)
            samples = np.interp(grid, np.arange(len(samples)), samples).astype(np.int16)
        start = max(round(start_s * self.rate), self.end_sample)
        self._placed.append((start, samples))
        return start / self.rate, (start + len(samples)) / self.rate

    @property
    def end_sample(self) -> int:
        return self._placed[-1][0] + len(self._placed[-1][1]) if self._placed else 0

    def write(self, path: Path, length_s: float, rate: int) -> float:
        """Write the WAV atomically, at least `length_s` long (at `rate` Hz if
        nothing was placed); returns its length."""
        rate = self.rate or rate
        total = max(round(length_s * rate), self.end_sample)
        chunk = np.zeros(rate, dtype=np.int16)  # silence, a second at a time
        with atomic_file(path) as handle, wave.open(handle, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(SAMPLE_WIDTH)
            out.setframerate(rate)
            cursor = 0
            for start, samples in [*self._placed, (total, np.zeros(0, np.int16))]:
                while cursor < start:
                    step = min(start - cursor, len(chunk))
                    out.writeframes(chunk[:step].tobytes())
                    cursor += step
                out.writeframes(samples.tobytes())
                cursor += len(samples)
        return total / rate
