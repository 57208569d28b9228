"""The processes of a launch: a deliberate stop (SIGINT, SIGTERM) passed on to them, none left behind.

The launcher, on its first SIGINT or SIGTERM, forwards SIGTERM to every
process it started (launcher workers and their children; a job stops at its
next episode boundary, see `per_exp.signals`), waits until their runs have
ended or `grace` seconds have passed, and raises `Stopped` in its main thread.
A terminal's Ctrl-C reaches every process of the launch at once, so a job may
get both signals: `ignored_stops` keeps a second one from cutting its
clean-up short. `reap` ends whatever is still there when the launch exits, so
that no worker (joblib/loky keeps a pool of them) outlives it. Descendants are
found through /proc (Linux); elsewhere there is nothing to forward to or reap.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """A deliberate stop by a signal; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handling(handler: Callable[[int, object], None]) -> Iterator[None]:
    if not _in_main_thread():  # signals reach the main thread only: leave them alone
        yield
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def ignore_further_stops() -> None:
    """From now on (until the enclosing handler is restored) SIGINT and SIGTERM are ignored."""
    if _in_main_thread():
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)


@contextlib.contextmanager
def ignored_stops() -> Iterator[None]:
    """While a run is being closed (KILLED, FAILED), a stop signal must not cut that short."""
    with _handling(lambda signum, frame: None):
        ignore_further_stops()
        yield


def descendants(pid: int | None = None) -> list[int]:
    """Every live process below `pid` (default: this one), children first; [] without /proc."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[0] != "Z":  # a zombie has already ended
            children.setdefault(int(fields[1]), []).append(int(name))
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _signal_all(pids: list[int], signum: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signum)


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    left = pids
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = set(descendants())
        left = [p for p in left if p in alive]
    return left


def _is_resource_tracker(pid: int) -> bool:
    """multiprocessing's or loky's resource tracker: it ignores SIGINT and SIGTERM by design, and
    ends by itself when this process exits (it reads a pipe from it)."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def reap(grace: float = 10.0) -> list[int]:
    """SIGTERM every process this one started, SIGKILL what is left after `grace` s; returns the killed.

    Resource trackers are left to end with this process: killed first, they are relaunched by
    loky's own exit hook, which then prints a warning and tracebacks for every name they lost.
    """
    pids = [p for p in descendants() if not _is_resource_tracker(p)]
    if not pids:
        return []
    _signal_all(pids, signal.SIGTERM)
    left = _wait_gone(pids, grace)
    _signal_all(left, signal.SIGKILL)
    return left


@contextlib.contextmanager
def launch_stops(settled: Callable[[], bool], grace: float, busy: Callable[[], list[int]] = list) -> Iterator[None]:
    """Around a launch: on the first SIGINT/SIGTERM forward SIGTERM to the workers, wait until
    `settled()` (the in-flight runs have ended) or `grace` s, then raise `Stopped` here.

    `busy()` names the workers that hold runs: only they are told, when there are any. An idle
    loky worker dies of a SIGTERM, and loky then terminates the whole pool, busy workers
    included, before they can checkpoint and close their runs (seen with one group job on two
    workers). The idle ones are reaped when the launch ends.
    """

    def handler(signum, frame):
        ignore_further_stops()
        try:
            targets = busy()
        except Exception:  # the store may be what failed: tell every worker
            targets = []
        _signal_all(targets or descendants(), signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                if settled():
                    break
            except Exception:  # the store may be what failed: the deadline bounds the wait
                pass
            time.sleep(0.2)
        raise Stopped(signum)

    with _handling(handler):
        yield


def quick_exit() -> None:
    """End this process now that its work is done and said: exit handlers, flushed output, `os._exit(0)`.

    An ordinary exit then tears down every module torch, numba and MLflow loaded, object by object
    (~1.9 s here, growing with what was imported), and nothing in that teardown is ours to wait for:
    the store has every committed row, the logs are flushed below, and the exit handlers (a sweep's
    parent closed as a safety net, loky's, MLflow's) still run. Only for a clean end: an error or
    a stop leaves through the ordinary exit with its own code. Steps aside (returns) while another
    non-daemon thread runs, because an ordinary exit would wait for it.
    """
    import atexit
    import logging
    import sys

    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return
    # the interpreter's own list of exit handlers; calling it here runs each once, as exit would
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)
