"""Where each socket of a pipeline lives: the topology, built in one place.

On one box every endpoint is an `ipc://` path in the pipeline's run folder.
With `--bind tcp://HOST:PORT` the binding stages listen on consecutive ports
from PORT, and stages or sinks on other hosts reach them with
`--connect tcp://HOST:PORT`. Every tcp socket is CURVE (see
`repcoach.common.transport`) unless the topology was made `insecure`
(plain tcp, loopback only).

The run folder holds the ipc sockets, so it must be the user's alone:
`run_dir()` creates it (and the default run root in the temp folder) with mode
0700 and refuses one that another user owns or that others may write to.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from repcoach.common.errors import UserError

# Socket roles, in port order for tcp. Who binds: capture binds "work", the
# joints stage binds "segmented", the score stage binds "joined", "results"
# (the sinks `up` starts: lossless for files), "snapshot" and "tap" (sinks
# attached later: a slow one loses messages, nobody waits for it), the
# supervisor binds "reports" and "control".
ROLES = ("work", "segmented", "joined", "results", "snapshot", "reports", "control", "tap")

# Linux's default first port for outgoing connections, where /proc says nothing.
_OUTGOING_PORTS_START = 32768


def outgoing_ports_start() -> int:
    """The first port this machine gives outgoing connections. A `--bind`
    block should lie below it: a connection made while the block's ports are
    still being bound (the stages connect to the ports bound first) may hold
    one of them."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _OUTGOING_PORTS_START


_TCP = re.compile(r"^tcp://(?P<host>[^:/]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


def run_root() -> Path:
    """Folder holding one sub-folder per running pipeline (per user)."""
    env = os.environ.get("REPCOACH_RUN_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"repcoach-{os.getuid()}"


def _owner(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def private_dir(
    path: Path, what: str = "folder", hint: str = "set REPCOACH_RUN_DIR to a folder of your own"
) -> Path:
    """Create `path` with mode 0700 if it is missing; refuse it (one line) if
    it is not a folder, another user owns it, or its group or others may
    write to it; tighten an own folder that others may only read to 0700."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as error:
        raise UserError(f"cannot create {what} {path}: {error.strerror}") from None
    try:
        link = os.lstat(path)
        info = os.stat(path)
    except OSError as error:
        raise UserError(f"cannot use {what} {path}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UserError(f"{what} {path} is not a folder")
    me = os.getuid()
    for st in (link, info):
        if st.st_uid != me:
            raise UserError(
                f"{what} {path} belongs to {_owner(st.st_uid)}, not you: remove it, or {hint}"
            )
    if info.st_mode & 0o022:
        raise UserError(
            f"{what} {path} is writable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"remove it, or {hint}"
        )
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def check_name(name: str) -> str:
    """A pipeline's name: it names folders, sockets and service units."""
    # Not starting with '.': "." and ".." would name the run root or its parent.
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}", name):
        raise UserError(
            f"pipeline name {name!r}: use letters, digits, '.', '_' or '-', not starting with '.'"
        )
    return name


def run_dir(name: str) -> Path:
    """The pipeline's run folder, created private (see the module docstring)."""
    check_name(name)
    root = run_root()
    if "REPCOACH_RUN_DIR" not in os.environ:
        private_dir(root, "run root")  # in the shared temp folder: anyone could have made it
    return private_dir(root / name, "run folder")


@dataclass(frozen=True)
class Topology:
    """Bind and connect addresses for every role of one pipeline."""

    bind_addresses: dict[str, str]
    connect_addresses: dict[str, str]
    insecure: bool = False
    """Plain tcp on loopback (`--insecure`) instead of CURVE."""

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

    @property
    def is_tcp(self) -> bool:
        return any(a.startswith("tcp://") for a in self.bind_addresses.values())

    @classmethod
    def tcp(cls, address: str, *, for_binding: bool, insecure: bool = False) -> Topology:
        match = _TCP.match(address)
        if not match:
            raise UserError(f"{address!r} is not an endpoint like tcp://0.0.0.0:5550")
        host, port = match["host"], int(match["port"])
        if not 1024 <= port <= 65535 - len(ROLES):
            raise UserError(f"port {port} must be in 1024..{65535 - len(ROLES)}")
        connect_host = "127.0.0.1" if for_binding and host in ("0.0.0.0", "*") else host
        bind = {r: f"tcp://{host}:{port + i}" for i, r in enumerate(ROLES)}
        connect = {r: f"tcp://{connect_host}:{port + i}" for i, r in enumerate(ROLES)}
        return cls(bind, connect, insecure)

    def to_dict(self) -> dict:
        return {
            "bind": self.bind_addresses,
            "connect": self.connect_addresses,
            "insecure": self.insecure,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Topology:
        return cls(dict(d["bind"]), dict(d["connect"]), bool(d.get("insecure", False)))


def data_root() -> Path:
    """Folder for what outlives a run (history database, webhook queues):
    `$REPCOACH_DATA_DIR`, else `$XDG_DATA_HOME/repcoach`, else ~/.local/share/repcoach."""
    env = os.environ.get("REPCOACH_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "repcoach"
