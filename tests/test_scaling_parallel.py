"""Fan-out done right: parallel jobs into a store that does not exist yet, failures isolated."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from per_exp import contract as C
from tests.support.sweeps import TINY, client, histories, jobs_and_parents, out, sweep


@pytest.mark.slow
def test_eight_parallel_jobs_into_a_fresh_store_lose_nothing(tmp_path: Path):
    store = tmp_path / "fresh" / "mlflow.db"  # neither the file nor its folder exists yet
    store.parent.mkdir()
    uri = f"sqlite:///{store}"
    r = sweep(
        [
            "hydra/launcher=joblib",
            "seed=range(8)",
            *TINY,
            "max_episodes=3",
            "tracking.flush_every_episodes=2",
            "tracking.experiment=fanout",
            f"tracking.uri={uri}",
        ],
        tmp_path,
    )
    assert r.returncode == 0, out(r)[-4000:]
    assert "8/8 jobs FINISHED" in r.stderr
    c = client(uri)
    jobs, parents = jobs_and_parents(uri)
    exp = c.get_experiment_by_name("fanout").experiment_id
    assert len(parents) == 1 and len(jobs) == 8
    assert {x.info.experiment_id for x in jobs + parents} == {exp}  # nothing misfiled under Default
    assert all(x.info.status == "FINISHED" for x in jobs + parents)
    pid = parents[0].info.run_id
    assert all(x.data.tags[C.TAG_PARENT] == pid for x in jobs)
    assert sorted(int(x.data.params["seed"]) for x in jobs) == list(range(8))
    assert len({x.data.tags[C.TAG_CONFIG_HASH] for x in jobs}) == 8
    total = 0
    for x in jobs:
        h = histories(uri, x.info.run_id)
        # every per-episode point, exactly once: the job's own episode table is the reference
        local = c.download_artifacts(x.info.run_id, C.ARTIFACT_EPISODES, str(tmp_path / x.info.run_id))
        rows = list(csv.DictReader(io.StringIO(Path(local).read_text())))
        ep = C.EPISODE_COLUMN
        assert [int(row[ep]) for row in rows] == [0, 1, 2]
        expected = {(k, int(row[ep])) for row in rows for k, v in row.items() if k != ep and v != ""}
        series = set(rows[0]) - {ep}
        got = [(k, step) for k, pts in h.items() if k in series for step, _ in pts]
        assert sorted(got) == sorted(expected), x.info.run_name
        # the end-of-run summary: one point per key
        assert all(len(pts) == 1 for k, pts in h.items() if k not in series)
        assert {C.EPISODES, C.TOTAL_ENV_STEPS, C.WALL_SECONDS} <= set(h) - series
        assert len(h[C.EPISODE_STEPS]) == 3
        assert x.data.metrics[C.TOTAL_ENV_STEPS] == sum(v for _, v in h[C.EPISODE_STEPS])
        total += len(got)
    assert total >= 8 * 3 * 6  # at least six per-episode series per job


@pytest.mark.slow
def test_a_failing_job_fails_alone_and_the_sweep_says_which(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = sweep(["hydra/launcher=joblib", "fail_at_episode=1,-1", *TINY, f"tracking.uri={uri}"], tmp_path)
    assert r.returncode != 0
    err = r.stderr
    assert "1/2 jobs FINISHED" in err, err[-3000:]
    # the summary names the failed job by the override that sets it apart, with the error
    assert "\n  fail_at_episode=1: run " in err
    assert "FAILED: RuntimeError: fail_at_episode=1" in err
    jobs, parents = jobs_and_parents(uri)
    by = {x.data.params["fail_at_episode"]: x for x in jobs}
    assert len(jobs) == 2 and len(parents) == 1
    assert {k: x.info.status for k, x in by.items()} == {"-1": "FINISHED", "1": "FAILED"}
    assert "RuntimeError: fail_at_episode=1" in by["1"].data.tags[C.TAG_ERROR]
    assert parents[0].info.status == "FAILED"
    # what the failed job logged before failing is kept
    assert len(client(uri).get_metric_history(by["1"].info.run_id, C.EPISODE_STEPS)) == 1


def test_a_sweep_whose_jobs_share_a_config_hash_is_refused_before_any_run(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = sweep(["tracking.flush_every_episodes=1,2", *TINY, f"tracking.uri={uri}"], tmp_path)
    assert r.returncode == 2
    assert "same config hash" in r.stderr and "tracking.flush_every_episodes=2" in r.stderr
    jobs, parents = jobs_and_parents(uri) if (tmp_path / "mlflow.db").exists() else ([], [])
    assert jobs == [] and parents == []
