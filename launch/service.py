"""A systemd unit that runs `pipeline up` at boot (`pipeline service install`).

The unit runs as a dedicated system user, with its data folder
(`/var/lib/repcoach`: history, webhook queues) and run folder
(`/run/repcoach`: sockets, logs) created and owned by that user by systemd
itself, logs to the journal, restarts the pipeline when it fails, and stops
it with SIGTERM to the supervisor alone (`KillMode=mixed`), so the frames in
flight drain in order before the rest of the group is killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from repcoach.common.errors import UserError
from repcoach.launch.supervisor import GRACE_S

UNIT_PREFIX = "repcoach-"


def pipeline_executable() -> Path:
    """The `pipeline` command of this installation (the venv's)."""
    beside = Path(sys.executable).parent / "pipeline"
    if not beside.exists():
        raise UserError(f"no pipeline command next to {sys.executable}; run ./install.sh first")
    return beside.absolute()


def unit_name(name: str) -> str:
    return f"{UNIT_PREFIX}{name}.service"


def render_unit(name: str, user: str, up_args: list[str], executable: Path) -> str:
    """The unit's text for pipeline `name` running `pipeline up UP_ARGS`."""
    command = [str(executable), "up", "--no-console", "--name", name, *up_args]
    return (
        "[Unit]\n"
        f"Description=repcoach pipeline {name}\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=exec\n"
        f"User={user}\n"
        "SupplementaryGroups=video\n"  # cameras: /dev/video* belong to group video
        "WorkingDirectory=/var/lib/repcoach\n"  # relative paths in the options land here
        "Environment=REPCOACH_RUN_DIR=/run/repcoach\n"
        "Environment=REPCOACH_DATA_DIR=/var/lib/repcoach\n"
        "Environment=PYTHONUNBUFFERED=1\n"
        "RuntimeDirectory=repcoach\n"
        "RuntimeDirectoryMode=0700\n"
        "StateDirectory=repcoach\n"
        "StateDirectoryMode=0700\n"
        f"ExecStart={' '.join(_quote(part) for part in command)}\n"
        "KillMode=mixed\n"
        "KillSignal=SIGTERM\n"
        "SuccessExitStatus=130\n"  # what `up` says after a requested stop
        f"TimeoutStopSec={int(GRACE_S) + 15}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "StandardOutput=journal\n"
        "StandardError=journal\n"
        "NoNewPrivileges=yes\n"
        "PrivateTmp=yes\n"
        "ProtectSystem=full\n"
        "ProtectHome=read-only\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def _quote(part: str) -> str:
    """One ExecStart word: systemd splits on spaces and expands `$` and `%`."""
    if any(c in part for c in "%$\\\"'") or not part or any(c.isspace() for c in part):
        escaped = part.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
        return '"' + escaped.replace("$", "$$") + '"'
    return part
