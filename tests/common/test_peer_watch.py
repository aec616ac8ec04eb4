"""A lossless hand-over between processes: the sender keeps its connection
until the receiver leaves, because libzmq drops what a receiver at its
high-water mark has not read yet from a connection its sender closes."""

from __future__ import annotations

import multiprocessing
import time

from repcoach.common import transport

MESSAGES = 3000


def _send_all(endpoint: str, wait_for_receiver: bool) -> None:
    sock, peer = transport.open_watched(transport.PUSH, endpoint, hwm=4)
    for i in range(MESSAGES):
        transport.send(sock, [i.to_bytes(4, "big"), b"x" * 300])
    if wait_for_receiver:
        assert peer.wait_until_gone(lambda: False, timeout_s=60)
    peer.close()
    transport.close_linger(sock, -1)
    transport.shutdown()


def _receive_slowly(endpoint: str, wait_for_receiver: bool) -> int:
    inbox = transport.open_socket(transport.PULL, endpoint, bind=True, hwm=8)
    senders = [
        multiprocessing.get_context("spawn").Process(
            target=_send_all, args=(endpoint, wait_for_receiver)
        )
        for _ in range(2)
    ]
    for sender in senders:
        sender.start()
    received = 0
    try:
        while received < 2 * MESSAGES and inbox.poll(5000):
            transport.recv_parts(inbox)
            received += 1
            if received % 50 == 0:
                time.sleep(0.01)  # a busy next stage
    finally:
        transport.close_all(inbox)  # the receiver leaves: the senders may go
        for sender in senders:
            sender.join(30)
    assert all(s.exitcode == 0 for s in senders)
    return received


def test_a_sender_that_waits_for_the_receiver_loses_nothing(tmp_path):
    assert _receive_slowly(f"ipc://{tmp_path}/inbox.sock", wait_for_receiver=True) == 2 * MESSAGES
