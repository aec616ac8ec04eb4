"""The re-order buffer releases frames in dispatch order, exactly once."""

from __future__ import annotations

import random

from repcoach.common.messages import EndOfStream, FrameMeta, FramePacket
from repcoach.common.reorder import Reorderer


def packet(seq: int, prev: int) -> FramePacket:
    return FramePacket(FrameMeta("s", seq, prev, 0, 0.0, 0.0, 8, 8))


def seqs(items) -> list:
    return [i.meta.seq if isinstance(i, FramePacket) else "eos" for i in items]


def test_shuffled_frames_with_capture_gaps_and_duplicates_come_out_in_order():
    dispatched = [0, 1, 2, 5, 6, 9, 10, 11]  # 3, 4, 7, 8 were dropped at capture
    items = [packet(s, p) for p, s in zip([-1, *dispatched], dispatched, strict=False)]
    items.append(EndOfStream("s", dispatched[-1], 12, 4, "end of source"))
    arrivals = items + items[2:5]  # re-sent after a worker died
    random.Random(4).shuffle(arrivals)
    reorder = Reorderer()
    released = [r for item in arrivals for r in reorder.push(item)]
    assert seqs(released) == [*dispatched, "eos"]
    assert reorder.duplicates >= 3


def test_without_timeout_a_missing_frame_holds_the_line():
    reorder = Reorderer()
    assert reorder.push(packet(1, 0)) == []
    assert reorder.expire(now=1e9) == []
    assert seqs(reorder.push(packet(0, -1))) == [0, 1]


def test_live_gap_timeout_skips_a_lost_frame():
    reorder = Reorderer(gap_timeout_s=0.5)
    reorder.push(packet(0, -1))
    assert reorder.push(packet(2, 1)) == []
    released = reorder.expire(now=1e12)
    assert seqs(released) == [2]
    assert reorder.skipped == 1
    assert reorder.push(packet(1, 0)) == []  # too late now: counted as a duplicate


def test_a_restarted_stage_resumes_from_the_first_frame_it_sees():
    reorder = Reorderer(resume=True)
    assert seqs(reorder.push(packet(41, 40))) == [41]
    assert seqs(reorder.push(packet(43, 42))) == []
    assert seqs(reorder.push(packet(42, 41))) == [42, 43]
