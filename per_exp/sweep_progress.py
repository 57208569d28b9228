"""A sweep's progress, as the launching process sees it: jobs done out of the total, and an ETA.

The launching process polls the store in a background thread and prints one
line whenever the count changes. Jobs never print progress themselves: with
a parallel launcher their lines would interleave, and only the launching
process knows the whole sweep. The store is the one place every launcher's
jobs report to (a joblib worker, a Slurm node, a Ray actor), so counting
there works the same for all of them.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from per_exp import contract as C

_ENDED = ("FINISHED", "FAILED", "KILLED")


def clock(seconds: float) -> str:
    """0:41, 12:05, 1:02:03."""
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass(frozen=True)
class Progress:
    total: int  # jobs in the sweep
    done: int  # jobs with an ended run: finished before this launch, or ended during it
    failed: int  # of those, ended FAILED or KILLED during this launch
    done_before: int  # jobs already FINISHED when this launch started (they are skipped)
    elapsed: float  # seconds since this launch started

    def eta(self) -> float | None:
        """Seconds left at the rate of the jobs this launch has ended so far; None before the first."""
        ran = self.done - self.done_before
        if ran <= 0 or self.done >= self.total:
            return None
        return self.elapsed / ran * (self.total - self.done)

    def line(self) -> str:
        failed = f" ({self.failed} failed)" if self.failed else ""
        eta = self.eta()
        tail = f" | ETA {clock(eta)}" if eta is not None else ""
        return f"sweep progress: {self.done}/{self.total} jobs done{failed} | {clock(self.elapsed)} elapsed{tail}"


def count(runs: Iterable[Any], hashes: set[str], started_ms: int) -> tuple[int, int]:
    """(jobs of `hashes` whose newest run ended at or after `started_ms`, how many of those did not FINISH)."""
    newest: dict[str, Any] = {}
    for r in runs:
        h = r.data.tags.get(C.TAG_CONFIG_HASH)
        if h in hashes and (h not in newest or (r.info.start_time or 0) > (newest[h].info.start_time or 0)):
            newest[h] = r
    ended = [r for r in newest.values() if r.info.status in _ENDED and (r.info.end_time or 0) >= started_ms]
    return len(ended), sum(r.info.status != "FINISHED" for r in ended)


class ProgressReporter:
    """Polls the store every `interval` seconds and prints a `Progress` line when the count changes."""

    def __init__(
        self,
        client: Any,
        experiment_id: str,
        parent_run_id: str,
        hashes: Iterable[str],
        finished_before: Iterable[str],
        interval: float = 2.0,
        out: TextIO | None = None,
    ):
        self.client = client
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.hashes = set(hashes)
        self.finished_before = set(finished_before) & self.hashes
        self.interval = interval
        self.out = out if out is not None else sys.stderr
        self.started = time.time()
        self._last: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="per_exp-sweep-progress", daemon=True)

    def poll(self) -> Progress:
        """One look at the store: the sweep's job runs (children of its parent), counted by config hash."""
        runs = C.search_runs(self.client, self.experiment_id, C.tag_equals(C.TAG_PARENT, self.parent_run_id))
        ended, failed = count(runs, self.hashes - self.finished_before, int(self.started * 1000))
        return Progress(
            total=len(self.hashes),
            done=len(self.finished_before) + ended,
            failed=failed,
            done_before=len(self.finished_before),
            elapsed=time.time() - self.started,
        )

    def report(self) -> Progress | None:
        """Poll, and print a line if the count changed since the last one printed."""
        p = self.poll()
        if (p.done, p.failed) == self._last:
            return None
        self._last = (p.done, p.failed)
        # one write per line: lines from other processes may come between, never inside
        self.out.write(p.line() + "\n")
        self.out.flush()
        return p

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self.interval):
            try:
                self.report()
                failing = False
            except Exception as e:  # a busy store must not end the sweep; the next poll tries again
                if not failing:  # once per outage: a dead server is the jobs' to report, in one line each
                    self.out.write(f"sweep progress: store not readable this time ({type(e).__name__})\n")
                failing = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
