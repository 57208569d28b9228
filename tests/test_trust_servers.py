"""A real database under a real server (issue 11, items 5 and 8).

`mlflow server` backed by PostgreSQL (a throwaway cluster, tests/support/services.py) and by
SQLite: the claim primitive raced by eight processes through several server workers, eight
parallel jobs and two concurrent launches of one sweep, and a server killed for good in the
middle of a job: the job ends within the configured bound, in one line, its checkpoint kept,
and the same command resumes it once a server is back on the same database.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from per_exp import checkpoint
from per_exp import contract as C
from per_exp.claims import Registry
from tests.support import services
from tests.support.census import assert_each_job_trained_once, census, duplicated_points, steps_of
from tests.support.faults import finish, hook_env, start, traceback_lines, wait_for, wait_no_leftovers
from tests.support.races import race

pytestmark = pytest.mark.slow

BASE = ["sampler=uniform", "capacity=500", "tracking.flush_every_episodes=1", "checkpoint.every_episodes=1"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_eight_processes_claiming_one_hash_through_a_server_leave_one_owner(tmp_path: Path, mlflow_server, backend):
    server = mlflow_server(backend=backend, workers=4)  # the writes land on different server processes
    c = MlflowClient(server.url)
    exp = c.create_experiment("claims")
    got, _ = race(server.url, exp, "open", "", 8, tmp_path)
    assert len({g["registry"] for g in got}) == 1
    got, _ = race(server.url, exp, "claim", "abc123", 8, tmp_path)
    winners = [g for g in got if g["won"]]
    assert len(winners) == 1, got
    assert {g["owner_pid"] for g in got} == {winners[0]["pid"]}
    params = c.get_run(Registry.open(c, exp).run_id).data.params
    assert [k for k in params if k.startswith(C.PARAM_LEASE_PREFIX)] == ["lease.abc123.0"]


def test_eight_parallel_jobs_into_a_postgresql_backed_server(tmp_path: Path, mlflow_server):
    server = mlflow_server(backend="postgresql", workers=2)
    env = hook_env(tmp_path)
    log = tmp_path / "sweep.log"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=8", *BASE, "seed=range(8)", "max_episodes=3"]
    code = finish(start([*args, f"tracking.uri={server.url}"], tmp_path, env, log))
    assert code == 0, log.read_text()[-4000:]
    assert "8/8 jobs FINISHED" in log.read_text()
    assert_each_job_trained_once(server.url, set(range(8)), 3)
    cen = census(server.url)
    assert len(cen.parents) == 1 and cen.parents[0].info.status == "FINISHED"
    assert len(cen.registries) == 1
    assert wait_no_leftovers(env["PER_EXP_TEST_TAG"]) == []


def test_two_launches_of_one_sweep_into_a_postgresql_backed_server(tmp_path: Path, mlflow_server):
    server = mlflow_server(backend="postgresql", workers=2)
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *BASE, "seed=0,1,2,3", "max_episodes=5"]
    envs = [hook_env(tmp_path, PER_EXP_TEST_SLOW="0.4") for _ in range(2)]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [start([*args, f"tracking.uri={server.url}"], tmp_path, e, log) for e, log in zip(envs, logs)]
    codes = [finish(p) for p in procs]
    outs = [log.read_text() for log in logs]
    assert set(codes) <= {C.EXIT_OK, C.EXIT_HELD_ELSEWHERE}, (codes, outs[0][-3000:], outs[1][-3000:])
    assert any("held by" in o for o in outs), "the launches did not overlap on any job"
    assert not any(traceback_lines(o) for o in outs)
    assert_each_job_trained_once(server.url, {0, 1, 2, 3}, 5)
    cen = census(server.url)
    assert len(cen.parents) == 1 and cen.parents[0].info.status == "FINISHED"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_server_killed_for_good_ends_the_job_within_the_bound_and_a_rerun_resumes(
    tmp_path: Path, mlflow_server, backend: str
):
    server = mlflow_server(backend=backend)
    bound = 20  # tracking.server_timeout_seconds
    args = [*BASE, "seed=3", "max_episodes=30", f"tracking.server_timeout_seconds={bound}"]
    args += ["tracking.heartbeat_seconds=2", "tracking.stale_after_seconds=60"]
    log = tmp_path / "first.log"
    p = start([*args, f"tracking.uri={server.url}"], tmp_path, hook_env(tmp_path, PER_EXP_TEST_SLOW="0.5"), log)
    try:
        wait_for(
            lambda: any(len(steps_of(server.url, r.info.run_id)) >= 3 for r in census(server.url).jobs),
            300,
            "3 episodes",
        )
        [run] = census(server.url).jobs
        os.killpg(server.proc.pid, signal.SIGKILL)  # the whole server, workers included, for good
        server.proc.wait()
        t0 = time.monotonic()
        code = finish(p, timeout=300)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    text = log.read_text()
    assert code == C.EXIT_FAILED, text[-3000:]
    assert took < bound + 30, took  # the bound, a heartbeat, one episode and the interpreter's exit
    assert traceback_lines(text) == 0, text[-3000:]
    lines = [x for x in text.splitlines() if "stopped answering" in x]
    assert len(lines) == 1 and server.url in lines[0], text[-3000:]
    ckpt = checkpoint.path_for(tmp_path / "checkpoints", run.info.experiment_id, run.data.tags[C.TAG_CONFIG_HASH])
    assert ckpt.exists()  # kept for the resume

    # a server is back on the same database (another port: the store is the database, not the URL)
    with services.start_mlflow_server(tmp_path / "again", server.backend_uri) as back:
        log = tmp_path / "again.log"
        code = finish(start([*args, f"tracking.uri={back.url}"], tmp_path, hook_env(tmp_path), log))
        assert code == 0, log.read_text()[-3000:]
        [done] = census(back.url).jobs
        assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
        assert int(done.data.tags[C.TAG_RESUMED_FROM]) >= 3
        assert steps_of(back.url, run.info.run_id) == list(range(30))
        assert duplicated_points(back.url, run.info.run_id) == 0
