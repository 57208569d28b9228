"""How a job's run ends when training does not: what it was, what is written, the one line said.

| what happened                         | the run            | the claim | said                              |
|---------------------------------------|--------------------|-----------|-----------------------------------|
| a deliberate stop (SIGINT, SIGTERM)   | KILLED             | released  | one line: stopped by <signal>     |
| the store stopped answering           | left as it is      | goes stale| one line: the store, the checkpoint|
| another process took the hash over    | left to that owner | its own   | one line                          |
| a full disk                           | FAILED, if it can  | released  | one line: free space, re-run      |
| refused input found late (a race)     | untouched          | released  | one line, as bad input            |
| anything else (a bug)                 | FAILED, error.txt  | released  | one line; the traceback is raised |

Every write here is best effort: the store or the disk may be what failed, and
a clean-up that fails must not bury the reason under a second traceback.
The checkpoint always stays, so that the next launch resumes the run.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path

from per_exp import contract as C
from per_exp import store
from per_exp.config import ConfigError
from per_exp.heartbeat import LeaseLost

log = logging.getLogger("per_exp")

STOPPED, STORE_LOST, TAKEN_OVER, DISK_FULL, REFUSED, FAILED = (
    "stopped",
    "store_lost",
    "taken_over",
    "disk_full",
    "refused",
    "failed",
)


@dataclass(frozen=True)
class Ending:
    kind: str
    status: str | None  # what the run becomes (KILLED, FAILED); None: leave it alone
    may_write: bool  # the store may be written (the run, the claim)
    error: BaseException
    signum: int | None = None  # the signal of a deliberate stop


def signal_of(e: BaseException) -> int:
    """The signal behind a stop: its `signum` if it says, else a 'signal N' in its message, else SIGINT."""
    n = getattr(e, "signum", None)
    if isinstance(n, int):
        return n
    m = re.search(r"signal (\d+)", str(e))
    return int(m.group(1)) if m else int(signal.SIGINT)


def classify(e: BaseException, stop_signal: int | None = None) -> Ending:
    """What `e` means for the run; `stop_signal` is the stop signal the job had received, if any."""
    if isinstance(e, LeaseLost):
        return Ending(TAKEN_OVER if e.taken_over else STORE_LOST, None, False, e)
    if isinstance(e, KeyboardInterrupt):
        return Ending(STOPPED, "KILLED", True, e, stop_signal or signal_of(e))
    if isinstance(e, ConfigError):
        return Ending(REFUSED, None, True, e)
    if store.is_disk_full(e):
        return Ending(DISK_FULL, "FAILED", True, e)
    if store.is_unreachable(e):
        return Ending(STORE_LOST, None, False, e)
    return Ending(FAILED, "FAILED", True, e)


def _short(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


def stop_reason(ending: Ending, detail: str = "") -> str:
    assert ending.signum is not None
    return f"stopped by {signal.Signals(ending.signum).name}" + (f": {detail}" if detail else "")


def line(ending: Ending, name: str, run_id: str | None, uri: str, ckpt: Path, detail: str = "") -> str:
    """The one line that says what happened and what to do next."""
    who = f"run {name}" + (f" ({run_id})" if run_id else "")
    e = ending.error
    if ending.kind == STOPPED:
        return f"{who} KILLED: {stop_reason(ending, detail)}; re-run the same command to resume it from its checkpoint"
    if ending.kind == STORE_LOST:
        return (
            f"{who}: the tracking store {uri} stopped answering ({_short(e)}); the job ends, the run stays as the "
            f"store has it and its checkpoint is kept ({ckpt}): re-run the same command once the store is back"
        )
    if ending.kind == TAKEN_OVER:
        return f"{who}: {e}"
    if ending.kind == DISK_FULL:
        return (
            f"{who} FAILED: the disk is full ({_short(e)}); the last complete checkpoint is kept: "
            "free some space and re-run the same command to resume it"
        )
    if ending.kind == REFUSED:
        return f"error: {e}"
    return f"{who} ended FAILED: {_short(e)}"


def close_run(ending: Ending, name: str, run, out_dir: Path, uri: str, ckpt: Path, detail: str = "") -> None:
    """Write what may be written about the run (best effort), then say the one line.

    `detail` says more about a stop (Slurm's reason for a SIGTERM: preempted, cancelled...).
    """
    if run is not None and ending.status is not None:
        _record(ending, run, out_dir, detail)
    say = line(ending, name, run.run_id if run is not None else None, uri, ckpt, detail)
    (log.warning if ending.kind == STOPPED else log.error)("%s", say)


def _record(ending: Ending, run, out_dir: Path, detail: str) -> None:
    e = ending.error
    why = stop_reason(ending, detail) if ending.kind == STOPPED else _short(e)
    steps = [
        run.flush,  # keep what was logged so far
        lambda: run.set_tags({C.TAG_ERROR: why[:5000]}),
    ]
    if ending.kind != STOPPED:
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        steps.append(lambda: (out_dir / C.ARTIFACT_ERROR).write_text(text))
        steps.append(lambda: run.log_artifacts({"": out_dir / C.ARTIFACT_ERROR}, {}))
    for step in steps:
        with contextlib.suppress(Exception):
            step()
    try:
        run.end(ending.status)
    except Exception:  # the store (or its disk) is what failed: the next launch recovers the run
        log.warning("run %s could not be marked %s in the store; the next launch resumes it", run.run_id, ending.status)
