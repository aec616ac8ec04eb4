"""Where each socket of a pipeline lives: the topology, built in one place.

On one box every endpoint is an `ipc://` path in the pipeline's run folder.
With `--bind tcp://HOST:PORT` the binding stages listen on consecutive ports
from PORT, and stages or sinks on other hosts reach them with
`--connect tcp://HOST:PORT`.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from repcoach.common.errors import UserError

# Socket roles, in port order for tcp. Who binds: capture binds "work", the
# joints stage binds "segmented", the score stage binds "joined", "results"
# and "snapshot", the supervisor binds "reports" and "control".
ROLES = ("work", "segmented", "joined", "results", "snapshot", "reports", "control")

_TCP = re.compile(r"^tcp://(?P<host>[^:/]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


def run_root() -> Path:
    """Folder holding one sub-folder per running pipeline (per user)."""
    env = os.environ.get("REPCOACH_RUN_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"repcoach-{os.getuid()}"


def run_dir(name: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise UserError(f"pipeline name {name!r}: use letters, digits, '.', '_' or '-'")
    return run_root() / name


@dataclass(frozen=True)
class Topology:
    """Bind and connect addresses for every role of one pipeline."""

    bind_addresses: dict[str, str]
    connect_addresses: dict[str, str]

    def bind(self, role: str) -> str:
        return self.bind_addresses[role]

    def connect(self, role: str) -> str:
        return self.connect_addresses[role]

    @classmethod
    def local(cls, name: str) -> Topology:
        folder = run_dir(name)
        # ipc paths are limited to ~107 bytes by the OS.
        addresses = {role: f"ipc://{folder}/{role}.sock" for role in ROLES}
        if any(len(a) > 100 for a in addresses.values()):
            raise UserError(
                f"run folder {folder} is too long for ipc sockets; set REPCOACH_RUN_DIR shorter"
            )
        return cls(addresses, addresses)

    @classmethod
    def tcp(cls, address: str, *, for_binding: bool) -> Topology:
        match = _TCP.match(address)
        if not match:
            raise UserError(f"{address!r} is not an endpoint like tcp://0.0.0.0:5550")
        host, port = match["host"], int(match["port"])
        if not 1024 <= port <= 65535 - len(ROLES):
            raise UserError(f"port {port} must be in 1024..{65535 - len(ROLES)}")
        connect_host = "127.0.0.1" if for_binding and host in ("0.0.0.0", "*") else host
        bind = {r: f"tcp://{host}:{port + i}" for i, r in enumerate(ROLES)}
        connect = {r: f"tcp://{connect_host}:{port + i}" for i, r in enumerate(ROLES)}
        return cls(bind, connect)

    def to_dict(self) -> dict:
        return {"bind": self.bind_addresses, "connect": self.connect_addresses}

    @classmethod
    def from_dict(cls, d: dict) -> Topology:
        return cls(dict(d["bind"]), dict(d["connect"]))


def data_root() -> Path:
    """Folder for what outlives a run (history database, webhook queues):
    `$REPCOACH_DATA_DIR`, else `$XDG_DATA_HOME/repcoach`, else ~/.local/share/repcoach."""
    env = os.environ.get("REPCOACH_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "repcoach"
