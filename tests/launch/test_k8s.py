"""The Kubernetes manifests: every overlay renders offline (`kubectl
kustomize`), and every container's command is one the real CLI parses."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from repcoach.launch.cli import check_command

yaml = pytest.importorskip("yaml", reason="needs pyyaml (pip: .[dev])")
KUBECTL = shutil.which("kubectl")
OVERLAYS = sorted((Path(__file__).parents[2] / "deploy" / "k8s" / "overlays").iterdir())


def render(overlay: Path) -> list[dict]:
    if KUBECTL is None:
        pytest.skip("needs kubectl (its kustomize renders the overlays offline)")
    result = subprocess.run(
        [KUBECTL, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def containers(docs: list[dict]):
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            spec = doc["spec"]["template"]["spec"]
            for container in spec.get("initContainers", []) + spec["containers"]:
                yield doc, container


def command_line(container: dict) -> list[str]:
    """The container's words, `$(VAR)` as Kubernetes expands it (a value
    from the downward API, such as a pod's index, stands in as 0)."""
    env = {e["name"]: e.get("value", "0") for e in container.get("env", [])}
    words = [*container.get("command", []), *container.get("args", [])]
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], w) for w in words]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_every_container_runs_a_command_the_cli_accepts(overlay):
    docs = render(overlay)
    seen = set()
    for workload, container in containers(docs):
        words = command_line(container)
        assert words[0] == "pipeline", (workload["metadata"]["name"], words)
        check_command(words[1:])
        seen.add(tuple(words[1:3]))
    assert {("up", "--source"), ("stage", "segment"), ("keys", "import")} <= seen


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_the_pipeline_is_probed_and_its_ports_are_served(overlay):
    docs = render(overlay)
    [pipeline] = [c for d, c in containers(docs) if c["name"] == "pipeline"]
    assert pipeline["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pipeline["readinessProbe"]["httpGet"]["path"] == "/readyz"
    words = command_line(pipeline)
    port = int(words[words.index("--metrics") + 1])
    bind = int(words[words.index("--bind") + 1].rsplit(":", 1)[1])
    [service] = [d for d in docs if d["kind"] == "Service"]
    served = {p["port"] for p in service["spec"]["ports"]}
    assert {port, *range(bind, bind + 8)} <= served  # the 8 tcp roles and the metrics


def test_the_gpu_overlay_gives_each_worker_one_gpu_and_the_pipeline_maskrcnn():
    docs = render(next(o for o in OVERLAYS if o.name == "gpu-maskrcnn"))
    [worker] = [c for d, c in containers(docs) if c["name"] == "segment"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    [pipeline] = [c for d, c in containers(docs) if c["name"] == "pipeline"]
    words = command_line(pipeline)
    assert words[words.index("--segmenter") + 1] == "maskrcnn"
