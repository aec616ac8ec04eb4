"""Colours of one athlete: skin, hair, clothes and shoes, sampled per seed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

Colour = tuple[int, int, int]  # BGR


def _bgr(rgb: Colour) -> Colour:
    return (rgb[2], rgb[1], rgb[0])


# RGB swatches; shirts are saturated so they stand out from the pale walls.
_SKINS = [(255, 220, 185), (241, 194, 150), (224, 172, 125), (198, 140, 95), (160, 105, 70)]
_HAIRS = [(35, 28, 24), (70, 45, 30), (120, 80, 45), (200, 160, 90), (150, 60, 30)]
_SHIRTS = [
    (200, 40, 40),
    (40, 90, 200),
    (30, 150, 80),
    (230, 120, 30),
    (120, 60, 170),
    (20, 130, 150),
]
_SHORTS = [(30, 30, 40), (25, 35, 80), (70, 70, 75), (20, 60, 40)]
_SHOES = [(245, 245, 245), (30, 30, 30), (200, 50, 50), (60, 110, 220)]

EYE_WHITE: Colour = (245, 245, 245)
PUPIL: Colour = (40, 30, 25)
LIPS: Colour = (60, 50, 150)


@dataclass(frozen=True)
class Palette:
    """One athlete's colours (BGR)."""

    skin: Colour
    hair: Colour
    shirt: Colour
    shorts: Colour
    shoes: Colour

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Palette:
        def pick(options: list[Colour]) -> Colour:
            return _bgr(options[int(rng.integers(len(options)))])

        return cls(pick(_SKINS), pick(_HAIRS), pick(_SHIRTS), pick(_SHORTS), pick(_SHOES))

    def dimmed(self, factor: float) -> Palette:
        """Every colour darkened (a reflection in a mirror)."""
        return Palette(
            *(shade(c, factor) for c in (self.skin, self.hair, self.shirt, self.shorts, self.shoes))
        )


@lru_cache(maxsize=512)
def shade(colour: Colour, factor: float) -> Colour:
    """The colour darkened (factor < 1) or lightened, clipped to 255."""
    return tuple(min(255, int(c * factor)) for c in colour)  # type: ignore[return-value]
