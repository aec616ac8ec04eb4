"""A member checks in by holding up their code to a station's camera: real
processes, the real BlazePose models, a rendered athlete holding the code
beside a bystander; their reps go to their history."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request

import cv2

from tests.conftest import free_port, read_jsonl


def test_a_rendered_athlete_checks_in_with_their_code(pipeline, tmp_path):
    card = tmp_path / "alice.png"
    issued = pipeline.run("members", "qr", "alice", "--out", str(card))
    assert issued.returncode == 0, issued.stderr
    code = cv2.QRCodeDetector().detectAndDecode(cv2.imread(str(card)))[0]
    assert code.startswith("repcoach:member:alice:")
    printed = pipeline.run("members", "qr", "alice")
    assert printed.returncode == 0 and "alice's check-in code" in printed.stdout

    summary, events = tmp_path / "summary.json", tmp_path / "events.jsonl"
    result = pipeline.run(
        "up",
        "--source",
        "synthetic:squat,reps=2,extra=bystander,checkin=alice",
        "--no-console",
        "--sink",
        f"jsonl:path={events}",
        "--summary",
        str(summary),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    people = {p["member"]: p for p in json.loads(summary.read_text())["people"]}
    assert set(people) == {"alice", None}  # the bystander stays a guest
    assert [(e["exercise"], e["reps"]) for e in people["alice"]["exercises"]] == [("squat", 2)]
    assert people[None]["exercises"] == []

    records = [r for r in read_jsonl(events) if r["type"] == "event"]
    check_ins = [r for r in records if r["kind"] == "check_in"]
    assert [(r["track"], r["data"]["member"]) for r in check_ins] == [
        (people["alice"]["id"], "alice")
    ]
    assert check_ins[0]["seq"] < 45  # while the code was held up (the first 1.5 s)
    reps = [r for r in records if r["kind"] == "rep"]
    assert len(reps) == 2 and all(r["data"]["member"] == "alice" for r in reps)

    history = pipeline.run("history", "--profile", "alice", "--json")
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)
    assert [(r["member"], r["exercise"], r["reps"]) for r in rows] == [("alice", "squat", 2)]


def _post(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/checkin",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_front_desk_checks_a_person_in_on_the_dashboard(pipeline, tmp_path):
    assert pipeline.run("members", "qr", "bob").returncode == 0
    summary, events, port = tmp_path / "summary.json", tmp_path / "events.jsonl", free_port()
    up = pipeline.start(
        "up",
        "--source",
        "synthetic:squat,reps=3,extra=bystander",
        "--realtime",
        "--no-console",
        "--sink",
        f"web:port={port}",
        "--sink",
        f"jsonl:path={events}",
        "--summary",
        str(summary),
    )
    deadline, people = time.monotonic() + 120, []
    while time.monotonic() < deadline and len(people) < 2:
        url = f"http://127.0.0.1:{port}/state.json"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as reply:
            people = json.load(reply)["people"]
        time.sleep(0.2)
    assert len(people) == 2, "two people in view on the dashboard"
    person = people[0]["id"]

    refusals = [
        (b'{"person": 1, "member": "bob"}', "text/plain", 415, "send JSON"),
        (b"{not json", "application/json", 400, "not JSON"),
        (b'{"person": 1, "member": "nobody"}', "application/json", 409, "no member 'nobody'"),
        (b'{"person": 99, "member": "bob"}', "application/json", 409, "person 99 is not in view"),
    ]
    for body, kind, status, said in refusals:
        code, answer = _post(port, body, kind)
        assert (code, said in answer.get("error", "")) == (status, True), (body, answer)

    body = json.dumps({"person": person, "member": "bob"}).encode()
    assert _post(port, body) == (200, {"checked_in": "bob", "person": person})
    out, err = up.communicate(timeout=300)
    assert up.returncode == 0, err

    records = [r for r in read_jsonl(events) if r["type"] == "event" and r["kind"] == "check_in"]
    assert [(r["track"], r["data"]) for r in records] == [(person, {"by": "hand", "member": "bob"})]
    members = {p["id"]: p["member"] for p in json.loads(summary.read_text())["people"]}
    assert members[person] == "bob" and list(members.values()).count("bob") == 1
