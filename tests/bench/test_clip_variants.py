"""The variants `bench/clip_variants.py` films the labelled clips in: each
alters the frames (and the frame rate) the way its name says."""

from __future__ import annotations

import numpy as np
import pytest

from bench.clip_variants import VARIANTS, parse_args


def frames(n: int = 6, h: int = 40, w: int = 60) -> list[np.ndarray]:
    """Frame i is grey level 10 * i, with a white square at its top left."""
    out = []
    for i in range(n):
        frame = np.full((h, w, 3), 10 * i, np.uint8)
        frame[:10, :10] = 255
        out.append(frame)
    return out


def altered(name: str) -> tuple[float, list[np.ndarray]]:
    fps, out = VARIANTS[name](30.0, iter(frames()))
    return fps, list(out)


def test_mirrored_moves_the_square_to_the_right():
    fps, out = altered("mirrored")
    assert fps == 30.0 and len(out) == 6
    assert (out[0][:10, -10:] == 255).all() and (out[0][:10, :10] == 0).all()


def test_half_fps_keeps_every_other_frame_at_half_the_rate():
    fps, out = altered("half_fps")
    assert fps == 15.0
    assert [int(f[-1, -1, 0]) for f in out] == [0, 20, 40]


def test_faster_drops_every_third_frame_at_the_same_rate():
    fps, out = altered("faster")
    assert fps == 30.0
    assert [int(f[-1, -1, 0]) for f in out] == [0, 10, 30, 40]


@pytest.mark.parametrize(("name", "shape"), [("half_size", (20, 30, 3)), ("further", (40, 60, 3))])
def test_sizes(name, shape):
    _, out = altered(name)
    assert out[0].shape == shape


def test_further_shrinks_the_picture_into_a_grey_frame():
    _, out = altered("further")
    assert (out[0][:5, :, :] == 114).all()  # the border
    assert (out[0][10:15, 15:20] == 255).all()  # the square, half size, offset by a quarter


def test_darker_and_rolled_keep_the_size():
    for name in ("darker", "rolled"):
        fps, out = altered(name)
        assert fps == 30.0 and out[1].shape == (40, 60, 3)
    assert altered("darker")[1][3][-1, -1, 0] < 30  # grey 30 darkened


def test_an_unknown_variant_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--variants", "mirrored,sepia"])
    assert "sepia" in capsys.readouterr().err
