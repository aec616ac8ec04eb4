"""Check-in at a station: the person holding up a member's code is coached
and recorded as that member until they have been out of view a while.

The segment workers find the codes (`common.member_codes.CodeScanner`); here
each code is checked (this box issued it) and given to the person whose
body is nearest its centre, within half their height: a member holds their
phone or card in front of them or beside them, not across the room.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from repcoach.common.errors import UserError
from repcoach.common.member_codes import MEMBER_NAME_CHARS, REACH, MemberCodes
from repcoach.common.messages import PersonJoints, ShownCode

log = logging.getLogger(__name__)

VISIBLE = 0.3  # landmarks at least this visible outline a body


class CheckIns:
    """Which member a shown code names and who holds it. `hold_s`: how long
    a checked-in person may be out of view before the check-in ends."""

    def __init__(
        self,
        hold_s: float,
        codes: MemberCodes | None = None,
        members: Callable[[], list[str]] | None = None,
    ):
        self.hold_s = hold_s
        self._codes = codes
        self._members = members  # the history's members (None: no history kept)
        self.refused = 0  # codes this box did not issue (running total)

    def unknown_member(self, member: str) -> str | None:
        """Why `member` cannot be checked in by hand, or None. A code proves
        itself; a name typed on the dashboard must be a member's."""
        if not 0 < len(member) <= MEMBER_NAME_CHARS or ":" in member:
            return f"member name {member[:80]!r}: 1 to {MEMBER_NAME_CHARS} characters, no ':'"
        if self._members is None:
            return None
        try:
            known = member in self._members()
        except UserError as error:  # the database is gone or unreadable
            return str(error)
        if not known:
            return f"no member {member!r}: make them one with `pipeline members qr {member}`"
        return None

    def member_of(self, code: ShownCode) -> str | None:
        member = self._verifier() and self._codes.member_of(code.text)
        if not member:
            self.refused += 1
        return member or None

    def _verifier(self) -> bool:
        """The box's code key, read when first needed (a code may be issued
        after the pipeline started)."""
        if self._codes is None:
            try:
                self._codes = MemberCodes()
            except UserError as error:
                log.warning("check-in code refused: %s", error)
                return False
        return True

    @staticmethod
    def holder(code: ShownCode, people: tuple[PersonJoints, ...]) -> int | None:
        """The track of the person nearest the code, None if nobody is near."""
        best: tuple[float, int] | None = None
        for joints in people:
            seen = joints.image_xy[joints.visibility >= VISIBLE]
            if len(seen) < 2:
                continue
            (x0, y0), (x1, y1) = seen.min(axis=0), seen.max(axis=0)
            dx = max(x0 - code.x, 0.0, code.x - x1)
            dy = max(y0 - code.y, 0.0, code.y - y1)
            distance = float(np.hypot(dx, dy)) / max(y1 - y0, 1.0)
            if distance <= REACH and (best is None or distance < best[0]):
                best = (distance, joints.track_id)
        return None if best is None else best[1]
