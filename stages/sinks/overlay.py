"""Drawing a frame's results onto its pixels, for the video sink and the
dashboard: per person a tinted mask, the skeleton, the joint angles at their
joints, a label (id, exercise, reps, form) in the person's colour, and the
latest cue in a banner for a few seconds.

    overlay = Overlay(blur_faces=True)   # one per stream: it remembers cues
    annotated = overlay.draw(packet)     # a new BGR image; packet untouched

Faces are blurred first, so nothing drawn afterwards is blurred and nothing
of a face survives under the drawing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from repcoach.common.errors import UserError
from repcoach.common.landmarks import SKELETON_EDGES
from repcoach.common.messages import (
    EventKind,
    FramePacket,
    PersonInstance,
    PersonJoints,
    PersonScore,
    Severity,
)
from repcoach.stages.coaching.registry import get_exercise
from repcoach.stages.coaching.spec import Measure
from repcoach.stages.sinks.privacy import blur_faces

__all__ = ["Overlay", "blur_faces", "track_colour"]

CUE_SECONDS = 3.0  # how long a cue stays on screen (media time)
FORGET_SECONDS = 10.0  # drop the state of a track unseen this long
MIN_VISIBILITY = 0.5
MASK_ALPHA = 0.3
# Events whose text is worth a banner; reps show in the label instead.
BANNER_KINDS = {
    EventKind.CUE,
    EventKind.VISIBILITY,
    EventKind.HOLD,
    EventKind.EXERCISE,
    EventKind.PERSON_ENTER,
    EventKind.PARTIAL_REP,
}
SEVERITY_BGR = {
    Severity.INFO: (255, 255, 255),
    Severity.WARN: (0, 200, 255),
    Severity.FAULT: (60, 60, 255),
}
# Distinct, bright on dark and dark on bright (BGR); track id picks one.
PALETTE = (
    (255, 170, 0),
    (0, 200, 255),
    (120, 220, 60),
    (255, 80, 200),
    (60, 120, 255),
    (200, 200, 0),
    (180, 110, 255),
    (0, 255, 170),
    (80, 160, 255),
    (255, 255, 90),
)
UNTRACKED_BGR = (180, 180, 180)
FONT = cv2.FONT_HERSHEY_SIMPLEX
BODY_JOINTS = sorted({m for edge in SKELETON_EDGES for m in edge})


def track_colour(track_id: int) -> tuple[int, int, int]:
    """The BGR colour a track is drawn in (the same everywhere, every frame)."""
    return UNTRACKED_BGR if track_id < 0 else PALETTE[track_id % len(PALETTE)]


@dataclass
class _Track:
    cue: str = ""
    severity: Severity = Severity.INFO
    cue_pts: float = -math.inf
    last_cue_field: str | None = None  # PersonScore.last_cue as last seen
    seen_pts: float = 0.0


class _AnglePlaces:
    """Where each of an exercise's degree measures is drawn: the vertex of an
    angle, the middle of a tilted segment (cached per exercise)."""

    def __init__(self) -> None:
        self._measures: dict[str, dict[str, Measure]] = {}

    def measures(self, exercise: str | None) -> dict[str, Measure]:
        if not exercise:
            return {}
        if exercise not in self._measures:
            try:
                self._measures[exercise] = dict(get_exercise(exercise).measures)
            except UserError:  # an exercise this build does not know: no places
                self._measures[exercise] = {}
        return self._measures[exercise]

    def place(self, measure: Measure, joints: PersonJoints) -> tuple[int, int] | None:
        refs = measure.joints[1:2] if measure.kind == "angle" else measure.joints[:2]
        if measure.side in ("left", "right"):
            side = measure.side
        else:  # the side the coach most likely read: the better seen one
            side = max(("left", "right"), key=lambda s: self._seen(measure, joints, s))
        marks = [m for ref in refs for m in ref.landmarks(side)]
        if min(joints.visibility[marks]) < MIN_VISIBILITY:
            return None
        x, y = joints.image_xy[marks].mean(axis=0)
        return round(float(x)), round(float(y))

    @staticmethod
    def _seen(measure: Measure, joints: PersonJoints, side: str) -> float:
        marks = [m for ref in measure.joints for m in ref.landmarks(side)]
        return float(joints.visibility[marks].mean())


def _text(image, text, org, scale, colour, thickness=1) -> None:
    """Text with a dark outline, readable on any background."""
    # The outline without anti-aliasing: thick AA text costs ten times more.
    cv2.putText(image, text, org, FONT, scale, (0, 0, 0), thickness + 2, cv2.LINE_8)
    cv2.putText(image, text, org, FONT, scale, colour, thickness, cv2.LINE_AA)


def _ink_for(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = colour
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


class Overlay:
    """Annotates frames of one stream; keeps per-track cue state between them."""

    def __init__(self, blur_faces: bool = False):
        self.blur_faces = blur_faces
        self._tracks: dict[int, _Track] = {}
        self._places = _AnglePlaces()

    def draw(self, packet: FramePacket) -> np.ndarray:
        """A BGR annotated copy of packet.pixels (never modifies the input)."""
        if packet.pixels is None:
            raise ValueError("Overlay.draw needs a packet with pixels (the b'vid' topic)")
        image = packet.pixels.copy()
        if self.blur_faces:
            blur_faces(image, packet.joints, packet.persons)
        self._remember(packet)
        height = image.shape[0]
        scale = max(0.4, height / 960)
        joints = {j.track_id: j for j in packet.joints}
        scores = {s.track_id: s for s in packet.scores}
        for person in packet.persons:
            self._tint(image, person)
        for j in packet.joints:
            self._skeleton(image, j)
            score = scores.get(j.track_id)
            if score is not None:
                self._angles(image, j, score, scale)
        boxes = {p.track_id: p for p in packet.persons if p.track_id >= 0}
        for track in sorted(set(boxes) | set(joints) | set(scores)):
            self._label(image, track, boxes.get(track), joints.get(track), scores.get(track), scale)
        self._banner(image, packet.meta.pts, scale)
        return image

    # --- state

    def _remember(self, packet: FramePacket) -> None:
        now = packet.meta.pts
        present = {p.track_id for p in packet.persons} | {s.track_id for s in packet.scores}
        for track in present:
            state = self._tracks.setdefault(track, _Track())
            state.seen_pts = now
        for event in packet.events:
            if event.kind in BANNER_KINDS and event.text:
                state = self._tracks.setdefault(event.track_id, _Track())
                state.cue, state.severity, state.cue_pts = event.text, event.severity, now
        # A cue whose event this viewer missed (it joined late, or the event
        # was in a frame it dropped) still shows once the score carries it.
        for score in packet.scores:
            state = self._tracks[score.track_id]
            if score.last_cue and score.last_cue != state.last_cue_field:
                if score.last_cue != state.cue:
                    state.cue, state.severity, state.cue_pts = score.last_cue, Severity.WARN, now
                state.last_cue_field = score.last_cue
        for track, state in list(self._tracks.items()):
            # pts going backwards means a new stream: forget everything.
            if now - state.seen_pts > FORGET_SECONDS or now < state.seen_pts:
                del self._tracks[track]

    # --- drawing

    @staticmethod
    def _tint(image: np.ndarray, person: PersonInstance) -> None:
        colour = track_colour(person.track_id)
        if person.mask is None:
            x0, y0, x1, y1 = (round(v) for v in person.box)
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, 1, cv2.LINE_AA)
            return
        h, w = image.shape[:2]
        mx0, my0, mx1, my1 = person.mask_box()
        cx0, cy0, cx1, cy1 = max(mx0, 0), max(my0, 0), min(mx1, w), min(my1, h)
        if cx1 <= cx0 or cy1 <= cy0:
            return
        mask = person.mask[cy0 - my0 : cy1 - my0, cx0 - mx0 : cx1 - mx0]
        roi = image[cy0:cy1, cx0:cx1]
        fill = np.empty_like(roi)
        fill[:] = colour
        blended = cv2.addWeighted(roi, 1 - MASK_ALPHA, fill, MASK_ALPHA, 0)
        cv2.copyTo(blended, mask.view(np.uint8), roi)  # 100x faster than np.copyto(where=)

    @staticmethod
    def _skeleton(image: np.ndarray, joints: PersonJoints) -> None:
        colour = track_colour(joints.track_id)
        xy = np.round(joints.image_xy).astype(np.int32)
        seen = joints.visibility >= MIN_VISIBILITY
        thick = max(2, round(image.shape[0] / 240))
        for a, b in SKELETON_EDGES:
            if seen[a] and seen[b]:
                cv2.line(image, tuple(xy[a]), tuple(xy[b]), colour, thick, cv2.LINE_AA)
        for m in BODY_JOINTS:
            if seen[m]:
                cv2.circle(image, tuple(xy[m]), thick + 2, (255, 255, 255), -1, cv2.LINE_AA)
                cv2.circle(image, tuple(xy[m]), thick + 2, colour, 1, cv2.LINE_AA)

    def _angles(self, image, joints: PersonJoints, score: PersonScore, scale: float) -> None:
        measures = self._places.measures(score.exercise)
        for name, value in score.angles.items():
            measure = measures.get(name)
            if measure is None or not math.isfinite(value):
                continue
            at = self._places.place(measure, joints)
            if at is None:
                continue
            text = f"{name.replace('_', ' ')} {value:.0f}"
            (tw, th), _ = cv2.getTextSize(text, FONT, scale * 0.9, 1)
            x = at[0] + 8
            if x + tw + 8 > image.shape[1]:  # no room on the right: write it on the left
                x = at[0] - tw - 16
            org = (x, at[1] - 8)
            _text(image, text, org, scale * 0.9, (255, 255, 255))
            # Hershey fonts have no degree sign: a small ring after the number.
            ring = (org[0] + tw + 4, org[1] - th + 2)
            cv2.circle(image, ring, 2, (0, 0, 0), 2, cv2.LINE_AA)
            cv2.circle(image, ring, 2, (255, 255, 255), 1, cv2.LINE_AA)

    @staticmethod
    def _label(image, track, person, joints, score, scale) -> None:
        parts = [f"#{track}"]
        if score is not None:
            parts.append(score.exercise or "...")
            reps = f"{score.reps} rep" + ("" if score.reps == 1 else "s")
            if score.partial_reps:
                reps += f" +{score.partial_reps} partial"
            parts.append(reps)
            if score.form_score is not None:
                parts.append(f"form {score.form_score:.0f}")
        text = "  ".join(parts)
        if person is not None:
            x, y = person.box[0], person.box[1]
        elif joints is not None and (joints.visibility >= MIN_VISIBILITY).any():
            seen = joints.image_xy[joints.visibility >= MIN_VISIBILITY]
            x, y = float(seen[:, 0].min()), float(seen[:, 1].min())
        else:
            return
        colour = track_colour(track)
        (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
        h, w = image.shape[:2]
        x0 = int(min(max(x, 0), max(w - tw - 8, 0)))
        y0 = int(min(max(y - th - base - 8, 0), h - th - base - 8))
        cv2.rectangle(image, (x0, y0), (x0 + tw + 8, y0 + th + base + 8), colour, -1)
        cv2.putText(
            image, text, (x0 + 4, y0 + th + 4), FONT, scale, _ink_for(colour), 1, cv2.LINE_AA
        )

    def _banner(self, image: np.ndarray, now: float, scale: float) -> None:
        """The live cues, one line per person, along the bottom of the frame."""
        live = [
            (track, state)
            for track, state in sorted(self._tracks.items())
            if state.cue and 0 <= now - state.cue_pts <= CUE_SECONDS
        ]
        if not live:
            return
        h = image.shape[0]
        big = scale * 1.4
        texts = [f"#{track} {state.cue}" for track, state in live]
        line = cv2.getTextSize("Ag", FONT, big, 2)[0][1] + 14
        width = max(cv2.getTextSize(t, FONT, big, 2)[0][0] for t in texts) + 30
        top = h - line * len(live) - 6
        roi = image[max(top, 0) :, :width]
        cv2.convertScaleAbs(roi, roi, alpha=0.45)  # darken behind the text
        for row, ((track, state), text) in enumerate(zip(live, texts, strict=True)):
            y = top + row * line
            cv2.rectangle(image, (0, y), (10, y + line), track_colour(track), -1)
            colour = SEVERITY_BGR.get(state.severity, SEVERITY_BGR[Severity.INFO])
            _text(image, text, (18, y + line - 9), big, colour, 2)
