"""Bad input gets one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["up", "--source", "/no/such/clip.mp4"], "video file /no/such/clip.mp4 does not exist"),
        (["up", "--source", "foo:bar"], "unknown source kind 'foo'"),
        (["up", "--source", "camera7"], "camera7 does not exist"),
        (["up", "--source", "{video}", "--source", "b.mp4"], "video file b.mp4 does not exist"),
        (["up", "--source", "{video}", "--workers", "0"], "--workers"),
        (["up", "--source", "{video}", "--name", ".."], "pipeline name '..': use letters"),
        (["up", "--source", "{video}", "--bogus"], "No such option: --bogus"),
        (["up", "--source", "{video}", "--exercise", "yoga"], "--exercise 'yoga' is not known"),
        (["up", "--source", "{video}", "--segmenter", "magic"], "unknown segmenter 'magic'"),
        (["up", "--source", "{video}", "--segmenter", "passthrough:jitter_ms=x"], "jitter_ms"),
        (["up", "--source", "{video}", "--gpus", "zero"], "--gpus 'zero'"),
        (["up", "--source", "{video}", "--summary", "/no/folder/s.json"], "does not exist"),
        (
            ["up", "--source", "{video}", "--sink", "carrier-pigeon"],
            "unknown sink 'carrier-pigeon'",
        ),
        (["up", "--source", "{video}", "--bind", "udp://x"], "is not an endpoint like tcp://"),
        (["up", "--source", "{notvideo}"], "is not a readable video"),
        (
            ["up", "--source", "{video}", "--segmenter", "maskrcnn", "--weights-dir", "{empty}"],
            "pipeline weights download maskrcnn",
        ),
        (["status"], "no pipeline named 'default' is running"),
        (["sink", "attach", "jsonl", "--path", "/tmp/x.jsonl"], "no pipeline named 'default'"),
    ],
)
def test_bad_input_gets_one_clear_line(pipeline, video, tmp_path, args, expected):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video")
    empty = tmp_path / "no_weights"
    empty.mkdir()
    args = [a.format(video=video(5), notvideo=not_video, empty=empty) for a in args]
    result = pipeline.run(*args, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
