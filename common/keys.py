"""CURVE keys of this host: its own key pair, the clients it lets in, the
pipelines it connects to.

Layout of the key folder (`keys_dir()`: `$REPCOACH_KEYS_DIR`, else
`$REPCOACH_DATA_DIR/keys`, else `~/.local/share/repcoach/keys`), mode 0700,
every file 0600, in ZeroMQ's certificate format (czmq / `zmq.auth` read it):

    self.key            this host's public key (metadata: its name)
    self.key_secret     this host's secret key: never printed, never logged
    allowed/NAME.key    clients (workers, sinks, `status`) allowed to connect
                        to the pipelines this host runs
    servers/NAME.key    pipelines on other hosts this host connects to

One key pair per host serves both roles: a pipeline binds with it (CURVE
server) and its own stages connect with it; a worker host connects with its
own. The flow for a worker on host G serving a pipeline on host E:

    E$ pipeline keys init                   # prints E's public key
    G$ pipeline keys init                   # prints G's public key
    E$ pipeline keys add gpu-box G_PUBLIC_KEY
    G$ pipeline keys add edge E_PUBLIC_KEY --server
    G$ pipeline stage segment --connect tcp://E:5550
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from repcoach.common import transport
from repcoach.common.endpoints import data_root, private_dir
from repcoach.common.errors import UserError

SELF = "self"
ALLOWED = "allowed"
SERVERS = "servers"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LINE = re.compile(r'^\s*(?P<key>[a-z-]+)\s*=\s*"?(?P<value>[^"]*)"?\s*$')


def keys_dir() -> Path:
    env = os.environ.get("REPCOACH_KEYS_DIR")
    return Path(env).expanduser() if env else data_root() / "keys"


def check_name(name: str) -> str:
    if name == SELF or not _NAME.fullmatch(name):
        raise UserError(f"key name {name!r}: use letters, digits, '.', '_' or '-' (not 'self')")
    return name


def check_public_key(key: str) -> bytes:
    raw = key.strip().encode("ascii", "replace")
    if not transport.is_z85_key(raw):
        raise UserError(
            f"{key[:48]!r} is not a CURVE public key (40 Z85 characters, "
            "as `pipeline keys init` or `pipeline keys show` prints)"
        )
    return raw


def write_private(path: Path, text: str) -> None:
    """Write a file that only the owner can read, atomically, never wider."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _certificate(name: str, public: bytes, secret: bytes | None = None) -> str:
    lines = [
        "#   ZeroMQ CURVE " + ("secret" if secret else "public") + " certificate (repcoach)",
        "#   " + ("Keep this file private: mode 0600." if secret else "Public: share it."),
        "metadata",
        f'    name = "{name}"',
        "curve",
        f'    public-key = "{public.decode()}"',
    ]
    if secret:
        lines.append(f'    secret-key = "{secret.decode()}"')
    return "\n".join(lines) + "\n"


def _read_certificate(path: Path, *, secret: bool) -> dict[str, str]:
    try:
        info = os.stat(path)
        if secret and info.st_mode & 0o077:
            raise UserError(
                f"{path} can be read by others (mode {stat.S_IMODE(info.st_mode):04o}): "
                f"`chmod 600 {path}`, or make new keys with `pipeline keys init --force`"
            )
        if info.st_uid != os.getuid():
            raise UserError(f"{path} belongs to another user; keys must be your own")
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    return _parse_certificate(path, secret=secret)


def _parse_certificate(path: Path, *, secret: bool) -> dict[str, str]:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    fields = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            fields[match["key"]] = match["value"]
    key = fields.get("public-key", "").encode()
    if not transport.is_z85_key(key) or secret and "secret-key" not in fields:
        raise UserError(f"{path} is not a CURVE certificate")
    return fields


def _key_pair(path: Path, fields: dict[str, str]) -> KeyPair:
    """The key pair a secret certificate holds, checked to belong together."""
    public, secret = fields["public-key"].encode(), fields["secret-key"].encode()
    if not transport.is_z85_key(secret) or transport.curve_public(secret) != public:
        raise UserError(f"{path}: the secret key does not match its public key")
    return KeyPair(fields.get("name", SELF), public, secret)


@dataclass(frozen=True)
class KeyPair:
    name: str
    public: bytes
    secret: bytes

    def __repr__(self) -> str:  # never the secret
        return f"KeyPair(name={self.name!r}, public={self.public.decode()!r})"


