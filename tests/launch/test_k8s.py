"""The Kubernetes manifests: every overlay renders offline (`kubectl
kustomize`), and every container's command is one the real CLI parses."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from repcoach.launch.cli import check_command
from tests.conftest import netns_allowed, pipeline_command, run_keys

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


# --- the cpu overlay's own commands, across two hosts


class Pod:
    """One pod of the rendered manifests on this machine: its volumes are
    folders under `root` (the words and variables naming a mount point are
    rewritten to the folder), its network a namespace."""

    def __init__(self, workload: dict, root: Path, namespace: str):
        self.spec = workload["spec"]["template"]["spec"]
        self.namespace = namespace
        self.mounts: dict[str, Path] = {}
        for container in self.spec.get("initContainers", []) + self.spec["containers"]:
            for mount in container.get("volumeMounts", []):
                self.mounts[mount["mountPath"]] = root / mount["name"]
        for folder in self.mounts.values():
            folder.mkdir(parents=True, exist_ok=True)
        self.mounts["/run/repcoach"] = root / "run"  # in the image, not a volume

    def local(self, word: str) -> str:
        for mount, folder in self.mounts.items():
            if word == mount or word.startswith(mount + "/"):
                return str(folder) + word[len(mount) :]
        return word

    def container(self, name: str) -> dict:
        return next(
            c for c in self.spec.get("initContainers", []) + self.spec["containers"]
            if c["name"] == name
        )  # fmt: skip

    def secret_items(self) -> dict[str, Path]:
        """Where each key of the pod's Secret lands (`items`)."""
        [volume] = [v for v in self.spec["volumes"] if "secret" in v]
        [mount] = [m for m, f in self.mounts.items() if f.name == volume["name"]]
        return {
            i["key"]: Path(self.local(f"{mount}/{i['path']}")) for i in volume["secret"]["items"]
        }

    def run(self, name: str, replace: dict[str, str], base_env: dict) -> subprocess.Popen:
        container = self.container(name)
        env = {**base_env, **{e["name"]: self.local(e.get("value", "0")) for e in container["env"]}}
        words = [replace.get(w, self.local(w)) for w in command_line(container)]
        command = ["ip", "netns", "exec", self.namespace, *pipeline_command(), *words[1:]]
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


@pytest.mark.slow
def test_the_cpu_overlay_runs_across_two_hosts(pipeline, run_root):
    """The rendered commands, as the pods would run them: the init containers
    import keys laid out as the Secrets mount them, the pipeline (no worker
    of its own) serves a worker in another network namespace that reaches it
    by the Service's name, over CURVE. Only the camera is swapped for a
    rendered one."""
    reason = netns_allowed()
    if reason:
        pytest.skip(reason)
    docs = render(next(o for o in OVERLAYS if o.name == "cpu"))
    workloads = {
        d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")
    }
    tag = os.getpid() % 100000
    edge_ns, gpu_ns = f"rck8sA{tag}", f"rck8sB{tag}"
    edge = Pod(workloads["repcoach-pipeline"], run_root / "edge", edge_ns)
    worker = Pod(workloads["repcoach-segment"], run_root / "gpu", gpu_ns)
    # The keys, made as docs/deployment.md says and placed as the Secrets' items.
    made = {name: run_root / f"made-{name}" for name in ("pipeline", "workers")}
    for name, folder in made.items():
        run_keys(pipeline, folder, "init", "--name", name)
    public = {name: run_keys(pipeline, f, "show").strip() for name, f in made.items()}
    run_keys(pipeline, made["pipeline"], "add", "workers", public["workers"])
    run_keys(pipeline, made["workers"], "add", "pipeline", public["pipeline"], "--server")
    sources = {
        "self.key": "self.key",
        "self.key_secret": "self.key_secret",
        "allowed-workers.key": "allowed/workers.key",
        "servers-pipeline.key": "servers/pipeline.key",
    }
    for pod, name in ((edge, "pipeline"), (worker, "workers")):
        for key, target in pod.secret_items().items():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made[name] / sources[key], target)
            target.chmod(0o440)
    subnet = os.getpid() % 200 + 20
    edge_ip, gpu_ip = f"10.232.{subnet}.1", f"10.232.{subnet}.2"
    hosts_file = Path("/etc/netns") / gpu_ns / "hosts"  # `ip netns exec` mounts it as /etc/hosts
    processes = []
    try:
        for ns in (edge_ns, gpu_ns):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        subprocess.run(
            ["ip", "link", "add", f"rcka{tag}", "type", "veth", "peer", "name", f"rckb{tag}"],
            check=True,
        )
        for ns, veth, address in ((edge_ns, f"rcka{tag}", edge_ip), (gpu_ns, f"rckb{tag}", gpu_ip)):
            subprocess.run(["ip", "link", "set", veth, "netns", ns], check=True)
            subprocess.run(
                ["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", veth], check=True
            )
            subprocess.run(["ip", "-n", ns, "link", "set", veth, "up"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        hosts_file.parent.mkdir(parents=True, exist_ok=True)
        hosts_file.write_text(f"127.0.0.1 localhost\n{edge_ip} repcoach-pipeline\n")
        env = {k: v for k, v in pipeline.env.items() if not k.startswith("REPCOACH_")}
        for pod in (edge, worker):
            init = pod.run("keys", {}, env)
            assert init.wait(60) == 0, init.stderr.read()
            assert "imported" in init.stdout.read()
        up = edge.run("pipeline", {"rtsp://camera.local/stream": "synthetic:squat"}, env)
        processes.append(up)
        segment = worker.run("segment", {}, env)
        processes.append(segment)
        assert up.wait(240) == 0, up.stderr.read()
        assert segment.wait(60) == 0, segment.stderr.read()
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        for ns in (edge_ns, gpu_ns):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        shutil.rmtree(hosts_file.parent, ignore_errors=True)
        with contextlib.suppress(OSError):  # /etc/netns, if nothing else uses it
            hosts_file.parent.parent.rmdir()
    history = subprocess.run(
        [*pipeline_command(), "history", "--json"],
        env={**env, "REPCOACH_DATA_DIR": edge.local("/data/repcoach")},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    [row] = json.loads(history.stdout)
    assert (row["exercise"], row["reps"]) == ("squat", 3)
