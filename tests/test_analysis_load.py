"""analysis.load on real MLflow sqlite stores (built with MlflowClient, and by the real trainer)."""

import random

import numpy as np
import pandas as pd
import pytest

from analysis.load import LoadError, load_runs
from per_exp import contract as C
from tests.support.stores import BASE_PARAMS, log_job, new_store, synthetic_lengths


def _check_against_mlflow(loaded, uri, k=3, seed=0):
    """Frames hold exactly what MLflow holds, for k runs picked at random."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    picked = random.Random(seed).sample(list(loaded.runs["run_id"]), k)
    for rid in picked:
        run = client.get_run(rid)
        row = loaded.runs.set_index("run_id").loc[rid]
        assert row["run_name"] == run.info.run_name
        assert row["status"] == "FINISHED"
        for key, v in run.data.params.items():
            assert row[f"params.{key}"] == v
        for key, v in run.data.tags.items():
            assert row[f"tags.{key}"] == v
        for key, v in run.data.metrics.items():
            assert row[f"metrics.{key}"] == pytest.approx(v)
        ep = loaded.episodes[loaded.episodes["run_id"] == rid]
        for metric in (C.EPISODE_STEPS, C.EPISODE_RETURN):
            hist = sorted(client.get_metric_history(rid, metric), key=lambda m: m.step)
            mine = ep[ep["metric"] == metric].sort_values("episode")
            assert mine["episode"].tolist() == [m.step for m in hist]
            assert mine["value"].tolist() == pytest.approx([m.value for m in hist])


def test_load_synthetic_sweep_frames(synthetic_store):
    s = synthetic_store
    loaded = load_runs(s["experiment"], tracking_uri=s["uri"], progress=False)
    assert len(loaded.runs) == len(s["jobs"]) == 16
    assert set(loaded.runs["run_id"]) == set(s["jobs"])
    for col in (
        "run_id",
        "run_name",
        "status",
        "params.seed",
        "params.sampler.name",
        f"tags.{C.TAG_CONFIG_HASH}",
        f"metrics.{C.SOLVED}",
        f"metrics.{C.EPISODES}",
        f"metrics.{C.WALL_SECONDS}",
    ):
        assert col in loaded.runs.columns
    assert f"metrics.{C.SOLVED_EPISODE}" in loaded.runs.columns
    assert list(loaded.episodes.columns) == ["run_id", "episode", "metric", "value"]
    expected_rows = sum(len(j["table"]) * (len(j["table"].columns) - 1) for j in s["jobs"].values())
    assert len(loaded.episodes) == expected_rows
    # the FAILED run is left out, with its reason, and never mixed in
    assert loaded.left_out["run_id"].tolist() == [s["failed"]]
    assert loaded.left_out["reason"].iloc[0] == "status FAILED"
    assert s["failed"] not in set(loaded.episodes["run_id"])
    # solved_episode only where solved
    for rid, job in s["jobs"].items():
        row = loaded.runs.set_index("run_id").loc[rid]
        if job["solved_ep"] is None:
            assert row[f"metrics.{C.SOLVED}"] == 0.0 and np.isnan(row[f"metrics.{C.SOLVED_EPISODE}"])
        else:
            assert row[f"metrics.{C.SOLVED_EPISODE}"] == job["solved_ep"]
    _check_against_mlflow(loaded, s["uri"])


def test_load_one_sweep_and_fallbacks(tmp_path):
    uri, client, eid = new_store(tmp_path, "exp")
    rng = np.random.default_rng(1)
    parent = client.create_run(eid, run_name="sweep-a", tags={C.TAG_ROLE: C.ROLE_SWEEP}).info.run_id
    p = dict(BASE_PARAMS, seed="0")
    lengths, solved = synthetic_lengths(rng, 20, 60)
    in_sweep, _ = log_job(client, eid, p, lengths, solved, parent_id=parent, tmp=tmp_path)
    # a run outside the sweep; a run with metric history but no episodes.csv; a run with neither
    lone, _ = log_job(client, eid, dict(p, seed="1"), lengths, solved, tmp=tmp_path)
    no_csv, _ = log_job(client, eid, dict(p, seed="2"), lengths, solved, parent_id=parent, csv=False, tmp=tmp_path)
    empty, _ = log_job(
        client, eid, dict(p, seed="3"), lengths, solved, parent_id=parent, csv=False, metrics=False, tmp=tmp_path
    )
    client.set_terminated(parent)

    loaded = load_runs("exp", sweep=parent, tracking_uri=uri, progress=False)
    assert set(loaded.runs["run_id"]) == {in_sweep, no_csv}
    reasons = loaded.left_out.set_index("run_id")["reason"]
    assert reasons[empty].startswith("no per-episode series")
    assert any("metric history" in n for n in loaded.notes)
    a = loaded.episodes[(loaded.episodes.run_id == in_sweep) & (loaded.episodes.metric == C.EPISODE_STEPS)]
    b = loaded.episodes[(loaded.episodes.run_id == no_csv) & (loaded.episodes.metric == C.EPISODE_STEPS)]
    assert a["value"].tolist() == b["value"].tolist() == [float(x) for x in lengths]

    everything = load_runs("exp", tracking_uri=uri, progress=False)
    assert lone in set(everything.runs["run_id"])
    assert parent not in set(everything.runs["run_id"])  # the sweep parent is bookkeeping


def test_rerun_of_same_config_counts_once(tmp_path):
    uri, client, eid = new_store(tmp_path, "exp")
    rng = np.random.default_rng(2)
    p = dict(BASE_PARAMS, seed="0")
    lengths, solved = synthetic_lengths(rng, 20, 60)
    old, _ = log_job(client, eid, p, lengths, solved, tmp=tmp_path)
    new, _ = log_job(client, eid, p, lengths, solved, tmp=tmp_path)
    loaded = load_runs("exp", tracking_uri=uri, progress=False)
    assert loaded.runs["run_id"].tolist() == [new]
    assert loaded.left_out.set_index("run_id").loc[old, "reason"].startswith("superseded by re-run")


def test_load_errors(tmp_path, synthetic_store):
    s = synthetic_store
    with pytest.raises(LoadError, match="unknown experiment 'nope'"):
        load_runs("nope", tracking_uri=s["uri"], progress=False)
    with pytest.raises(LoadError, match="unknown sweep run id"):
        load_runs(s["experiment"], sweep="0" * 32, tracking_uri=s["uri"], progress=False)
    uri, _, _ = new_store(tmp_path, "empty")
    with pytest.raises(LoadError, match="has no job runs"):
        load_runs("empty", tracking_uri=uri, progress=False)
    with pytest.raises(LoadError, match="no MLflow store"):
        load_runs("x", tracking_uri=f"sqlite:///{tmp_path / 'missing.db'}", progress=False)


@pytest.mark.slow
def test_load_real_trainer_sweep(real_sweep_store):
    s = real_sweep_store
    loaded = load_runs(s["experiment"], tracking_uri=s["uri"], progress=False)
    assert len(loaded.runs) == 4 and loaded.left_out.empty
    assert sorted(loaded.runs["run_name"]) == sorted(
        f"s{b}-{a}-dueling" for a in ("uniform", "sumtree") for b in (0, 1)
    )
    assert loaded.runs["parent_run_id"].nunique() == 1
    assert (loaded.runs[f"tags.{C.TAG_SWEEP_ID}"] == loaded.runs["parent_run_id"]).all()
    steps = loaded.episodes[loaded.episodes["metric"] == C.EPISODE_STEPS]
    assert steps.groupby("run_id")["episode"].apply(list).tolist() == [[0, 1, 2, 3]] * 4
    assert (loaded.runs[f"metrics.{C.EPISODES}"] == 4).all()
    # per run: every metric column of its episodes.csv, every non-empty cell
    assert isinstance(loaded.episodes["value"].iloc[0], float)
    _check_against_mlflow(loaded, s["uri"], k=2, seed=1)
    sweep = loaded.runs["parent_run_id"].iloc[0]
    only = load_runs(s["experiment"], sweep=sweep, tracking_uri=s["uri"], progress=False)
    assert set(only.runs["run_id"]) == set(loaded.runs["run_id"])
    assert isinstance(only.runs, pd.DataFrame)


def test_where_selects_runs_by_param_and_sweeps_combine(tmp_path):
    uri, client, eid = new_store(tmp_path, "exp")
    rng = np.random.default_rng(3)
    parents = [
        client.create_run(eid, run_name=f"sweep-{i}", tags={C.TAG_ROLE: C.ROLE_SWEEP}).info.run_id for i in range(3)
    ]
    ids = {}
    for i, (parent, sampler) in enumerate(zip(parents, ("uniform", "sumtree", "rank"))):
        lengths, solved = synthetic_lengths(rng, 20, 60)
        ids[sampler], _ = log_job(
            client,
            eid,
            dict(BASE_PARAMS, **{"sampler.name": sampler}, seed=str(i)),
            lengths,
            solved,
            parent_id=parent,
            tmp=tmp_path,
        )
    both = load_runs("exp", sweep=parents[:2], tracking_uri=uri, progress=False)
    assert set(both.runs["run_id"]) == {ids["uniform"], ids["sumtree"]} and both.sweep_id is None
    one = load_runs("exp", where=[("sampler.name", "rank")], tracking_uri=uri, progress=False)
    assert one.runs["run_id"].tolist() == [ids["rank"]] and one.n_found == 1
    assert one.rules[ids["rank"]].cap == 120  # read from the run's own max_episodes
    with pytest.raises(LoadError, match=r"no job run in experiment 'exp' matches --where sampler.name=nope \(3 runs"):
        load_runs("exp", where=[("sampler.name", "nope")], tracking_uri=uri, progress=False)


def test_a_run_whose_solve_rule_cannot_be_read_is_left_out_with_the_reason(tmp_path):
    uri, client, eid = new_store(tmp_path, "exp")
    lengths, solved = synthetic_lengths(np.random.default_rng(0), 20, 60)
    good, _ = log_job(client, eid, dict(BASE_PARAMS, seed="0"), lengths, solved, tmp=tmp_path)
    bad, _ = log_job(
        client, eid, dict(BASE_PARAMS, seed="1", **{C.PARAM_SOLVE_RULE: "vibes"}), lengths, solved, tmp=tmp_path
    )
    loaded = load_runs("exp", tracking_uri=uri, progress=False)
    assert loaded.runs["run_id"].tolist() == [good]
    assert loaded.left_out.set_index("run_id").loc[bad, "reason"].startswith("solve rule unreadable: param solve.rule=")
