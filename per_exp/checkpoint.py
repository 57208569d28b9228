"""Job checkpoints on disk: where they live, atomic writes, refusal of anything but data, RNG states.

A checkpoint is one file per experiment and config hash,
`<root>/<experiment id>/<hash>/checkpoint.zip`.
Keying by hash rather than by Hydra's (timestamped) sweep folder is what
lets a re-launch of the same command find the work of the killed one.

The folder may be shared (a network file system every node and every member
of a group can write), so a checkpoint is read as data only: the file is a
`per_exp.codec` container (JSON + NumPy `.npy` entries, no pickle), and a
file that is not a valid one of the current format version is never
executed, never half-loaded: it is refused with one log line and renamed
aside (`checkpoint.zip.refused-<UTC time>-<pid>`, kept as evidence), and the
job starts its run over from episode 0. `checkpoint.pt`, the format-1 file
of earlier versions, is a torch pickle: it is refused the same way, unread.
"""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from per_exp import codec

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 1: checkpoint.pt, a torch pickle (never loaded since 2)
FILE_NAME = "checkpoint.zip"
LEGACY_FILE_NAME = "checkpoint.pt"
REFUSED_INFIX = ".refused-"


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
    """Write-then-rename, so a kill mid-write leaves the previous checkpoint intact.

    Raises codec.UnsupportedValue (naming the offending entry) if the payload
    holds anything but data; the previous checkpoint then stays.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            codec.dump({"format_version": FORMAT_VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # the rename itself survives a crash of the node


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not sync directories; the rename is still atomic
    finally:
        os.close(fd)


def load_checked(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the checkpoint at `path` or None, why a file there was refused or None).

    A refused file is moved aside (`refuse`) so that the run restarts from episode 0 in place
    instead of failing the same way at every launch; the reason goes on the run.
    """
    legacy = path.with_name(LEGACY_FILE_NAME)
    why: str | None = None
    if legacy.exists() or legacy.is_symlink():
        why = f"format 1 ({LEGACY_FILE_NAME}) is a pickle, which can run code on load: never read"
        refuse(legacy, why)
    if not (path.exists() or path.is_symlink()):
        return None, why
    try:
        with open(path, "rb") as f:
            data = codec.load(f)  # every failure of the file's content comes out as NotAStateFile
    except codec.NotAStateFile as e:
        refuse(path, str(e))
        return None, str(e)
    except OSError as e:  # not ours to judge (permissions, a folder, I/O): leave it where it is
        log.warning("cannot open checkpoint %s (%s: %s): the run starts over", path, type(e).__name__, e)
        return None, f"cannot open it ({type(e).__name__}: {e})"
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != FORMAT_VERSION:
        why = f"format version {version!r}, this code reads {FORMAT_VERSION}"
        refuse(path, why)
        return None, why
    return data, None


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None if there is none or it was refused (and moved aside)."""
    return load_checked(path)[0]


def refuse(path: Path, reason: str) -> Path | None:
    """Log one line and rename `path` aside (never delete: it may be evidence); returns where it went."""
    reason = " ".join(reason.split())[:300]  # one line, whatever the file made the message say
    aside = path.with_name(f"{path.name}{REFUSED_INFIX}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None  # another job refused it first
    except OSError as e:
        log.warning("refused checkpoint %s: %s; could not move it aside (%s); nothing in it was run", path, reason, e)
        return None
    log.warning("refused checkpoint %s: %s; moved aside to %s; nothing in it was run", path, reason, aside.name)
    return aside


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
