"""Check-in codes: a member shows their code (a QR code) to a station's
camera, and the person holding it is coached and recorded as them.

A code's text is `repcoach:member:NAME:TAG`, TAG an HMAC-SHA256 of NAME
under this box's secret (`member-codes.key` in the data folder, mode 0600,
made on first use): a code nobody issued here, or a name edited in a copied
one, is refused. Nobody is identified by their face.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from repcoach.common.endpoints import data_root
from repcoach.common.errors import UserError
from repcoach.common.keys import write_private

PREFIX = "repcoach:member:"
TAG_CHARS = 16
MEMBER_NAME_CHARS = 64
KEY_FILE = "member-codes.key"
# A code whose centre is this far from a body (in body heights) is nobody's;
# the workers look that far around each person, plus this much for the
# code itself around its centre.
REACH = 0.5
CODE_ROOM = 0.25

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels


def key_path() -> Path:
    return data_root() / KEY_FILE


class MemberCodes:
    """Issues and checks this box's check-in codes."""

    def __init__(self, path: Path | None = None, create: bool = False):
        self.path = key_path() if path is None else path
        self._key = _read_key(self.path, create)

    def code_for(self, member: str) -> str:
        if not member or len(member) > MEMBER_NAME_CHARS or ":" in member:
            raise UserError(
                f"member name {member[:80]!r}: give 1 to {MEMBER_NAME_CHARS} characters, no ':'"
            )
        return f"{PREFIX}{member}:{self._tag(member)}"

    def member_of(self, text: str) -> str | None:
        """The member a shown code names, or None if this box did not issue it."""
        if not text.startswith(PREFIX):
            return None
        member, _, tag = text[len(PREFIX) :].rpartition(":")
        if not member or len(member) > MEMBER_NAME_CHARS:
            return None
        return member if hmac.compare_digest(tag, self._tag(member)) else None

    def _tag(self, member: str) -> str:
        digest = hmac.new(self._key, member.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:TAG_CHARS]


def _read_key(path: Path, create: bool) -> bytes:
    if not path.exists():
        if not create:
            raise UserError(
                f"no check-in key at {path}: issue a code first (`pipeline members qr NAME`)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_hex(32) + "\n")
    info = path.stat()
    if info.st_mode & 0o077 or info.st_uid != os.getuid():
        raise UserError(
            f"{path} must be yours and private (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"`chmod 600 {path}`"
        )
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except ValueError:
        raise UserError(f"{path} is not a check-in key; delete it and issue codes again") from None


def qr_modules(text: str) -> np.ndarray:
    """The QR code of `text` as modules (uint8, 0 dark, 255 light), with
    its quiet zone (OpenCV's encoder)."""
    return cv2.QRCodeEncoder.create().encode(text)


def qr_image(text: str, module_px: int = 8) -> np.ndarray:
    """The QR code of `text` as a grey image, `module_px` pixels a module."""
    modules = qr_modules(text)
    return cv2.resize(modules, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)


def qr_text(text: str) -> str:
    """The QR code of `text` for a terminal: two modules per character row
    (upper and lower half blocks), dark modules drawn as spaces on light."""
    modules = qr_modules(text) < 128
    if len(modules) % 2:
        modules = np.vstack([modules, np.zeros((1, modules.shape[1]), bool)])
    glyphs = {(False, False): "\u2588", (True, False): "\u2584", (False, True): "\u2580"}
    rows = []
    for top, bottom in zip(modules[0::2], modules[1::2], strict=True):
        rows.append("".join(glyphs.get((t, b), " ") for t, b in zip(top, bottom, strict=True)))
    return "\n".join(rows)


class CodeScanner:
    """Finds check-in codes in frames (OpenCV's ArUco-based QR detector:
    ~1 ms on a plain 640x480 frame, 5-11 ms on a 720p gym frame, at full
    resolution: a code held a few metres away has too few pixels to find
    at half). Only codes of this product are kept; checking them is the
    coach's business."""

    MAX_CODES = 4

    def __init__(self) -> None:
        self._detector = cv2.QRCodeDetectorAruco()

    def scan(
        self, frame: np.ndarray, near: Sequence[Box] | None = None
    ) -> list[tuple[str, float, float]]:
        """(text, x, y) of each code in view, x and y its centre in frame
        pixels. With `near` (people's boxes), only where a code one of them
        holds can be (`search_area`): nothing with nobody in view."""
        x0 = y0 = 0
        if near is not None:
            area = search_area(near, frame.shape[1], frame.shape[0])
            if area is None:
                return []
            x0, y0, x1, y1 = area
            frame = np.ascontiguousarray(frame[y0:y1, x0:x1])
        try:
            found, texts, corners, _ = self._detector.detectAndDecodeMulti(frame)
        except cv2.error:
            return []
        if not found or corners is None:
            return []
        centres = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2).mean(axis=1)
        codes = [
            (text, float(x + x0), float(y + y0))
            for text, (x, y) in zip(texts, centres, strict=True)
            if text.startswith(PREFIX)
        ]
        return codes[: self.MAX_CODES]


def search_area(boxes: Sequence[Box], width: int, height: int) -> Box | None:
    """The part of a frame where a code held by one of these people can be:
    around each, as far as a code's centre can lie and still be theirs
    (`REACH` body heights), plus room for the code itself; None with nobody."""
    if not boxes:
        return None
    corners = []
    for x0, y0, x1, y1 in boxes:
        margin = (REACH + CODE_ROOM) * max(y1 - y0, 1.0)
        corners.append((x0 - margin, y0 - margin, x1 + margin, y1 + margin))
    x0, y0 = min(c[0] for c in corners), min(c[1] for c in corners)
    x1, y1 = max(c[2] for c in corners), max(c[3] for c in corners)
    area = (max(int(x0), 0), max(int(y0), 0), min(int(x1) + 1, width), min(int(y1) + 1, height))
    return area if area[2] > area[0] and area[3] > area[1] else None