class KeyStore:
    """The key folder (see the module docstring)."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or keys_dir()
        self._allowed_cache: tuple[tuple[int, int], frozenset[bytes]] | None = None

    def _private(self, sub: str = "") -> Path:
        hint = "set REPCOACH_KEYS_DIR to a folder of your own"
        private_dir(self.folder, "key folder", hint)
        return private_dir(self.folder / sub, "key folder", hint) if sub else self.folder

    # --- this host's key pair

    def has_own(self) -> bool:
        return (self.folder / f"{SELF}.key_secret").exists()

    def init(self, name: str | None = None, force: bool = False) -> KeyPair:
        name = check_name(name or socket.gethostname().split(".")[0] or "host")
        folder = self._private()
        if self.has_own() and not force:
            raise UserError(
                f"this host already has a key pair in {folder} (public key: "
                f"{self.own().public.decode()}); `pipeline keys init --force` replaces it, "
                "and every peer that allowed the old one must then allow the new one"
            )
        public, secret = transport.curve_keypair()
        write_private(folder / f"{SELF}.key_secret", _certificate(name, public, secret))
        write_private(folder / f"{SELF}.key", _certificate(name, public))
        return KeyPair(name, public, secret)

    def own(self) -> KeyPair:
        path = self.folder / f"{SELF}.key_secret"
        if not path.exists():
            raise UserError(
                f"this host has no CURVE key pair in {self.folder}: make one with "
                "`pipeline keys init` (or use --insecure on a loopback address)"
            )
        self._private()
        return _key_pair(path, _read_certificate(path, secret=True))

    def import_from(self, source: Path) -> tuple[str, int, int]:
        """Copy a key folder laid out as above (a mounted Kubernetes Secret:
        files owned by root, readable by the group) into this one, private.
        Returns this host's name and how many allowed clients and trusted
        pipelines came with it."""
        path = source / f"{SELF}.key_secret"
        pair = _key_pair(path, _parse_certificate(path, secret=True))
        name = check_name(pair.name)
        peers = {
            sub: {
                peer.stem: _parse_certificate(peer, secret=False)["public-key"]
                for peer in sorted((source / sub).glob("*.key"))
            }
            for sub in (ALLOWED, SERVERS)
        }
        folder = self._private()
        write_private(folder / f"{SELF}.key_secret", _certificate(name, pair.public, pair.secret))
        write_private(folder / f"{SELF}.key", _certificate(name, pair.public))
        for sub, keys in peers.items():
            for peer, key in keys.items():
                self.add(peer, key, server=sub == SERVERS)
        return name, len(peers[ALLOWED]), len(peers[SERVERS])

    # --- peers

    def add(self, name: str, public_key: str, *, server: bool = False) -> Path:
        check_name(name)
        key = check_public_key(public_key)
        path = self._private(SERVERS if server else ALLOWED) / f"{name}.key"
        write_private(path, _certificate(name, key))
        return path

    def remove(self, name: str, *, server: bool = False) -> None:
        path = self.folder / (SERVERS if server else ALLOWED) / f"{check_name(name)}.key"
        if not path.exists():
            kind = "trusted pipeline" if server else "allowed client"
            raise UserError(f"no {kind} named {name!r} in {self.folder}")
        path.unlink()

    def peers(self, sub: str) -> dict[str, bytes]:
        folder = self.folder / sub
        if not folder.is_dir():
            return {}
        self._private(sub)
        return {
            path.stem: _read_certificate(path, secret=False)["public-key"].encode()
            for path in sorted(folder.glob("*.key"))
        }

    def allowed(self) -> dict[str, bytes]:
        return self.peers(ALLOWED)

    def servers(self) -> dict[str, bytes]:
        return self.peers(SERVERS)

    def is_allowed(self, key: bytes) -> bool:
        """For the ZAP handler: this host's own key or an allowed client's.
        Re-read when the folder changes, so `keys add` / `keys remove` apply
        to new connections of a running pipeline."""
        try:
            info = os.stat(self.folder / ALLOWED)
            stamp = (info.st_mtime_ns, info.st_ino)
        except OSError:
            stamp = (0, 0)
        if self._allowed_cache is None or self._allowed_cache[0] != stamp:
            try:
                keys = frozenset(self.allowed().values()) | {self.own().public}
            except UserError:
                keys = frozenset()  # a broken folder lets nobody in
            self._allowed_cache = (stamp, keys)
        return key in self._allowed_cache[1]

    def server_key(self, choice: str | None) -> bytes:
        """The public key of the pipeline to connect to: `choice` is a key or
        the name of one added with `--server`; None = the only one added."""
        servers = self.servers()
        if choice:
            if choice in servers:
                return servers[choice]
            if transport.is_z85_key(choice.encode("ascii", "replace")):
                return choice.encode()
            known = ", ".join(servers) or "none yet"
            raise UserError(
                f"--server-key {choice[:48]!r} is neither a public key nor a trusted "
                f"pipeline's name (trusted: {known})"
            )
        if len(servers) == 1:
            return next(iter(servers.values()))
        if not servers:
            raise UserError(
                "no pipeline's public key is known here: run `pipeline keys show` on the "
                "pipeline's host, then `pipeline keys add NAME KEY --server` here "
                "(or give --server-key KEY)"
            )
        raise UserError(
            f"several pipelines are trusted ({', '.join(servers)}): pick one with --server-key NAME"
        )


def local_curve(store: KeyStore | None = None) -> transport.Curve:
    """Keys of a process on the pipeline's own host: it binds, and connects to
    its own host's sockets, with this host's key pair."""
    store = store or KeyStore()
    pair = store.own()
    return transport.Curve(pair.public, pair.secret, pair.public, store.is_allowed)


def client_curve(server_key: str | None, store: KeyStore | None = None) -> transport.Curve:
    """Keys of a process that connects to a pipeline on another host."""
    store = store or KeyStore()
    pair = store.own()
    return transport.Curve(pair.public, pair.secret, store.server_key(server_key), store.is_allowed)
