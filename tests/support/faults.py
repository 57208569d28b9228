"""Faults on purpose, for the trust tests: launches started side by side, real signals, a frozen
clock for Hydra, slow episodes, a disk that fills, a callback that raises; and a census of the
processes a launch left behind.

Everything is injected from outside the code under test, through a `sitecustomize.py` that
every Python process of a launch imports (the launcher, loky/submitit workers), driven by
environment variables:

    PER_EXP_TEST_TAG=<id>             marks every process of a launch (see `leftovers`)
    PER_EXP_TEST_NOW=<Y-m-d H:M:S>    Hydra's ${now:...} resolves to this instant
    PER_EXP_TEST_SLOW=<seconds>       every episode starts with this sleep (a test can act mid-run;
                                      the computation is unchanged)
    PER_EXP_TEST_SIGNAL=<run label>:<episode>:<signum>   the job sends itself a signal
    PER_EXP_TEST_FILL=<run label>:<episode>:<folder>     the job fills the disk of <folder>
    PER_EXP_TEST_CALLBACK_FAIL=1      the sweep callback raises where it makes the sweep's parent run
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from tests.support.cli import ROOT

_HOOK = """
import os

if os.environ.get("PER_EXP_TEST_NOW"):
    import datetime as _dt
    import hydra.core.utils as _hu

    _fixed = _dt.datetime.strptime(os.environ["PER_EXP_TEST_NOW"], "%Y-%m-%d %H:%M:%S")

    class _Frozen(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return _fixed

    _hu.datetime = _Frozen

_slow = float(os.environ.get("PER_EXP_TEST_SLOW", "0") or 0)
_sig = os.environ.get("PER_EXP_TEST_SIGNAL")
_fill = os.environ.get("PER_EXP_TEST_FILL")
if _slow or _sig or _fill:
    import time
    import per_exp.engine.trainer as _tr

    _orig = _tr.Engine._begin_episode

    def _begin_episode(self, k):
        label, episode = self.runs[k].spec.label, int(self.episode[k])
        if _slow:
            time.sleep(_slow)
        if _sig:
            want, ep, signum = _sig.rsplit(":", 2)
            if label == want and episode == int(ep):
                import signal

                if int(signum) == signal.SIGINT:
                    # a terminal's Ctrl-C reaches a foreground process, whose SIGINT raises KeyboardInterrupt;
                    # a test suite started as a background job inherits SIGINT ignored (POSIX), and so would this
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                os.kill(os.getpid(), int(signum))
                if int(signum) not in (signal.SIGTERM, signal.SIGUSR2):
                    time.sleep(30)  # the signal lands here; SIGTERM/SIGUSR2 ask for a stop after the episode
        if _fill:
            want, ep, folder = _fill.split(":", 2)
            if label == want and episode == int(ep):
                with open(os.path.join(folder, "filler"), "wb") as f:
                    try:
                        while True:
                            f.write(b"\\0" * 65536)
                            f.flush()
                    except OSError:
                        pass
        return _orig(self, k)

    _tr.Engine._begin_episode = _begin_episode

if os.environ.get("PER_EXP_TEST_CALLBACK_FAIL"):
    import per_exp.sweep as _sw

    def _parent_run(self, *args, **kw):
        raise RuntimeError("injected failure in the sweep callback (test hook)")

    _sw.MlflowSweepCallback._parent_run = _parent_run
"""


def hook_env(tmp: Path, **variables: str) -> dict[str, str]:
    """Env for a launch: the hook on PYTHONPATH, a fresh PER_EXP_TEST_TAG, and `variables`."""
    hook_dir = tmp / "fault-hook"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(textwrap.dedent(_HOOK))
    path = os.pathsep.join([str(hook_dir), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {"PYTHONPATH": path, "PER_EXP_TEST_TAG": uuid.uuid4().hex, **variables}


def start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """`python -m per_exp.train ARGS` in its own session (so the test can signal its whole group,
    as a terminal's Ctrl-C does), output to `log`."""
    full = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full |= {"PYTHONUNBUFFERED": "1", **env}
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "per_exp.train", *args],
            cwd=cwd,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def finish(proc: subprocess.Popen, timeout: float = 600) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def leftovers(tag: str) -> list[str]:
    """Processes still alive whose environment carries PER_EXP_TEST_TAG=<tag> (pid and command)."""
    needle = f"PER_EXP_TEST_TAG={tag}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{name}/environ").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if needle in env.split(b"\0") and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out.append(f"{name}: {cmd[:200]}")
    return out


def wait_no_leftovers(tag: str, seconds: float = 15) -> list[str]:
    deadline = time.monotonic() + seconds
    left = leftovers(tag)
    while left and time.monotonic() < deadline:
        time.sleep(0.3)
        left = leftovers(tag)
    return left


def wait_for(predicate, seconds: float, what: str, every: float = 0.3):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def traceback_lines(text: str) -> int:
    return text.count("Traceback (most recent call last)")


REPO = ROOT
