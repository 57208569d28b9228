"""Who holds a claim: this process's identity, and whether a recorded owner still lives.

An owner is a process, named so that another process can later tell whether
it still runs: host name, the kernel's boot id, pid and the pid's start time
(a pid reused after the owner died has another start time; after a reboot
every pid is another process). Under Slurm the job (array task) id is part of
the identity: a requeued job (same id, higher SLURM_RESTART_COUNT) is the
same piece of work coming back, so it may take its claims over at once.

Only the local probe has side effects (it reads /proc and sends signal 0);
`local_state` and `requeued_from` are plain functions of two owners.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from per_exp import slurm

State = Literal["alive", "dead", "unknown"]
ALIVE: State = "alive"
DEAD: State = "dead"
UNKNOWN: State = "unknown"


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str  # the pid's start time in clock ticks since boot (/proc/<pid>/stat, field 22); "" unknown
    boot: str  # /proc/sys/kernel/random/boot_id; "" unknown
    slurm_job: str = ""  # "<array job>_<task>" or the job id; "" outside Slurm
    slurm_restart: int = 0  # SLURM_RESTART_COUNT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Owner:
        return cls(
            host=str(d.get("host", "")),
            pid=int(d.get("pid", 0)),
            started=str(d.get("started", "")),
            boot=str(d.get("boot", "")),
            slurm_job=str(d.get("slurm_job", "")),
            slurm_restart=int(d.get("slurm_restart", 0)),
        )

    def describe(self) -> str:
        where = f"pid {self.pid} on {self.host}"
        if self.slurm_job:
            return f"Slurm job {self.slurm_job} (restart {self.slurm_restart}), {where}"
        return where

    def same_process(self, other: Owner) -> bool:
        return (self.host, self.boot, self.pid, self.started) == (other.host, other.boot, other.pid, other.started)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str:
    """Start time of `pid` in clock ticks since boot, "" if there is no such process (or no /proc)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return ""
    # the command name (field 2) may hold spaces and parentheses: count fields after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def this_process() -> Owner:
    env = dict(os.environ)
    restart = env.get("SLURM_RESTART_COUNT", "0")
    return Owner(
        host=socket.gethostname(),
        pid=os.getpid(),
        started=process_start(os.getpid()),
        boot=_read("/proc/sys/kernel/random/boot_id"),
        slurm_job=slurm.job_id(env) or "",
        slurm_restart=int(restart) if restart.isdigit() else 0,
    )


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def probe(owner: Owner) -> tuple[bool, str]:
    """(does `owner.pid` run here now, its start time): the only look at this machine's processes."""
    return _pid_exists(owner.pid), process_start(owner.pid)


def requeued_from(old: Owner, here: Owner) -> bool:
    """`here` is a later incarnation of `old`'s Slurm job: Slurm ended `old` before requeueing it."""
    return bool(old.slurm_job) and old.slurm_job == here.slurm_job and here.slurm_restart > old.slurm_restart


def local_state(old: Owner, here: Owner, look: Callable[[Owner], tuple[bool, str]] = probe) -> State:
    """Whether `old` is alive, seen from `here`, without the store: only possible on the same host.

    ALIVE or DEAD when `old` ran on this host (same name and boot id), UNKNOWN elsewhere: then
    only its heartbeat can tell. `look` is `probe` (tests pass a stand-in).
    """
    if requeued_from(old, here):
        return DEAD
    if old.host != here.host:
        return UNKNOWN
    if old.boot and here.boot and old.boot != here.boot:
        return DEAD  # the machine rebooted since: every process of that boot is gone
    if old.same_process(here):
        return ALIVE
    exists, started = look(old)
    if not exists:
        return DEAD
    if old.started and started and old.started != started:
        return DEAD  # the pid was reused by another process
    return ALIVE
