"""A run without a video sink passes no pixels past the segment workers;
a video sink attached later gets frames all the same (the score stage tells
the workers and the joints stage that someone now takes video)."""

from __future__ import annotations

import signal

import cv2

from tests.conftest import stage_report


def _published(status: dict) -> int:
    return (stage_report(status, "score")["report"] or {}).get("frames_out", 0)


def test_a_video_sink_attached_to_a_run_without_one_gets_frames(pipeline, tmp_path):
    up = pipeline.start(
        "up", "--source", "synthetic:squat,reps=4", "--realtime", "--loop",
        "--no-console", "--workers", "1", "--no-history",
    )  # fmt: skip
    before = _published(pipeline.wait_for(lambda s: _published(s) > 30, 180, what="30 frames"))
    target = tmp_path / "late.mp4"
    sink = pipeline.start("sink", "attach", "video", "--path", str(target))
    pipeline.wait_for(lambda s: _published(s) > before + 120, 120, what="120 more frames")
    sink.send_signal(signal.SIGINT)
    _, stderr = sink.communicate(timeout=60)
    assert sink.returncode == 0, stderr
    written = int(cv2.VideoCapture(str(target)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert written >= 30, stderr
    assert up.poll() is None  # the run goes on
