"""The pipeline graph is one consistent definition: every endpoint role is
bound once and reached with the matching pattern, every stage kind runs, and
sockets opened from it talk to each other."""

from __future__ import annotations

import pytest
import zmq

from repcoach.common import graph, transport
from repcoach.common.config import FlowPolicy, PipelineConfig, make_stations
from repcoach.common.endpoints import ROLES, Topology
from repcoach.common.errors import UserError
from repcoach.common.specs import Spec

# Which connecting pattern reaches which binding one.
PEERS = {
    transport.DEALER: transport.ROUTER,
    transport.PUSH: transport.PULL,
    transport.SUB: transport.XPUB,
    transport.REQ: transport.ROUTER,
}
KINDS = (*graph.STAGES, graph.SUPERVISOR)


def _binders(role: str) -> list[tuple[str, graph.Port]]:
    return [(k.kind, p) for k in KINDS for p in k.ports if p.role == role and p.binds]


def test_every_role_is_bound_by_exactly_one_stage():
    for role in ROLES:
        assert len(_binders(role)) == 1, (role, _binders(role))
    used = {p.role for k in KINDS for p in k.ports} | {graph.REPORTS.role}
    assert used == set(ROLES)


def test_every_connecting_socket_meets_its_peer_pattern():
    connecting = [(k.kind, p) for k in KINDS for p in k.ports if not p.binds]
    connecting.append(("any stage", graph.REPORTS))
    for kind, port in connecting:
        [(_, bound)] = _binders(port.role)
        assert PEERS[port.pattern] == bound.pattern, (kind, port.role)


def test_frames_flow_from_capture_to_the_sinks_and_every_kind_has_a_runner():
    assert graph.FLOW == ("capture", "segment", "joints", "score", "sink")
    for kind in graph.FLOW:
        assert callable(graph.ENTRIES.factory(kind))
    with pytest.raises(UserError, match="unknown stage 'supervisor'; valid: capture, segment"):
        graph.ENTRIES.factory("supervisor")


def test_process_names():
    assert graph.stage_kind("segment").process_name(2) == "segment-2"
    assert graph.stage_kind("sink").process_name(0, "web") == "sink-web"
    assert graph.stage_kind("sink").process_name(1, "jsonl") == "sink-jsonl#2"  # a second one
    assert graph.stage_kind("score").process_name() == "score"


def test_queue_lengths_follow_the_config():
    live = PipelineConfig("g", make_stations(["camera0"]), FlowPolicy.LATEST, prefetch=1)
    files = PipelineConfig("g", make_stations(["a.mp4"]), FlowPolicy.LOSSLESS, prefetch=2)
    work = graph.stage_kind("segment").port("work")
    assert work.queue_length(files) == work.queue_length(live) + 1


def test_sockets_opened_from_the_graph_talk(tmp_path, monkeypatch):
    monkeypatch.setenv("REPCOACH_RUN_DIR", str(tmp_path))
    stations, topology = make_stations(["a.mp4"]), Topology.local("graph").to_dict()
    config = PipelineConfig("graph", stations, FlowPolicy.LOSSLESS, topology=topology)
    inbox = graph.open_port(config, "score", "joined")
    out, peer = graph.open_port(config, "joints", "joined")
    reports_in = graph.open_port(config, "supervisor", "reports")
    reports_out = graph.open_reports(config)
    try:
        transport.send(out, [b"frame"])
        transport.send(reports_out, [b"report"])
        assert inbox.poll(5000) and transport.recv_parts(inbox)[0].bytes == b"frame"
        assert reports_in.poll(5000) and transport.recv_parts(reports_in)[0].bytes == b"report"
        assert inbox.getsockopt(zmq.RCVHWM) == 8
    finally:
        peer.close()
        transport.close_all(inbox, out, reports_in, reports_out)


def test_sink_options_travel_typed(tmp_path):
    spec = Spec("summary", {"path": str(tmp_path / "a,b=c.json")})
    spec.save(tmp_path / "0-summary.spec")
    assert Spec.load(tmp_path / "0-summary.spec") == spec
    (tmp_path / "bad.spec").write_text('{"name": "summary", "options": {"path": 3}}')
    with pytest.raises(UserError, match="bad.spec is unreadable"):
        Spec.load(tmp_path / "bad.spec")
