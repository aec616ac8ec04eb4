"""A file that ends before its declared frame count (a cut download, a copy
that ran out of space) is analysed up to where it ends, with a warning in the
capture log, on the command line and in the summary."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2

from repcoach.stages.capture import VideoFileSource, truncation_warning
from tests.conftest import write_video

FAST = ["--segmenter", "passthrough", "--joints", "none", "--no-console"]
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[start + 8 : start + 16])[0], 16
        elif size == 0:
            size = end - start
        yield kind, start, size, header
        start += size


def _shift_chunk_offsets(moov: bytearray, by: int, start: int = 0, end: int | None = None):
    for kind, at, size, header in list(_boxes(bytes(moov), start, end)):
        if kind in CONTAINERS:
            _shift_chunk_offsets(moov, by, at + header, at + size)
        elif kind in (b"stco", b"co64"):
            width, fmt = (4, ">I") if kind == b"stco" else (8, ">Q")
            count = struct.unpack(">I", moov[at + header + 4 : at + header + 8])[0]
            for i in range(count):
                pos = at + header + 8 + i * width
                (offset,) = struct.unpack(fmt, moov[pos : pos + width])
                moov[pos : pos + width] = struct.pack(fmt, offset + by)


def faststart(path: Path) -> int:
    """Move the index (moov) in front of the frames, as streaming MP4s have it,
    so a truncated copy still opens; returns where the frame data begins."""
    data = path.read_bytes()
    boxes = list(_boxes(data))
    moov_at, moov_size = next((at, size) for kind, at, size, _ in boxes if kind == b"moov")
    moov = bytearray(data[moov_at : moov_at + moov_size])
    _shift_chunk_offsets(moov, moov_size)
    out = bytearray()
    for kind, at, size, _ in boxes:
        if kind == b"ftyp":
            out += data[at : at + size] + moov
        elif kind != b"moov":
            out += data[at : at + size]
    path.write_bytes(bytes(out))
    return next(at for kind, at, _, _ in _boxes(bytes(out)) if kind == b"mdat")


def truncated_clip(folder: Path, frames: int = 90, keep: float = 0.5) -> Path:
    clip = write_video(folder / "clip.mp4", frames)
    mdat = faststart(clip)
    whole = clip.stat().st_size
    with open(clip, "r+b") as handle:
        handle.truncate(mdat + int((whole - mdat) * keep))
    return clip


def test_the_tolerance_allows_estimated_counts():
    assert truncation_warning("a.mp4", 90, 90) is None
    assert truncation_warning("a.mp4", 88, 90) is None  # within 3 frames
    assert truncation_warning("a.webm", 990, 1000) is None  # within 2 %
    assert truncation_warning("a.mp4", 0, 0) is None  # count unknown
    assert "45 of its 90 declared frames" in truncation_warning("a.mp4", 45, 90)


def test_a_truncated_file_gives_its_frames_and_a_warning(tmp_path, caplog):
    clip = truncated_clip(tmp_path)
    assert int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT)) == 90
    source = VideoFileSource(clip)
    frames = 0
    while source.read() is not None:
        frames += 1
    source.close()
    assert 20 < frames < 80
    assert source.warning is not None and f"after {frames} of its 90" in source.warning
    assert any("looks truncated" in r.getMessage() for r in caplog.records)


def test_an_intact_file_gives_no_warning(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 40)
    faststart(clip)
    source = VideoFileSource(clip)
    while source.read() is not None:
        pass
    assert source.warning is None


def test_pipeline_up_on_a_truncated_file_warns_and_says_so_in_the_summary(pipeline, tmp_path):
    clip = truncated_clip(tmp_path)
    summary = tmp_path / "s.json"
    result = pipeline.run("up", "--source", str(clip), *FAST, "--summary", str(summary))
    assert result.returncode == 0, result.stderr
    document = json.loads(summary.read_text())
    read = document["frames"] + document["dropped"]
    assert 20 < read < 80
    assert document["warning"] and f"after {read} of its 90 declared frames" in document["warning"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "looks truncated" in warnings[0], result.stderr
    assert "Traceback" not in result.stderr
