"""Check-in codes: issued and checked with this box's key; a copied code
with another name, or one another box issued, is refused."""

from __future__ import annotations

import stat

import cv2
import numpy as np
import pytest

from repcoach.common.errors import UserError
from repcoach.common.member_codes import CodeScanner, MemberCodes, qr_image, qr_text


@pytest.fixture
def codes(tmp_path) -> MemberCodes:
    return MemberCodes(tmp_path / "member-codes.key", create=True)


def test_a_code_names_its_member_and_only_with_this_boxs_key(codes, tmp_path):
    code = codes.code_for("alice")
    assert code.startswith("repcoach:member:alice:")
    assert codes.member_of(code) == "alice"
    forged = code.replace(":alice:", ":bob:")  # the name edited, the tag kept
    assert codes.member_of(forged) is None
    other_box = MemberCodes(tmp_path / "other.key", create=True)
    assert other_box.member_of(code) is None
    for junk in ("", "repcoach:member:", "repcoach:member::x", "https://example.com"):
        assert codes.member_of(junk) is None
    assert stat.S_IMODE((tmp_path / "member-codes.key").stat().st_mode) == 0o600
    # The same key gives the same code (a reprinted card still works).
    assert MemberCodes(tmp_path / "member-codes.key").code_for("alice") == code


def test_key_and_name_problems_are_one_line(codes, tmp_path):
    with pytest.raises(UserError, match=r"no check-in key at .*\(`pipeline members qr NAME`\)"):
        MemberCodes(tmp_path / "missing.key")
    loose = tmp_path / "member-codes.key"
    loose.chmod(0o644)
    with pytest.raises(UserError, match="must be yours and private .*chmod 600"):
        MemberCodes(loose)
    for name in ("", "a:b", "x" * 65):
        with pytest.raises(UserError, match="member name"):
            codes.code_for(name)


def test_the_printed_and_drawn_codes_scan(codes):
    code = codes.code_for("alice")
    card = qr_image(code, module_px=4)
    frame = np.full((480, 640, 3), 120, np.uint8)
    frame[100 : 100 + card.shape[0], 200 : 200 + card.shape[1]] = card[..., None]
    found = CodeScanner().scan(frame)
    assert [text for text, _, _ in found] == [code]
    centre = 200 + card.shape[1] / 2, 100 + card.shape[0] / 2
    assert np.allclose(found[0][1:], centre, atol=card.shape[0] * 0.1)
    assert cv2.QRCodeDetector().detectAndDecode(cv2.cvtColor(card, cv2.COLOR_GRAY2BGR))[0] == code
    # A code of another product is not ours to report.
    other = qr_image("https://example.com/menu", module_px=4)
    frame[300 : 300 + other.shape[0], 20 : 20 + other.shape[1]] = other[..., None]
    assert [text for text, _, _ in CodeScanner().scan(frame)] == [code]
    # Looked for only around people: near one, found where it is; far from
    # everyone (or with nobody in view), not looked for at all.
    h = card.shape[0]
    holder = (200 + h + 10, 100, 200 + h + 10 + h, 100 + 3 * h)  # beside the card
    near = CodeScanner().scan(frame, near=[holder])
    assert [text for text, _, _ in near] == [code] and np.allclose(near[0][1:], found[0][1:])
    assert CodeScanner().scan(frame, near=[(600, 400, 630, 470)]) == []
    assert CodeScanner().scan(frame, near=[]) == []
    # The terminal rendering: two module rows per line, light modules drawn.
    lines = qr_text(code).splitlines()
    assert len(lines) == (card.shape[0] // 4 + 1) // 2
    assert set("".join(lines)) <= {" ", "\u2588", "\u2580", "\u2584"}
