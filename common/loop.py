"""The one loop every stage process runs.

It polls the sockets a role names, lets the role act on what is ready (every
turn, ready or not: timers and idle work), sends the stage's reports, and
closes the role however the loop ends. The roles (capture's dispatcher, a
segment worker, the ordered joints stage, the publisher, a sink's feed) live
in `repcoach.common.dispatch` and `repcoach.common.runner`.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from repcoach.common import transport
from repcoach.common.stage_context import StageContext


class Role(Protocol):
    """One stage kind's part in `run_loop`."""

    ends_on_stop: ClassVar[bool]
    """A stop request ends the loop at once (else the role drains first)."""

    def sockets(self) -> tuple:
        """The sockets to wait on this turn."""
        ...

    def turn(self, ready: set) -> bool:
        """Act on the ready sockets (maybe none); True when the stage is done."""
        ...

    def close(self) -> None:
        """Release the sockets, handing over what is owed downstream."""
        ...


def run_loop(ctx: StageContext, role: Role, poll_ms: int = 100) -> None:
    pollers: dict[tuple, transport.Poller] = {}
    try:
        while not (role.ends_on_stop and ctx.should_stop()):
            ctx.tick()
            sockets = role.sockets()
            poller = pollers.get(sockets)
            if poller is None:  # the publisher switches between two sets
                poller = pollers[sockets] = transport.Poller(*sockets)
            if role.turn(poller.ready(poll_ms)):
                return
    finally:
        role.close()
