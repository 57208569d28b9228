"""Helpers for the scaling tests: real sweeps in subprocesses, real stores, real signals.

`signal_hook_env` makes a chosen job send itself a real signal at a chosen
episode, and `slow_episodes_env` makes every episode last a while (so a test can
requeue or cancel a job mid-run), through the fault hook of `tests.support.faults`
(a `sitecustomize.py` that wraps `Engine._begin_episode` in whatever process the
launcher starts: loky workers, submitit, Slurm jobs, Ray). The engine itself has
no kill switch; the re-launch simply runs without it.
"""

from __future__ import annotations

import math
from pathlib import Path

from per_exp import contract as C
from tests.support import faults
from tests.support.cli import run_cli
from tests.support.services import free_port  # noqa: F401  (re-exported: tests import it from here)

# Tiny jobs: the point is the plumbing, not the learning.
TINY = ["max_episodes=4", "capacity=500", "sampler=uniform"]


def signal_hook_env(tmp: Path, run_label: str, episode: int, signum: int) -> dict[str, str]:
    """Env for run_cli: job `run_label` sends itself `signum` when it starts episode `episode`."""
    return faults.hook_env(tmp, PER_EXP_TEST_SIGNAL=f"{run_label}:{episode}:{int(signum)}")


def slow_episodes_env(tmp: Path, seconds: float) -> dict[str, str]:
    """Env for run_cli: every episode of every job first sleeps `seconds` (wherever the job runs)."""
    return faults.hook_env(tmp, PER_EXP_TEST_SLOW=str(seconds))


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
