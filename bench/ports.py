"""Free tcp port blocks on loopback, for the tests and benches that bind a
pipeline (or a socket per variant) on consecutive ports."""

from __future__ import annotations

import random
import socket

from repcoach.common.endpoints import outgoing_ports_start

LOWEST = 10000


def free_port_block(count: int) -> int:
    """A base port whose `count - 1` successors are free on loopback too (best
    effort: free now, not reserved)."""
    last_base = outgoing_ports_start() - count
    for _ in range(100):
        base = random.randrange(LOWEST, last_base)
        try:
            for offset in range(count):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports on loopback")
