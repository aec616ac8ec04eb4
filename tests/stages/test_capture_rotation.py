"""Phone clips stored sideways (a display rotation in the MP4 track header)
come out of the file source upright, as players show them."""

from __future__ import annotations

import logging
import struct
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from repcoach.common.landmarks import Landmark
from repcoach.stages.capture import VideoFileSource

REPO = Path(__file__).resolve().parents[2]
STORED_W, STORED_H = 96, 64  # as encoded: landscape
MARK = 24  # a white square in the stored frame's top-left corner

# tkhd display matrices (a, b, u, c, d, v, x, y, w; 16.16 fixed point, w 2.30) as
# cameras write them, by the clockwise turn a player applies to show the frame.
ONE, W_ONE = 0x10000, 0x40000000
DISPLAY_MATRIX = {
    90: (0, ONE, 0, -ONE, 0, 0, STORED_H * ONE, 0, W_ONE),
    180: (-ONE, 0, 0, 0, -ONE, 0, STORED_W * ONE, STORED_H * ONE, W_ONE),
    270: (0, -ONE, 0, ONE, 0, 0, 0, STORED_W * ONE, W_ONE),
}


def _boxes(data: bytes, start: int, end: int):
    """(type, body start, end) of each ISO-BMFF box in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise ValueError(f"bad box size {size} at {pos}")
        yield kind, pos + header, pos + size
        pos += size


def _set_display_matrix(path: Path, matrix: tuple[int, ...]) -> None:
    """Writes `matrix` into the video track's tkhd box, as a phone does."""
    data = bytearray(path.read_bytes())
    written = 0
    for kind, body, end in _boxes(data, 0, len(data)):
        for trak, trak_body, trak_end in _boxes(data, body, end) if kind == b"moov" else ():
            for tkhd, at, _ in _boxes(data, trak_body, trak_end) if trak == b"trak" else ():
                if tkhd == b"tkhd":
                    # version+flags, times/ids (20 or 32 bytes), reserved, layer, group, volume
                    offset = at + 4 + (32 if data[at] == 1 else 20) + 16
                    data[offset : offset + 36] = struct.pack(">9i", *matrix)
                    written += 1
    assert written == 1, f"expected one track header in {path}, found {written}"
    path.write_bytes(bytes(data))


def _stored_frame() -> np.ndarray:
    frame = np.full((STORED_H, STORED_W, 3), 40, np.uint8)
    frame[:MARK, :MARK] = 255
    return frame


def _write_clip(path: Path, turn: int | None, frames: int = 5) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (STORED_W, STORED_H))
    assert writer.isOpened(), "OpenCV could not write an mp4 here"
    for _ in range(frames):
        writer.write(_stored_frame())
    writer.release()
    if turn is not None:
        _set_display_matrix(path, DISPLAY_MATRIX[turn])
    return path


def _read_all(path: Path) -> list[np.ndarray]:
    source = VideoFileSource(path)
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    return frames


def _marked_corner(frame: np.ndarray) -> str:
    """Which corner holds the white square."""
    h, w = frame.shape[:2]
    corners = {
        "top-left": frame[: h // 4, : w // 4],
        "top-right": frame[: h // 4, -w // 4 :],
        "bottom-left": frame[-h // 4 :, : w // 4],
        "bottom-right": frame[-h // 4 :, -w // 4 :],
    }
    return max(corners, key=lambda name: float(corners[name].mean()))


@pytest.mark.parametrize(
    ("turn", "shape", "corner"),
    [
        (None, (STORED_H, STORED_W, 3), "top-left"),
        (90, (STORED_W, STORED_H, 3), "top-right"),
        (180, (STORED_H, STORED_W, 3), "bottom-right"),
        (270, (STORED_W, STORED_H, 3), "bottom-left"),
    ],
)
def test_frames_come_out_turned_as_players_show_them(tmp_path, turn, shape, corner):
    frames = _read_all(_write_clip(tmp_path / f"turn{turn}.mp4", turn))
    assert len(frames) == 5
    for frame in frames:
        assert frame.shape == shape
        assert frame.flags["C_CONTIGUOUS"]
        assert _marked_corner(frame) == corner


def test_a_turn_is_logged_once(tmp_path, caplog):
    path = _write_clip(tmp_path / "turned.mp4", 90)
    with caplog.at_level(logging.INFO, logger="repcoach.stages.capture"):
        _read_all(path)
    turned = [r for r in caplog.records if "display rotation" in r.getMessage()]
    assert len(turned) == 1
    assert "90 degree" in turned[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="repcoach.stages.capture"):
        _read_all(_write_clip(tmp_path / "plain.mp4", None))
    assert not caplog.records


def test_bench_reads_frames_upright_too(tmp_path):
    sys.path.insert(0, str(REPO))
    from bench.clip_joints import _video_frames

    fps, frames = _video_frames(_write_clip(tmp_path / "turned.mp4", 270))
    frames = list(frames)
    assert fps == pytest.approx(10.0)
    assert len(frames) == 5
    assert all(f.shape == (STORED_W, STORED_H, 3) for f in frames)
    assert _marked_corner(frames[0]) == "bottom-left"


@pytest.mark.clips
def test_shared_portrait_phone_clip_is_upright(clips):
    """Stored 1280x720 with a 90 degree display rotation; players show it
    720 wide, 1280 tall, the athlete standing."""
    from repcoach.stages.blazepose import BlazePoseSegmenter

    source = VideoFileSource(clips / "curl_dumbbell_front_gym_3reps_rotated90_metadata.mp4")
    try:
        frames = [source.read() for _ in range(31)]
    finally:
        source.close()
    assert all(f.shape == (1280, 720, 3) for f in frames)
    people = BlazePoseSegmenter(landmarks=True).segment(frames[30], 1.0)
    found = [p.landmarks for p in people if p.landmarks is not None]
    assert found, "BlazePose found nobody in the upright frame"
    xy = found[0].image_xy
    nose_y = xy[Landmark.NOSE, 1]
    hips_y = xy[[Landmark.LEFT_HIP, Landmark.RIGHT_HIP], 1].mean()
    ankles_y = xy[[Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE], 1].mean()
    assert nose_y < hips_y < ankles_y  # image y grows downwards: head on top
    assert ankles_y - nose_y > 0.4 * 1280  # standing along the frame's long side
