"""A person's own range of motion and tempo, learnt from their first reps.

The first `CALIBRATION_REPS` clean full reps (no form fault flagged) of an
exercise set the baseline; when they are done the set is compared with the
member's last session (from the history database), and every later rep with
the baseline: a rep clearly shallower or faster than the person's own norm
gets a cue, even when it passes the exercise's fixed thresholds. The
calibrated `depth` (how far the turn lies past the rest boundary) is what the
rep counter holds later reps against: one clearly short of it is a partial
rep (see `reps.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from repcoach.common.history import Baseline
from repcoach.common.messages import Severity

CALIBRATION_REPS = 3
DEGREE_MARGIN = 8.0  # a range this much (or ROM_SHARE) past the norm is worth a word
ROM_SHARE = 0.12
RUSHED_SHARE = 0.6  # a rep this much quicker than the norm is rushed


@dataclass(frozen=True)
class Comparison:
    text: str
    severity: Severity  # info (praise) or warn
    data: dict


class PersonalBaseline:
    """Feed each full rep's range, duration and depth; `add` says what stands out."""

    def __init__(self, unit: str, prior: Baseline | None = None):
        self.unit = unit
        self.prior = prior if prior is not None and prior.rom_unit == unit else None
        self._roms: list[float] = []
        self._tempos: list[float] = []
        self._depths: list[float] = []
        self.rom: float | None = None
        self.tempo_s: float | None = None
        self.depth: float | None = None

    @property
    def calibrating(self) -> bool:
        return self.rom is None

    def _margin(self, rom: float) -> float:
        share = ROM_SHARE * abs(rom)
        return max(DEGREE_MARGIN, share) if self.unit == "deg" else share

    def add(
        self, rom: float, tempo_s: float, depth: float | None = None, clean: bool = True
    ) -> tuple[dict, Comparison | None]:
        """The rep's comparison data (for its detail) and a cue, if any.
        `clean`: no form fault was flagged on it. Only clean reps calibrate:
        a faulty one is not the person's own range (a knee past the toes
        deepens a lunge, a swung curl travels further)."""
        if self.calibrating:
            if not clean:
                return {"calibration": False}, None
            self._roms.append(rom)
            self._tempos.append(tempo_s)
            if depth is not None:
                self._depths.append(depth)
            data = {"calibration": True}
            if len(self._roms) < CALIBRATION_REPS:
                return data, None
            self.rom, self.tempo_s = median(self._roms), median(self._tempos)
            self.depth = median(self._depths) if self._depths else None
            data.update(baseline_rom=round(self.rom, 3), baseline_tempo_s=round(self.tempo_s, 2))
            return data, self._against_prior()
        assert self.rom is not None and self.tempo_s is not None
        data = {
            "calibration": False,
            "baseline_rom": round(self.rom, 3),
            "baseline_tempo_s": round(self.tempo_s, 2),
            "rom_vs_baseline": round(rom - self.rom, 3),
        }
        if rom < self.rom - self._margin(self.rom):
            cue = "Shallower than your first reps: keep the full range"
            return data, Comparison(cue, Severity.WARN, {"baseline": "rom"})
        if tempo_s < RUSHED_SHARE * self.tempo_s:
            cue = "Slow down: control every rep like your first ones"
            return data, Comparison(cue, Severity.WARN, {"baseline": "tempo"})
        return data, None

    def _against_prior(self) -> Comparison | None:
        prior, rom = self.prior, self.rom
        if prior is None or rom is None:
            return None
        data = {
            "baseline": "last_session",
            "last_rom": round(prior.rom, 3),
            "session": prior.session,
        }
        if rom > prior.rom + self._margin(prior.rom):
            return Comparison(
                "Fuller range than your last session. Great work!", Severity.INFO, data
            )
        if rom < prior.rom - self._margin(prior.rom):
            return Comparison(
                "Less range than last session: aim for your usual depth", Severity.WARN, data
            )
        return None
