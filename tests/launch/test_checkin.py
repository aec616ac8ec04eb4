"""A member checks in by holding up their code to a station's camera: real
processes, the real BlazePose models, a rendered athlete holding the code
beside a bystander; their reps go to their history."""

from __future__ import annotations

import json

import cv2

from tests.conftest import read_jsonl


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
