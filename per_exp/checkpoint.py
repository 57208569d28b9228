"""Job checkpoints on disk: where they live, atomic writes, and the process-global RNG states.

A checkpoint is one file per experiment and config hash,
`<root>/<experiment id>/<hash>/checkpoint.pt`.
Keying by hash rather than by Hydra's (timestamped) sweep folder is what
lets a re-launch of the same command find the work of the killed one.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_NAME = "checkpoint.pt"


def default_root(uri: str, launch_dir: Path) -> Path:
    """Next to the sqlite file for an embedded store, else `checkpoints/` in the launch folder.

    A server URI has no local folder of its own; on a cluster the launch
    folder must then be on a filesystem every node sees (or set checkpoint.dir).
    """
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).resolve().parent / "checkpoints"
    return (launch_dir / "checkpoints").resolve()


def root_for(configured: str | None, uri: str, launch_dir: Path) -> Path:
    if configured:
        p = Path(configured).expanduser()
        return (p if p.is_absolute() else launch_dir / p).resolve()
    return default_root(uri, launch_dir)


def path_for(root: Path, experiment_id: str, config_hash: str) -> Path:
    return Path(root) / str(experiment_id) / config_hash / FILE_NAME


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write-then-rename, so a kill mid-write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save({"format_version": FORMAT_VERSION, **payload}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None if there is none or it cannot be read."""
    if not path.exists():
        return None
    try:
        # Our own file: it holds NumPy arrays and RNG tuples, which the
        # weights-only unpickler refuses.
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a torn or foreign file must not stop the job: start over instead
        log.warning("ignoring unreadable checkpoint %s: %s: %s", path, type(e).__name__, e)
        return None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        log.warning(
            "ignoring checkpoint %s: format %r, expected %d",
            path,
            data.get("format_version") if isinstance(data, dict) else None,
            FORMAT_VERSION,
        )
        return None
    return data


def remove(path: Path) -> None:
    try:
        path.unlink()
        path.parent.rmdir()  # the hash folder, then the experiment's if it is now empty
        path.parent.parent.rmdir()
    except OSError:
        pass


def global_rng_state() -> dict[str, Any]:
    """Python's, NumPy's legacy global and torch's RNG states."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def set_global_rng_state(s: dict[str, Any]) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
