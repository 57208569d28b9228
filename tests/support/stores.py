"""Real MLflow stores for the analysis tests (no mocks).

``build_store`` writes runs with the real ``MlflowClient`` into a sqlite store
in a temp folder, following the trainer's conventions (issue 5 / DESIGN.md):
a sweep parent run (tag ``per_exp.role=sweep``), job children with
``mlflow.parentRunId`` and ``per_exp.sweep_id``, flattened string params,
per-episode metrics at ``step=episode`` logged with ``log_batch``, summary
metrics at step 0, an ``episodes.csv`` artifact, and optionally one FAILED
run. ``run_real_sweep`` runs the real trainer in a subprocess instead. The
session-wide stores built from these are fixtures in ``tests/conftest.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from per_exp import contract as C

EXPERIMENT = "per-cartpole-test"
PER_EPISODE = [
    C.EPISODE_STEPS,
    C.EPISODE_RETURN,
    C.EPISODE_EPSILON,
    C.TRAIN_LOSS,
    C.TRAIN_TD_ABS_MEAN,
    C.TRAIN_BETA,
    C.PERF_SPS,
]
REPO = Path(__file__).resolve().parents[2]


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def new_store(tmp: Path, experiment: str = EXPERIMENT):
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = _client(uri)
    eid = client.create_experiment(experiment, artifact_location=(tmp / "mlruns").as_uri())
    return uri, client, eid


def synthetic_lengths(rng, speed: float, max_episodes: int, consecutive: int = 10, success: int = 196):
    """A noisy rising curve of episode lengths; stops when the solve rule fires."""
    lengths = []
    streak = 0
    for ep in range(max_episodes):
        level = 206 / (1 + np.exp(-(ep - speed) / (speed / 5 + 1)))
        n = int(np.clip(level + rng.normal(0, 4), 8, 200))
        lengths.append(n)
        streak = streak + 1 if n >= success else 0
        if streak >= consecutive:
            return lengths, ep
    return lengths, None


def job_overrides(params: dict) -> str:
    """The ``hydra.overrides`` tag a real job would carry for these params: the keys that differ from
    BASE_PARAMS, and the seed, space-separated (config groups named by their group: ``sampler=sumtree``)."""
    parts = []
    for k, v in params.items():
        if k == C.PARAM_SEED or v != BASE_PARAMS.get(k):
            parts.append(f"{k[: -len('.name')] if k.endswith('.name') else k}={v}")
    return " ".join(parts)


def log_job(
    client,
    eid,
    params: dict,
    lengths,
    solved_ep,
    parent_id=None,
    status="FINISHED",
    csv=True,
    metrics=True,
    tmp: Path | None = None,
    columns: dict | None = None,
    summary_extra: dict | None = None,
):
    """One job run. `columns`: per-episode series to add to (or replace in) its episodes.csv;
    `summary_extra`: summary metrics to add or replace."""
    from mlflow.entities import Metric, Param

    name = f"{params['sampler.name']}-{params['network.name']}-s{params['seed']}"
    tags = {
        C.TAG_ROLE: C.ROLE_JOB,
        C.TAG_GIT_COMMIT: "0" * 40,
        C.TAG_GIT_DIRTY: "false",
        C.TAG_OVERRIDES: job_overrides(params),
    }
    h = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    tags[C.TAG_CONFIG_HASH] = h
    if parent_id:
        tags[C.TAG_PARENT] = parent_id
        tags[C.TAG_SWEEP_ID] = parent_id
    run = client.create_run(eid, run_name=name, tags=tags)
    rid = run.info.run_id
    ts = int(time.time() * 1000)
    plist = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(plist), 100):
        client.log_batch(rid, params=plist[i : i + 100])
    n = len(lengths)
    table = pd.DataFrame({C.EPISODE_COLUMN: np.arange(n)})
    table[C.EPISODE_STEPS] = lengths
    table[C.EPISODE_RETURN] = [1.0 if x >= 196 else -1.0 for x in lengths]
    table[C.EPISODE_EPSILON] = 0.5 / (np.arange(n) + 1)
    table[C.TRAIN_LOSS] = np.linspace(1, 0.1, n)
    table[C.TRAIN_TD_ABS_MEAN] = np.linspace(2, 0.2, n)
    table[C.TRAIN_BETA] = np.linspace(0.4, 1.0, n)
    table[C.PERF_SPS] = 1000.0 + np.arange(n)
    for k, v in (columns or {}).items():
        table[k] = v
    if metrics:
        ms = [Metric(k, float(table.at[i, k]), ts, int(i)) for i in range(n) for k in PER_EPISODE]
        for i in range(0, len(ms), 1000):
            client.log_batch(rid, metrics=ms[i : i + 1000])
    total = int(np.sum(lengths))
    summary = {
        C.SOLVED: 1.0 if solved_ep is not None else 0.0,
        C.EPISODES: float(n),
        C.TOTAL_ENV_STEPS: float(total),
        C.WALL_SECONDS: total / 1000.0,
        C.SPS: 1000.0,
        **(summary_extra or {}),
    }
    if solved_ep is not None:
        summary[C.SOLVED_EPISODE] = float(solved_ep)
    if status == "FINISHED" or metrics:
        client.log_batch(rid, metrics=[Metric(k, v, ts, 0) for k, v in summary.items()])
    if csv:
        d = (tmp or Path(".")) / f"csv-{rid}"
        d.mkdir(parents=True, exist_ok=True)
        table.to_csv(d / C.ARTIFACT_EPISODES, index=False)
        client.log_artifact(rid, str(d / C.ARTIFACT_EPISODES))
    client.set_terminated(rid, status=status)
    return rid, table


BASE_PARAMS = {
    "sampler.name": "uniform",
    "sampler.alpha": "0.0",
    "sampler.refresh": "sampled",
    "network.name": "dueling",
    "env.name": "cartpole_v0",
    "env.max_steps": "200",
    "max_episodes": "120",
    "batch_size": "32",
    "warmup_episodes": "0",
    "target_sync.every": "2",
    "target_sync.unit": "episodes",
    "lr": "0.0001",
    "log_every_episodes": "10",
}


def build_store(
    tmp: Path,
    samplers=("uniform", "sumtree"),
    warmups=("0",),
    seeds=range(4),
    failed=True,
    max_episodes=120,
    experiment=EXPERIMENT,
    unsolved_seed=None,
):
    """A sweep store. ``unsolved_seed``: that seed of the first sampler never solves."""
    uri, client, eid = new_store(tmp, experiment)
    parent = client.create_run(eid, run_name="sweep-test", tags={C.TAG_ROLE: C.ROLE_SWEEP})
    pid = parent.info.run_id
    rng = np.random.default_rng(0)
    jobs = {}
    speeds = {"uniform": 50, "linear_scan": 60, "sumtree": 35, "rank": 40}
    for s in samplers:
        for w in warmups:
            for seed in seeds:
                params = dict(
                    BASE_PARAMS,
                    **{
                        "sampler.name": s,
                        "sampler.alpha": "0.0" if s == "uniform" else "0.6",
                        "warmup_episodes": w,
                        "seed": str(seed),
                        "max_episodes": str(max_episodes),
                    },
                )
                speed = speeds.get(s, 45) + 10 * (int(w) > 0)
                if unsolved_seed is not None and s == samplers[0] and seed == unsolved_seed:
                    speed = 10 * max_episodes
                lengths, solved_ep = synthetic_lengths(rng, speed, max_episodes)
                rid, table = log_job(client, eid, params, lengths, solved_ep, parent_id=pid, tmp=tmp)
                jobs[rid] = {"params": params, "table": table, "solved_ep": solved_ep}
    failed_id = None
    if failed:
        params = dict(BASE_PARAMS, **{"sampler.name": samplers[0], "seed": "99", "max_episodes": str(max_episodes)})
        lengths, _ = synthetic_lengths(rng, 50, 7)
        failed_id, _ = log_job(client, eid, params, lengths[:7], None, parent_id=pid, status="FAILED", tmp=tmp)
    client.set_terminated(pid)
    return {
        "uri": uri,
        "experiment": experiment,
        "experiment_id": eid,
        "parent": pid,
        "jobs": jobs,
        "failed": failed_id,
        "tmp": tmp,
    }


def _report_cmd(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    return dict(args=[sys.executable, "-m", "analysis.report", *args], cwd=cwd, env=env, text=True)


def run_report(args, cwd, timeout=300):
    """``python -m analysis.report ARGS`` in a subprocess."""
    return subprocess.run(**_report_cmd(args, cwd), capture_output=True, timeout=timeout)


def run_reports(arg_lists, cwd, timeout=300):
    """Several ``python -m analysis.report`` at once; returns [(returncode, stdout, stderr)]."""
    procs = [subprocess.Popen(**_report_cmd(a, cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in arg_lists]
    out = []
    for p in procs:
        so, se = p.communicate(timeout=timeout)
        out.append((p.returncode, so, se))
    return out


def run_real_sweep(tmp: Path, overrides, timeout=600):
    """The real trainer: a tiny Hydra multirun into a sqlite store under tmp."""
    cmd = [
        sys.executable,
        "-m",
        "per_exp.train",
        "-m",
        *overrides,
        f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
        f"hydra.sweep.dir={tmp / 'multirun'}",
        f"hydra.run.dir={tmp / 'out'}",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
