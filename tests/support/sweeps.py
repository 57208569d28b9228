"""Helpers for the scaling tests: real sweeps in subprocesses, real stores, real signals.

`signal_hook_env` makes a chosen job send itself a real signal at a chosen
episode, and `slow_episodes_env` makes every episode last a while (so a test can
requeue or cancel a job mid-run), through a `sitecustomize.py` that wraps
`Engine._begin_episode` in whatever process the launcher starts (loky workers,
submitit, Slurm jobs, Ray). The engine itself has no kill switch; the
re-launch simply runs without it.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

from per_exp import contract as C
from tests.support.cli import run_cli
from tests.support.services import free_port  # noqa: F401  (re-exported: tests import it from here)

# Tiny jobs: the point is the plumbing, not the learning.
TINY = ["max_episodes=4", "capacity=500", "sampler=uniform"]

_HOOK = """
import os
from per_exp import contract as C

_spec = os.environ.get("PER_EXP_TEST_SIGNAL")
_sleep = float(os.environ.get("PER_EXP_TEST_EPISODE_SLEEP", "0"))
if _spec or _sleep:
    import signal
    import time
    import per_exp.engine.trainer as _engine

    _orig = _engine.Engine._begin_episode

    if _spec:
        _label, _episode, _signum = _spec.rsplit(":", 2)

    def _begin_episode(self, k):
        if _spec and self.runs[k].spec.label == _label and self.episode[k] == int(_episode):
            if int(_signum) == signal.SIGINT:
                # a terminal's Ctrl-C reaches a foreground process, whose SIGINT raises KeyboardInterrupt; a
                # test suite started as a background job inherits SIGINT ignored (POSIX), and so would this
                signal.signal(signal.SIGINT, signal.default_int_handler)
            os.kill(os.getpid(), int(_signum))
            if int(_signum) not in (signal.SIGTERM, signal.SIGUSR2):
                time.sleep(30)  # the signal lands here (SIGTERM/SIGUSR2 stop at the next episode boundary instead)
        if _sleep:
            time.sleep(_sleep)  # a slow episode, so a test can act mid-run; the computation is unchanged
        return _orig(self, k)

    _engine.Engine._begin_episode = _begin_episode
"""


def _hook_env(tmp: Path, variables: dict[str, str]) -> dict[str, str]:
    hook_dir = tmp / "hook"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(textwrap.dedent(_HOOK))
    path = os.pathsep.join([str(hook_dir), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {"PYTHONPATH": path, **variables}


def signal_hook_env(tmp: Path, run_label: str, episode: int, signum: int) -> dict[str, str]:
    """Env for run_cli: job `run_label` sends itself `signum` when it starts episode `episode`."""
    return _hook_env(tmp, {"PER_EXP_TEST_SIGNAL": f"{run_label}:{episode}:{signum}"})


def slow_episodes_env(tmp: Path, seconds: float) -> dict[str, str]:
    """Env for run_cli: every episode of every job first sleeps `seconds` (wherever the job runs)."""
    return _hook_env(tmp, {"PER_EXP_TEST_EPISODE_SLEEP": str(seconds)})


def sweep(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300):
    return run_cli(["-m", *args], cwd=cwd, timeout=timeout, env=env)


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def all_runs(uri: str) -> list:
    c = client(uri)
    exps = [e.experiment_id for e in c.search_experiments()]
    return c.search_runs(exps, max_results=5000) if exps else []


def jobs_and_parents(uri: str) -> tuple[list, list]:
    runs = all_runs(uri)
    jobs = [r for r in runs if r.data.tags.get(C.TAG_ROLE) == C.ROLE_JOB]
    parents = [r for r in runs if r.data.tags.get(C.TAG_ROLE) == C.ROLE_SWEEP]
    return jobs, parents


def histories(uri: str, run_id: str) -> dict[str, list]:
    """{key: [(step, value)] sorted by step} for every metric of a run, duplicates kept."""
    c = client(uri)
    keys = c.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in c.get_metric_history(run_id, k)) for k in keys}


def same_series(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    return len(a) == len(b) and all(
        sa == sb and (va == vb or (math.isnan(va) and math.isnan(vb))) for (sa, va), (sb, vb) in zip(a, b)
    )


def out(r) -> str:
    return (r.stdout or "") + (r.stderr or "")
