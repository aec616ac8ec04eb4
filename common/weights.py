"""Model weight files: the manifest that names them and the one check of a file.

`weights/manifest.json` lists every downloadable weights file (name, file
name, URL, size in bytes, SHA-256 or null, and the layer names a usable file
must hold). `check_weights()` is the single definition of "this file is
usable": `pipeline weights list`, `pipeline weights download` and the
segmenters that load a file all call it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from repcoach.common.errors import UserError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_PATH = PACKAGE_ROOT / "weights" / "manifest.json"
WEIGHTS_DIR_ENV = "REPCOACH_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable weights file, as the manifest describes it."""

    name: str  # what users type: `pipeline weights download <name>`
    file: str  # file name inside the weights folder
    url: str
    size: int | None  # bytes; None when not recorded
    sha256: str | None  # lower-case hex; None when not recorded
    layers: tuple[str, ...]  # HDF5 layer groups (with weights) a usable file holds
    description: str = ""

    def path_in(self, weights_dir: Path) -> Path:
        return Path(weights_dir) / self.file


def default_weights_dir() -> Path:
    """`$REPCOACH_WEIGHTS_DIR` if set, else the `weights/` folder of the package."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(env).expanduser() if env else PACKAGE_ROOT / "weights"


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, WeightsEntry]:
    """Read the manifest; a broken one is a UserError naming the file."""
    try:
        raw = json.loads(Path(path).read_text())
        entries = [
            WeightsEntry(
                name=item["name"],
                file=item["file"],
                url=item["url"],
                size=item.get("size"),
                sha256=(item.get("sha256") or None) and item["sha256"].lower(),
                layers=tuple(item.get("layers", ())),
                description=item.get("description", ""),
            )
            for item in raw["weights"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"weights manifest {path} is unreadable ({exc})") from None
    return {entry.name: entry for entry in entries}


def lookup(name: str, manifest: dict[str, WeightsEntry]) -> WeightsEntry:
    if name not in manifest:
        raise UserError(f"unknown weights {name!r}; valid names: {', '.join(sorted(manifest))}")
    return manifest[name]


@dataclass(frozen=True)
class WeightsCheck:
    """What `check_weights` found. `None` in a `*_ok` field means "not checked"
    (the manifest records no expectation, or the caller skipped it)."""

    path: Path
    present: bool
    size: int | None = None
    size_ok: bool | None = None
    hdf5_problem: str | None = None  # None: readable HDF5 holding every required layer
    sha256: str | None = None
    sha256_ok: bool | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def problem(self) -> str | None:
        """The first thing wrong, as a short phrase, or None."""
        if not self.present:
            return "file not found"
        if self.size_ok is False:
            return f"size {self.size:,} bytes differs from the manifest's"
        if self.hdf5_problem:
            return self.hdf5_problem
        if self.sha256_ok is False:
            return "SHA-256 differs from the manifest's"
        return None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hdf5_layer_problem(path: Path, layers: tuple[str, ...]) -> str | None:
    """None if `path` is a Keras HDF5 weights file holding weights for every
    layer in `layers`; else what is wrong."""
    try:
        import h5py
    except ImportError:
        return "cannot inspect HDF5: h5py is not installed (pip install h5py)"
    try:
        with h5py.File(path, "r") as f:
            # Full-model saves nest the weights under "model_weights".
            group = (
                f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            )
            missing = [name for name in layers if not _has_weights(group, name)]
    except OSError as exc:  # h5py's message says why: truncated, no signature, ...
        return f"not a readable HDF5 file ({exc})"
    if missing:
        return f"HDF5 file lacks the model's layers {', '.join(missing)}"
    return None


def _has_weights(group, name: str) -> bool:
    layer = group.get(name)
    return layer is not None and len(layer.attrs.get("weight_names", ())) > 0


def check_weights(
    path: Path, entry: WeightsEntry, *, check_size: bool = True, check_sha256: bool = True
) -> WeightsCheck:
    """Check a weights file against its manifest entry.

    The HDF5 structure (readable, required layers present) is always checked;
    size and SHA-256 only when asked and when the manifest records them. A
    loader passes `check_size=False, check_sha256=False` so that a compatible
    file from elsewhere (a fine-tuned model) is accepted.
    """
    path = Path(path)
    if not path.is_file():
        return WeightsCheck(path, present=False)
    size = path.stat().st_size
    size_ok = size == entry.size if check_size and entry.size is not None else None
    if size_ok is False:
        return WeightsCheck(path, True, size, size_ok)
    hdf5_problem = hdf5_layer_problem(path, entry.layers)
    digest = sha256_ok = None
    if check_sha256 and hdf5_problem is None:
        digest = sha256_of(path)
        sha256_ok = digest == entry.sha256 if entry.sha256 else None
    return WeightsCheck(path, True, size, size_ok, hdf5_problem, digest, sha256_ok)
