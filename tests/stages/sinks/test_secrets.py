"""Secrets in a sink's spec (a webhook URL's password and token) never reach
a log line or a child's command line (`ps`): the supervisor hands each sink
its spec in a private file, and every URL in a log line is masked."""

from __future__ import annotations

import contextlib
import stat
import time

import psutil
import pytest

from repcoach.common.redact import mask_secrets, mask_url
from repcoach.stages.sinks import make_sink

PASSWORD, TOKEN = "secret-pw-7Q", "tok-abc-9Z"
URL = f"http://user:{PASSWORD}@127.0.0.1:9/x?token={TOKEN}"
FAST = ["--segmenter", "passthrough", "--joints", "none", "--no-console"]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (URL, "http://***@127.0.0.1:9/x?token=***"),
        ("https://h.example/hooks/T0AB12CD34/B0XY9876543210?x=1#frag", "https://h.example/hooks/T0AB12CD34/***?x=***#***"),
        ("http://127.0.0.1:8000/events", "http://127.0.0.1:8000/events"),
    ],
)  # fmt: skip
def test_mask_url(url, masked):
    assert mask_url(url) == masked
    assert mask_secrets(f"posting to {url} failed") == f"posting to {masked} failed"


def test_no_child_command_line_or_log_holds_the_webhook_secrets(pipeline, run_root, video):
    clip = video(150)
    up = pipeline.start(
        "up", "--source", str(clip), "--realtime", *FAST, "--name", "secrets",
        "--sink", f"webhook:url={URL},flush=0",
    )  # fmt: skip
    seen: dict[int, str] = {}
    modes: set[tuple[int, int]] = set()  # (file, folder) modes of the spec files
    deadline = time.monotonic() + 120
    try:
        parent = psutil.Process(up.pid)
        while up.poll() is None and time.monotonic() < deadline:
            for child in parent.children(recursive=True):
                try:
                    seen[child.pid] = " ".join(child.cmdline())
                except psutil.Error:
                    continue
            for spec in run_root.rglob("*.spec"):
                with contextlib.suppress(OSError):  # deleted at the end of the run
                    modes.add((spec.stat().st_mode, spec.parent.stat().st_mode))
            time.sleep(0.2)
        _, stderr = up.communicate(timeout=60)
    finally:
        pipeline.cleanup()
    assert any("sink" in line for line in seen.values()), seen
    for pid, line in seen.items():
        assert PASSWORD not in line and TOKEN not in line, (pid, line)
    assert PASSWORD not in stderr and TOKEN not in stderr, stderr
    logs = list(run_root.rglob("*.log"))
    assert any(p.name == "sink-webhook.log" for p in logs), logs
    for path in logs + list(run_root.rglob("*.json")):
        text = path.read_text(errors="replace")
        assert PASSWORD not in text and TOKEN not in text, (path, text[-2000:])
    assert (
        "http://***@127.0.0.1:9/x?token=***"
        in (run_root / "secrets" / "logs" / "sink-webhook.log").read_text()
    )
    # Where the spec travels: the owner's only, and gone when the run ends.
    assert {(stat.S_IMODE(f), stat.S_IMODE(d)) for f, d in modes} == {(0o600, 0o700)}
    assert not list(run_root.rglob("*.spec"))


def test_a_malformed_spec_is_refused_without_echoing_its_secrets(pipeline, video):
    result = pipeline.run(
        "up", "--source", str(video(5)), *FAST, "--sink", f"webhook:url={URL},{TOKEN}"
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "is not key=value" in lines[0], lines
    assert PASSWORD not in result.stderr and TOKEN not in result.stderr, result.stderr


def test_a_spec_can_come_from_a_file(tmp_path):
    options = tmp_path / "hook.spec"
    options.write_text(f"url={URL},queue={tmp_path / 'q.sqlite'},flush=0\n")
    sink = make_sink(f"webhook:@{options}")
    try:
        assert sink.url == URL and sink.shown == "http://***@127.0.0.1:9/x?token=***"
    finally:
        sink.close(0)
