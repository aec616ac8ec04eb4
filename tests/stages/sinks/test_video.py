"""Annotated video: the overlay and face blurring on rendered athletes, the
MP4 recording's timing and atomic rename, the sink's bounded queue, and the
`video` sink end to end through a real pipeline."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from repcoach.common.landmarks import SKELETON_EDGES
from repcoach.common.messages import (
    FeedbackEvent,
    FrameMeta,
    FramePacket,
    PersonInstance,
    PersonJoints,
    PersonScore,
)
from repcoach.stages.sinks.overlay import CUE_SECONDS, Overlay, track_colour
from repcoach.stages.sinks.privacy import blur_faces, face_regions
from repcoach.stages.sinks.recording import Recording
from repcoach.stages.sinks.video import VideoSink
from repcoach.stages.synthetic import SyntheticSource
from repcoach.stages.synthetic.truth import FrameTruth, PersonTruth

TRACK = 4
FACE = list(range(11))
BODY_JOINTS = sorted({m for edge in SKELETON_EDGES for m in edge})


def render(spec: str, frame: int = 10) -> tuple[np.ndarray, FrameTruth]:
    for index, (image, truth) in enumerate(SyntheticSource.from_spec(spec).frames()):
        if index == frame:
            return image, truth
    raise AssertionError(f"{spec} has fewer than {frame + 1} frames")


def joints_of(person: PersonTruth, track: int = TRACK, hide=()) -> PersonJoints:
    visibility = person.visible.astype(np.float32)
    visibility[list(hide)] = 0.0
    return PersonJoints(
        track, person.joints_xy.astype(np.float32), visibility, np.zeros((33, 3), np.float32)
    )


def box_of(person: PersonTruth, track: int = TRACK, with_mask: bool = False) -> PersonInstance:
    (x0, y0), (x1, y1) = person.joints_xy.min(axis=0) - 12, person.joints_xy.max(axis=0) + 12
    box = (float(x0), float(y0) - 25, float(x1), float(y1))
    instance = PersonInstance(box, 0.9, None, track)
    if with_mask:
        mx0, my0, mx1, my1 = instance.mask_box()
        instance = PersonInstance(box, 0.9, np.ones((my1 - my0, mx1 - mx0), bool), track)
    return instance


def packet(image, truth, pts=1.0, events=(), with_mask=False) -> FramePacket:
    person = truth.people[0]
    height, width = image.shape[:2]
    seq = round(pts * 30)
    meta = FrameMeta("synthetic", seq, seq - 1, 0, 0.0, pts, width, height)
    score = PersonScore(TRACK, {"knee": 150.0, "hip": 140.0}, "squat", 2, 1, "down", 80.0, None)
    return FramePacket(
        meta,
        image,
        persons=(box_of(person, with_mask=with_mask),),
        joints=(joints_of(person),),
        scores=(score,),
        events=events,
    )


def cue(pts: float, text: str = "Keep your chest up") -> FeedbackEvent:
    return FeedbackEvent(f"s:{pts}", "cue", TRACK, round(pts * 30), pts, text, "warn")


def laplacian_variance(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


# --- overlay


def test_overlay_draws_skeleton_label_and_angles_without_touching_the_input():
    image, truth = render("squat,reps=1")
    before = image.copy()
    out = Overlay().draw(packet(image, truth))
    assert np.array_equal(image, before), "the packet's pixels were modified"
    assert out.shape == image.shape and out is not image
    person = truth.people[0]
    for m in BODY_JOINTS:
        if person.visible[m]:
            x, y = np.round(person.joints_xy[m]).astype(int)
            near = np.abs(
                out[y - 2 : y + 3, x - 2 : x + 3].astype(int) - before[y - 2 : y + 3, x - 2 : x + 3]
            )
            assert near.max() > 60, f"nothing drawn at visible joint {m}"
    # The label: a filled box in the track's colour.
    colour = np.array(track_colour(TRACK), np.uint8)
    painted = int(np.all(out == colour, axis=2).sum())
    assert painted > int(np.all(before == colour, axis=2).sum()) + 1000
    # The knee angle's text sits up and right of the knee.
    x, y = np.round(person.joints_xy[26]).astype(int)  # right knee: the side the camera sees
    text_area = np.abs(
        out[y - 25 : y - 5, x + 8 : x + 70].astype(int) - before[y - 25 : y - 5, x + 8 : x + 70]
    )
    assert (text_area.max(axis=2) > 100).sum() > 40


def test_overlay_tints_the_mask_in_the_track_colour():
    image, truth = render("squat,reps=1")
    out = Overlay().draw(packet(image, truth, with_mask=True))
    person = box_of(truth.people[0])
    # A pixel inside the mask, away from joints, the label and the banner.
    x, y = int(person.box[0]) + 3, int(person.box[3]) - 3
    expected = 0.7 * image[y, x].astype(float) + 0.3 * np.array(track_colour(TRACK))
    assert np.abs(out[y, x] - expected).max() <= 2
    outside = (int(person.box[0]) - 5, y)
    assert np.array_equal(out[outside[1], outside[0]], image[outside[1], outside[0]])


def test_cue_banner_stays_about_three_seconds():
    image, truth = render("squat,reps=1")
    height = image.shape[0]
    strip = (slice(height - 20, height - 8), slice(0, 10))  # the banner's colour strip

    def banner_shown(out: np.ndarray) -> bool:
        return bool(np.all(out[strip] == track_colour(TRACK)))

    overlay = Overlay()
    assert banner_shown(overlay.draw(packet(image, truth, pts=1.0, events=(cue(1.0),))))
    assert banner_shown(overlay.draw(packet(image, truth, pts=1.0 + CUE_SECONDS - 0.5)))
    assert not banner_shown(overlay.draw(packet(image, truth, pts=1.0 + CUE_SECONDS + 0.5)))
    # A cue the viewer only knows from the score (its event was missed) shows too.
    score = PersonScore(TRACK, {}, "squat", 2, 0, "up", 80.0, "Sit deeper")
    late = packet(image, truth, pts=9.0).replace(scores=(score,))
    assert banner_shown(overlay.draw(late))


# --- face blurring


@pytest.mark.parametrize("view", ["front", "side"])
def test_blur_faces_flattens_the_face_and_nothing_else(view):
    image, truth = render(f"squat,reps=1,view={view}")
    person = truth.people[0]
    assert person.visible[FACE].any()
    joints = (joints_of(person),)
    out = blur_faces(image.copy(), joints, ())
    ((x0, y0, x1, y1),) = face_regions(joints, (), image.shape[1], image.shape[0])
    # Every visible face landmark lies well inside the blurred square.
    for m in FACE:
        if person.visible[m]:
            x, y = person.joints_xy[m]
            assert x0 + 3 <= x < x1 - 3 and y0 + 3 <= y < y1 - 3
    before = laplacian_variance(image[y0:y1, x0:x1])
    after = laplacian_variance(out[y0:y1, x0:x1])
    assert before > 200 and after < 0.05 * before
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], image[outside])


def test_blur_without_a_visible_face_takes_the_top_of_the_box():
    image, truth = render("squat,reps=1")
    person = truth.people[0]
    hidden = FACE + [11, 12, 23, 24]  # no face, no torso: only the box is left
    joints = (joints_of(person, hide=hidden),)
    box = box_of(person)
    ((x0, y0, x1, y1),) = face_regions(joints, (box,), image.shape[1], image.shape[0])
    bx0, by0, bx1, by1 = box.box
    assert (x0, y0, x1) == (int(bx0), int(by0), int(np.ceil(bx1)))
    assert y1 == pytest.approx(by0 + 0.3 * (by1 - by0), abs=1)
    out = blur_faces(image.copy(), joints, (box,))
    assert laplacian_variance(out[y0:y1, x0:x1]) < 0.05 * laplacian_variance(image[y0:y1, x0:x1])


def test_overlay_blurs_before_drawing():
    image, truth = render("squat,reps=1,view=front")
    pk = packet(image, truth)
    ((x0, y0, x1, y1),) = face_regions(pk.joints, pk.persons, image.shape[1], image.shape[0])
    plain = Overlay().draw(pk)
    blurred = Overlay(blur_faces=True).draw(pk)
    assert laplacian_variance(blurred[y0:y1, x0:x1]) < 0.5 * laplacian_variance(plain[y0:y1, x0:x1])
    # Away from the face both are the same drawing.
    assert np.array_equal(blurred[y1 + 5 :], plain[y1 + 5 :])


# --- recording


def numbered(i: int, size=(160, 120)) -> np.ndarray:
    image = np.full((size[1], size[0], 3), (i * 9) % 256, np.uint8)
    cv2.putText(image, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 255), 2)
    return image


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"cannot open {path}"
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def test_recording_learns_the_rate_fills_gaps_and_appears_only_when_complete(tmp_path):
    path = tmp_path / "clip.mp4"
    recording = Recording(path)
    seqs = [*range(10), *range(15, 20)]  # frames 10-14 never arrive
    for seq in seqs:
        recording.add(numbered(seq), seq, seq / 25.0)
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [f".clip.{os.getpid()}.partial.mp4"]
    assert recording.finish()
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    assert recording.fps == pytest.approx(25.0)
    assert (recording.written, recording.repeated, recording.skipped) == (20, 5, 0)
    frames, fps = read_video(path)
    assert len(frames) == 20 and fps == pytest.approx(25.0)
    # The gap holds the last frame before it: frame 9's grey level.
    for i in range(10, 15):
        assert abs(int(np.median(frames[i])) - 9 * 9) <= 3


def test_recording_at_a_lower_rate_skips_frames(tmp_path):
    recording = Recording(tmp_path / "slow.mp4", fps=10.0)
    for seq in range(30):
        recording.add(numbered(seq), seq, seq / 30.0)
    assert recording.finish()
    assert recording.written + recording.skipped == 30
    assert recording.written == pytest.approx(10, abs=1)
    assert len(read_video(tmp_path / "slow.mp4")[0]) == recording.written


def test_recording_without_frames_writes_nothing(tmp_path):
    assert not Recording(tmp_path / "none.mp4").finish()
    assert list(tmp_path.iterdir()) == []


# --- the sink's queue


def test_slow_encoding_drops_on_the_sink_side_and_the_file_keeps_its_pace(tmp_path):
    path = tmp_path / "big.mp4"
    # 100 fps media time: the whole stream is shorter than the longest gap filled.
    sink = VideoSink(path, fps=100.0, queue_frames=2)
    image = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)

    def send(seq: int) -> None:
        meta = FrameMeta("s", seq, seq - 1, 0, 0.0, seq / 100.0, 1920, 1080)
        sink.on_result(FramePacket(meta, image))

    frames = 120
    waited = 0.0
    for seq in range(frames):  # 200 frames a second: faster than 1080p encodes
        started = time.perf_counter()
        send(seq)
        waited = max(waited, time.perf_counter() - started)
        time.sleep(0.005)
    time.sleep(2.0)  # the worker catches up, so the last frame is kept
    send(frames)
    sink.close(0)
    assert waited < 0.1, f"on_result waited {waited * 1000:.0f} ms"
    assert sink.received == frames + 1 and sink.dropped > 0
    rec = sink.recording
    assert rec.written - rec.repeated == sink.received - sink.dropped
    assert rec.written == frames + 1  # every gap filled: the video lasts as long as the stream
    assert len(read_video(path)[0]) == rec.written


@pytest.mark.parametrize("blur", [False, True])
def test_raw_writes_the_plain_frames_blurred_when_asked(tmp_path, blur):
    image, truth = render("squat,reps=1,view=front")
    path = tmp_path / "raw.mp4"
    sink = VideoSink(path, blur=blur, raw=True, fps=30.0)
    frames = [packet(image, truth, pts=i / 30.0, events=(cue(0.0),)) for i in range(10)]
    for pk in frames:
        sink.on_result(pk)
    sink.close(0)
    video, _ = read_video(path)
    assert len(video) == 10
    ((x0, y0, x1, y1),) = face_regions(frames[0].joints, frames[0].persons, 640, 480)
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    # No overlay: away from the face the video is the source, up to the codec.
    # (The annotated video differs by over 60 levels on more than 0.5% of it.)
    error = np.abs(video[5].astype(int) - image).max(axis=2)
    assert error[outside].mean() < 8 and (error[outside] > 60).mean() < 0.0005
    face = laplacian_variance(video[5][y0:y1, x0:x1])
    if blur:
        assert face < 0.05 * laplacian_variance(image[y0:y1, x0:x1])
    else:
        assert face > 0.3 * laplacian_variance(image[y0:y1, x0:x1])


# --- end to end


def sink_log(run_root: Path) -> str:
    logs = list(run_root.rglob("sink-video.log"))
    assert logs, f"no sink-video.log under {run_root}"
    return logs[0].read_text()


def test_pipeline_writes_an_annotated_face_blurred_video(pipeline, run_root, tmp_path):
    pipeline.env["REPCOACH_DATA_DIR"] = str(run_root / "data")
    spec = "squat,reps=2"
    out, summary = tmp_path / "session.mp4", tmp_path / "summary.json"
    result = pipeline.run(
        "up",
        "--source",
        f"synthetic:{spec}",
        "--no-console",
        "--name",
        "video-e2e",
        "--sink",
        f"video:path={out},blur_faces=1",
        "--summary",
        str(summary),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.mp4", "summary.json"]
    frames_published = json.loads(summary.read_text())["frames"]
    match = re.search(
        r"wrote (\d+) frames to .*session\.mp4, dropped (\d+) \((\d+) repeated .*?, (\d+) skipped",
        sink_log(run_root),
    )
    assert match, sink_log(run_root)
    written, dropped, repeated, skipped = map(int, match.groups())
    assert written - repeated + skipped + dropped == frames_published
    video, fps = read_video(out)
    assert len(video) == written and fps == pytest.approx(30.0)

    raw = [(image, truth) for image, truth in SyntheticSource.from_spec(spec).frames()]
    assert frames_published == len(raw)
    if dropped or repeated or skipped:
        pytest.skip("frames were dropped on this busy machine: no frame-by-frame comparison")
    # From frame 3: the tracker confirms a newcomer after 3 frames in a row.
    for index in range(3, len(video), 15):
        image, truth = raw[index]
        changed = np.abs(video[index].astype(int) - image).max(axis=2) > 60
        assert changed.mean() > 0.005, f"frame {index} looks unannotated"
        person = truth.people[0]
        seen = person.joints_xy[FACE][person.visible[FACE]]
        if len(seen):
            (x0, y0), (x1, y1) = (
                np.floor(seen.min(axis=0)).astype(int),
                np.ceil(seen.max(axis=0)).astype(int),
            )
            face_raw = laplacian_variance(image[y0 - 2 : y1 + 3, x0 - 2 : x1 + 3])
            face_video = laplacian_variance(video[index][y0 - 2 : y1 + 3, x0 - 2 : x1 + 3])
            assert face_video < 0.2 * face_raw, f"face not blurred in frame {index}"


def can_write(folder: Path) -> bool:
    probe = folder / ".write-probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


def unwritable_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if can_write(folder):  # root writes anywhere, but /sys refuses even root
        folder = Path("/sys")
        if can_write(folder):
            pytest.skip("no unwritable folder on this machine")
    return folder


@pytest.mark.parametrize(
    ("sink", "env", "expected"),
    [
        ("video:path={locked}/v.mp4", {}, "is not writable"),
        ("video:path={tmp}/missing/v.mp4", {}, "folder {tmp}/missing does not exist"),
        ("video:path={tmp}", {}, "must end in .mp4"),
        ("video:path={tmp}/v.avi", {}, "must end in .mp4"),
        ("video", {}, "video sink needs somewhere to go"),
        ("video:window=1", {"DISPLAY": "", "WAYLAND_DISPLAY": ""}, "needs a display"),
        ("video:window=1", {"DISPLAY": ":97", "WAYLAND_DISPLAY": ""}, "cannot open a window"),
        ("video:path={tmp}/v.mp4,raw=yes", {}, "raw='yes' is not one of"),
        ("video:path={tmp}/v.mp4,fps=0", {}, "fps=0 is outside"),
        ("video:path={tmp}/v.mp4,colour=1", {}, "unknown option(s) ['colour']"),
    ],
)
def test_bad_video_sink_options_get_one_line(pipeline, tmp_path, sink, env, expected):
    values = {"tmp": tmp_path, "locked": unwritable_folder(tmp_path) if "locked" in sink else ""}
    pipeline.env.update(env, REPCOACH_DATA_DIR=str(tmp_path / "data"))
    result = pipeline.run(
        "up", "--source", "synthetic:squat", "--no-console", "--name", "video-bad",
        "--sink", sink.format(**values), timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected.format(**values) in lines[0]
    assert not list(tmp_path.glob("*.mp4"))
