"""Idempotent, resumable sweeps: skip what is FINISHED, resume what was killed into the same run."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from per_exp import checkpoint, codec
from per_exp import contract as C
from per_exp.engine.trainer import Engine, RunSpec, run_one
from tests.support.cli import compose, run_cli
from tests.support.sweeps import (
    client,
    histories,
    jobs_and_parents,
    out,
    same_series,
    signal_hook_env,
    sweep,
)


def _deterministic(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in C.CLOCK_METRICS}


def _plain(x) -> bool:
    """Arrays, numbers, strings, lists and dicts only: a checkpoint needs no pickled objects."""
    if isinstance(x, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_plain(v) for v in x)
    return x is None or isinstance(x, (bool, int, float, str, np.ndarray))


@pytest.mark.parametrize(
    "overrides",
    [
        ["sampler=sumtree"],
        ["experiment=seed_notebook", "warmup_episodes=3"],  # linear scan, full refresh, warm-up sampler
        ["sampler=rank", "sampler.weight_norm=buffer"],
    ],
)
def test_run_state_round_trip_continues_exactly_alone_or_in_a_group(overrides):
    cfg = compose([*overrides, "max_episodes=9", "capacity=300", "checkpoint.every_episodes=4"])
    ref: list = []
    run_one(cfg, on_episode=lambda e, m: ref.append((e, _deterministic(m))))
    blob: dict = {}

    def grab(state: dict) -> None:
        if state["counters"]["episode"] == 4:
            assert _plain(state)
            blob["state"] = codec.dumps(state)  # through the checkpoint format's bytes, as on disk

    run_one(cfg, on_checkpoint=grab)
    got: list = []
    state = codec.loads(blob["state"])
    s = run_one(cfg, state=state, on_episode=lambda e, m: got.append((e, _deterministic(m))))
    assert got == ref[4:]
    assert s.episodes == 9 and len(s.episode_lengths) == 9
    # the same state resumes inside a group of other runs, entering a slot late: the same series
    others = [RunSpec(compose([*overrides, "max_episodes=3", "capacity=300", f"seed={i}"])) for i in range(1, 4)]
    late: list = []
    resumed = RunSpec(
        cfg,
        state=codec.loads(blob["state"]),
        on_episode=lambda e, m: late.append((e, _deterministic(m))),
    )
    results = Engine([*others, resumed], slots=2).run()
    assert all(r.error is None for r in results)
    assert late == ref[4:]


@pytest.mark.slow
def test_sigkilled_job_resumes_into_its_run_and_matches_an_uninterrupted_one(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "hydra/launcher=joblib",
        "seed=0,1,2",
        "sampler=sumtree",
        "max_episodes=6",
        "capacity=500",
        "checkpoint.every_episodes=2",
        "tracking.flush_every_episodes=1",
        f"tracking.uri={uri}",
    ]
    # seed 1 dies by SIGKILL as it starts episode 5: the checkpoint holds episodes 0-3, the store 0-4
    first = sweep(args, tmp_path, env=signal_hook_env(tmp_path, "s1-sumtree-dueling", 5, signal.SIGKILL))
    assert first.returncode != 0, out(first)[-3000:]
    jobs, _ = jobs_and_parents(uri)
    killed = {x.data.params["seed"]: x for x in jobs}["1"]
    assert killed.info.status == "RUNNING"  # nothing ran to mark it: the process just vanished
    assert len(client(uri).get_metric_history(killed.info.run_id, C.EPISODE_STEPS)) == 5
    ckpt_file = checkpoint.path_for(
        tmp_path / "checkpoints", killed.info.experiment_id, killed.data.tags[C.TAG_CONFIG_HASH]
    )
    assert checkpoint.load(ckpt_file)["trainer"]["counters"]["episode"] == 4

    again = sweep(args, tmp_path)  # the same command, without the kill
    assert again.returncode == 0, out(again)[-4000:]
    assert "3/3 jobs FINISHED" in again.stderr
    jobs, parents = jobs_and_parents(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # the first launch's parent, re-opened
    hashes = [x.data.tags[C.TAG_CONFIG_HASH] for x in jobs]
    assert len(jobs) == 3 and len(set(hashes)) == 3  # no duplicate run for any config hash
    assert all(x.info.status == "FINISHED" for x in jobs)
    resumed = {x.data.params["seed"]: x for x in jobs}["1"]
    assert resumed.info.run_id == killed.info.run_id
    assert resumed.data.tags[C.TAG_RESUMES] == "1" and resumed.data.tags[C.TAG_RESUMED_FROM] == "4"
    assert not ckpt_file.exists()  # removed once the run FINISHED

    # the reference: the same job, never interrupted, in this process
    ref: dict[str, list] = {}
    cfg = compose(["seed=1", "sampler=sumtree", "max_episodes=6", "capacity=500"])
    s = run_one(
        cfg, on_episode=lambda e, m: [ref.setdefault(k, []).append((e, v)) for k, v in _deterministic(m).items()]
    )
    h = histories(uri, resumed.info.run_id)
    for key, series in ref.items():
        assert same_series(h[key], series), (key, h[key], series)  # one point per step, same values
    assert resumed.data.metrics[C.TOTAL_ENV_STEPS] == s.total_env_steps
    assert resumed.data.metrics[C.UPDATES] == s.updates and resumed.data.metrics[C.EPISODES] == 6
    assert all(len(h[k]) == 1 for k in (C.TOTAL_ENV_STEPS, C.WALL_SECONDS, C.EPISODES))


@pytest.mark.slow
def test_ctrl_c_kills_the_run_then_resume_skip_and_forced_rerun(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "sampler=uniform",
        "seed=3",
        "max_episodes=5",
        "capacity=500",
        "checkpoint.every_episodes=1",
        f"tracking.uri={uri}",
    ]
    r = run_cli(args, tmp_path, env=signal_hook_env(tmp_path, "s3-uniform-dueling", 2, signal.SIGINT))
    # a deliberate stop: one line, no traceback (the head of stderr says whether the signal hook loaded)
    assert r.returncode == 128 + signal.SIGINT, (r.returncode, r.stderr[:1500], out(r)[-1500:])
    assert "Traceback" not in out(r)
    jobs, _ = jobs_and_parents(uri)
    assert len(jobs) == 1 and jobs[0].info.status == "KILLED"
    assert jobs[0].data.tags[C.TAG_ERROR] == "stopped by SIGINT"
    assert len(client(uri).get_metric_history(jobs[0].info.run_id, C.EPISODE_STEPS)) == 2  # kept

    r = run_cli(args, tmp_path)  # resumes the KILLED run
    assert r.returncode == 0, out(r)[-3000:]
    jobs, _ = jobs_and_parents(uri)
    assert len(jobs) == 1 and jobs[0].info.status == "FINISHED" and C.TAG_ERROR not in jobs[0].data.tags
    assert [s for s, _ in histories(uri, jobs[0].info.run_id)[C.EPISODE_STEPS]] == [0, 1, 2, 3, 4]

    r = run_cli(args, tmp_path)  # already FINISHED: nothing to do
    assert r.returncode == 0 and "skipping s3-uniform-dueling" in out(r)
    assert len(jobs_and_parents(uri)[0]) == 1

    r = run_cli([*args, "rerun=true"], tmp_path)  # forced
    assert r.returncode == 0, out(r)[-3000:]
    jobs, _ = jobs_and_parents(uri)
    assert len(jobs) == 2 and {x.info.status for x in jobs} == {"FINISHED"}
    assert len({x.data.tags[C.TAG_CONFIG_HASH] for x in jobs}) == 1
