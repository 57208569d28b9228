"""Helpers for the scaling tests: real sweeps in subprocesses, real stores, real signals.

`signal_hook_env` makes a chosen job send itself a real signal at a chosen
episode, through a `sitecustomize.py` that wraps `Trainer.run_episode` in
whatever process the launcher starts (loky workers, submitit, Ray). The
trainer code itself has no kill switch; the re-launch simply runs without it.
"""

from __future__ import annotations

import math
import os
import socket
import textwrap
from pathlib import Path

from per_exp import contract as C
from tests.support.cli import run_cli

# Tiny jobs: the point is the plumbing, not the learning.
TINY = ["max_episodes=4", "capacity=500", "sampler=uniform"]

_HOOK = """
import os
from per_exp import contract as C

_spec = os.environ.get("PER_EXP_TEST_SIGNAL")
if _spec:
    _label, _episode, _signum = _spec.rsplit(":", 2)
    import time
    import per_exp.engine.trainer as _loop

    _orig = _loop.Trainer.run_episode

    def _run_episode(self):
        if self.label == _label and self.episode == int(_episode):
            os.kill(os.getpid(), int(_signum))
            time.sleep(30)  # the signal lands here
        return _orig(self)

    _loop.Trainer.run_episode = _run_episode
"""


def signal_hook_env(tmp: Path, run_label: str, episode: int, signum: int) -> dict[str, str]:
    """Env for run_cli: job `run_label` sends itself `signum` when it starts episode `episode`."""
    hook_dir = tmp / "hook"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(textwrap.dedent(_HOOK))
    path = os.pathsep.join([str(hook_dir), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {"PYTHONPATH": path, "PER_EXP_TEST_SIGNAL": f"{run_label}:{episode}:{signum}"}


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def same_series(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    return len(a) == len(b) and all(
        sa == sb and (va == vb or (math.isnan(va) and math.isnan(vb))) for (sa, va), (sb, vb) in zip(a, b)
    )


def out(r) -> str:
    return (r.stdout or "") + (r.stderr or "")
