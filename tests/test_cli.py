"""The real command line: bad input fails before any MLflow run; runs and sweeps log what they should."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from per_exp import contract as C
from tests.support.cli import run_cli

TINY = ["max_episodes=4", "capacity=500", "tracking.flush_every_episodes=2"]


def _runs(uri: str):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exps = [e.experiment_id for e in c.search_experiments()]
    return c, (c.search_runs(exps, max_results=1000) if exps else [])


def _assert_no_runs(tmp_path: Path, uri: str) -> None:
    if not (tmp_path / "mlflow.db").exists():
        return
    _, runs = _runs(uri)
    assert runs == []


@pytest.mark.parametrize(
    "args, must_name",
    [
        (["sampler=foo"], ["sampler", "foo", "uniform", "sumtree"]),
        pytest.param(["network=foo"], ["network", "foo", "dueling", "mlp"], marks=pytest.mark.slow),
        pytest.param(["env=foo"], ["env", "foo", "cartpole_v0", "cartpole_v1"], marks=pytest.mark.slow),
        pytest.param(["batch_size=0"], ["batch_size", "0", ">= 1"], marks=pytest.mark.slow),
        pytest.param(["capacity=0"], ["capacity", "0", ">= 1"], marks=pytest.mark.slow),
        pytest.param(["capacity=16", "batch_size=32"], ["capacity", "16", "batch_size"], marks=pytest.mark.slow),
        pytest.param(["sampler.alpha=-1"], ["sampler.alpha", "-1", ">= 0"], marks=pytest.mark.slow),
        pytest.param(["gamma=1.5"], ["gamma", "1.5", "[0, 1]"], marks=pytest.mark.slow),
        (["max_episode=3"], ["max_episode", "max_episodes"]),
        (["-m", "seed=0,1", "batch_size=32,0"], ["batch_size", "0", ">= 1"]),
    ],
)
def test_bad_input_fails_before_any_run(tmp_path, store, args, must_name):
    r = run_cli([*args, f"tracking.uri={store}"], cwd=tmp_path, timeout=120)
    assert r.returncode != 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    for word in must_name:
        assert word in out, f"{word!r} not in output:\n{out}"
    _assert_no_runs(tmp_path, store)


@pytest.mark.slow
def test_single_run_logs_params_series_summary_and_artifacts(tmp_path, store):
    r = run_cli([*TINY, "seed=7", "sampler=linear_scan", f"tracking.uri={store}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ep    0" in r.stdout + r.stderr  # progress line
    c, runs = _runs(store)
    runs = [x for x in runs if x.data.tags.get(C.TAG_ROLE) == C.ROLE_JOB]  # the claims registry is bookkeeping
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "s7-linear_scan-dueling"
    p, t, m = run.data.params, run.data.tags, run.data.metrics
    assert p["seed"] == "7" and p["sampler.name"] == "linear_scan" and p["sampler.alpha"] == "0.6"
    assert p["network.name"] == "dueling" and p["env.max_steps"] == "200" and p["target_sync.every"] == "2"
    assert not any(k.startswith("tracking.") for k in p)
    versions = (C.TAG_VERSION_PREFIX + "torch", C.TAG_VERSION_PREFIX + "mlflow")
    for tag in (C.TAG_GIT_COMMIT, C.TAG_GIT_DIRTY, C.TAG_OVERRIDES, *versions, C.TAG_CONFIG_HASH):
        assert t.get(tag), tag
    assert "seed=7" in t[C.TAG_OVERRIDES]
    # one point per episode, step = episode
    for key in (C.EPISODE_STEPS, C.EPISODE_EPSILON, C.TRAIN_LOSS, C.TRAIN_TD_ABS_MEAN, C.EPISODE_RETURN):
        hist = c.get_metric_history(run.info.run_id, key)
        assert sorted(h.step for h in hist) == [0, 1, 2, 3][4 - len(hist) :], key
    steps = sorted(c.get_metric_history(run.info.run_id, C.EPISODE_STEPS), key=lambda h: h.step)
    assert len(steps) == 4
    assert m[C.EPISODES] == 4 and m[C.SOLVED] == 0.0 and C.SOLVED_EPISODE not in m
    assert m[C.TOTAL_ENV_STEPS] == sum(h.value for h in steps)
    assert m[C.WALL_SECONDS] > 0 and m[C.SPS] > 0
    arts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {C.ARTIFACT_CONFIG, C.ARTIFACT_EPISODES, C.ARTIFACT_HYDRA_DIR, C.ARTIFACT_MODEL_DIR} <= arts
    hydra_files = {Path(a.path).name for a in c.list_artifacts(run.info.run_id, C.ARTIFACT_HYDRA_DIR)}
    assert {"config.yaml", "overrides.yaml", "hydra.yaml"} <= hydra_files
    local = c.download_artifacts(run.info.run_id, C.ARTIFACT_EPISODES, str(tmp_path / "dl"))
    rows = list(csv.DictReader(io.StringIO(Path(local).read_text())))
    assert [float(r[C.EPISODE_STEPS]) for r in rows] == [h.value for h in steps]


@pytest.mark.slow
def test_sweep_makes_parent_and_children(tmp_path, store):
    r = run_cli(["-m", "sampler=uniform,sumtree", "seed=0,1", *TINY, f"tracking.uri={store}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    c, runs = _runs(store)
    parents = [x for x in runs if x.data.tags.get(C.TAG_ROLE) == C.ROLE_SWEEP]
    children = [x for x in runs if x.data.tags.get(C.TAG_ROLE) == C.ROLE_JOB]
    assert len(parents) == 1 and len(children) == 4
    pid = parents[0].info.run_id
    assert parents[0].info.status == "FINISHED"
    assert all(x.data.tags[C.TAG_PARENT] == pid for x in children)
    assert all(x.info.status == "FINISHED" for x in children)
    assert {x.info.experiment_id for x in runs} == {c.get_experiment_by_name("per-cartpole").experiment_id}
    assert sorted(x.info.run_name for x in children) == [
        "s0-sumtree-dueling",
        "s0-uniform-dueling",
        "s1-sumtree-dueling",
        "s1-uniform-dueling",
    ]
    for x in children:
        assert len(c.get_metric_history(x.info.run_id, C.EPISODE_STEPS)) == 4


@pytest.mark.slow
def test_a_failing_job_is_failed_and_the_others_finish(tmp_path, store):
    r = run_cli(["-m", "fail_at_episode=-1,2", *TINY, f"tracking.uri={store}"], cwd=tmp_path)
    assert r.returncode != 0
    assert "1/2 jobs FINISHED" in r.stderr
    c, runs = _runs(store)
    jobs = {x.data.params["fail_at_episode"]: x for x in runs if x.data.tags.get(C.TAG_ROLE) == C.ROLE_JOB}
    assert jobs["-1"].info.status == "FINISHED"
    failed = jobs["2"]
    assert failed.info.status == "FAILED"
    assert "fail_at_episode" in failed.data.tags[C.TAG_ERROR]
    # what it logged before failing is kept
    assert len(c.get_metric_history(failed.info.run_id, C.EPISODE_STEPS)) == 2
    parent = next(x for x in runs if x.data.tags.get(C.TAG_ROLE) == C.ROLE_SWEEP)
    assert parent.info.status == "FAILED"
