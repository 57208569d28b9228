"""Stops that are clean (issue 11, item 4): real signals to one job and to a whole launch.

A deliberate stop ends the stopped runs KILLED and nothing else; it prints one line per run and
the summary once, no traceback; no process of the launch outlives it; re-running resumes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support.census import census, duplicated_points, steps_of
from tests.support.faults import finish, hook_env, start, traceback_lines, wait_for, wait_no_leftovers

pytestmark = pytest.mark.slow

BASE = ["sampler=uniform", "capacity=500", "tracking.flush_every_episodes=1", "checkpoint.every_episodes=1"]


def _summary_count(text: str) -> int:
    return text.count(" jobs FINISHED")


# one launcher job per run: the signalled worker's run ends KILLED, the others finish; grouped (the
# default), two groups of two: the signalled worker's group ends KILLED, the other group finishes
GROUPINGS = {
    "per-run": (["group.enabled=false", "seed=0,1,2"], {"0": "FINISHED", "1": "KILLED", "2": "FINISHED"}),
    "grouped": (
        ["group.max_runs=2", "seed=0,1,2,3"],
        {"0": "KILLED", "1": "KILLED", "2": "FINISHED", "3": "FINISHED"},
    ),
}


@pytest.mark.parametrize("grouping", GROUPINGS)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_one_joblib_worker_kills_its_runs_and_the_others_finish(
    tmp_path: Path, any_store: str, signum, grouping
):
    uri = any_store
    jobs, expected = GROUPINGS[grouping]
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *BASE, *jobs, "max_episodes=6"]
    env = hook_env(tmp_path, PER_EXP_TEST_SIGNAL=f"s1-uniform-dueling:3:{int(signum)}", PER_EXP_TEST_SLOW="0.2")
    log = tmp_path / "sweep.log"
    code = finish(start([*args, f"tracking.uri={uri}"], tmp_path, env, log))
    text = log.read_text()
    assert code == 1, text[-4000:]  # the sweep did not finish every job
    assert traceback_lines(text) == 0, text[-4000:]
    assert _summary_count(text) == 1
    n_killed = list(expected.values()).count("KILLED")
    assert f"{len(expected) - n_killed}/{len(expected)} jobs FINISHED" in text
    for seed, status in expected.items():
        if status == "KILLED":
            killed_lines = [
                line for line in text.splitlines() if f"s{seed}-uniform-dueling" in line and "KILLED" in line
            ]
            assert len(killed_lines) == 1, text[-4000:]
    cen = census(uri)
    status = {r.data.params["seed"]: r.info.status for r in cen.jobs}
    assert status == expected, status
    [parent] = cen.parents
    assert parent.info.status == "FAILED"
    assert wait_no_leftovers(env["PER_EXP_TEST_TAG"]) == []
    # the same command resumes the stopped run into itself
    log2 = tmp_path / "again.log"
    env2 = hook_env(tmp_path)
    assert finish(start([*args, f"tracking.uri={uri}"], tmp_path, env2, log2)) == 0, log2.read_text()[-4000:]
    cen = census(uri)
    assert {r.info.status for r in cen.jobs} == {"FINISHED"} and len(cen.jobs) == len(expected)
    for r in cen.jobs:
        assert steps_of(uri, r.info.run_id) == list(range(6))
        assert duplicated_points(uri, r.info.run_id) == 0
    assert wait_no_leftovers(env2["PER_EXP_TEST_TAG"]) == []


@pytest.mark.parametrize(
    "launcher, to_group, signum",
    [
        ("basic", True, signal.SIGINT),  # Ctrl-C in a terminal: the whole foreground group
        ("joblib", True, signal.SIGINT),
        ("joblib", False, signal.SIGINT),  # `kill -INT <launcher>`: the launcher alone
        ("joblib", False, signal.SIGTERM),  # `kill <launcher>`
    ],
    ids=["basic-ctrl-c", "joblib-ctrl-c", "joblib-int-launcher", "joblib-term-launcher"],
)
def test_stopping_the_launcher_kills_the_in_flight_runs_and_the_parent(tmp_path: Path, launcher, to_group, signum):
    _stop_the_launcher(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", launcher, to_group, signum)


def test_ctrl_c_of_a_joblib_launch_into_a_postgresql_backed_server(tmp_path: Path, mlflow_server):
    _stop_the_launcher(tmp_path, mlflow_server(backend="postgresql", workers=2).url, "joblib", True, signal.SIGINT)


def _stop_the_launcher(tmp_path: Path, uri: str, launcher: str, to_group: bool, signum: int) -> None:
    args = ["-m", f"hydra/launcher={launcher}", *BASE, "seed=0,1,2,3", "max_episodes=30", f"tracking.uri={uri}"]
    if launcher == "joblib":
        args.append("hydra.launcher.n_jobs=2")
    env = hook_env(tmp_path, PER_EXP_TEST_SLOW="0.3")
    log = tmp_path / "sweep.log"
    p = start(args, tmp_path, env, log)
    try:
        wait_for(
            lambda: (
                len([r for r in census(uri).jobs if r.info.status == "RUNNING" and steps_of(uri, r.info.run_id)])
                >= (2 if launcher == "joblib" else 1)
            ),
            300,
            "runs in flight",
        )
        if to_group:
            os.killpg(p.pid, signum)
        else:
            os.kill(p.pid, signum)
        code = finish(p, timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    text = log.read_text()
    assert code == 128 + signum, text[-4000:]
    assert traceback_lines(text) == 0, text[-4000:]
    assert _summary_count(text) == 1, text[-4000:]
    cen = census(uri)
    assert cen.jobs, "no run started"
    assert {r.info.status for r in cen.jobs} == {"KILLED"}, [(r.info.run_name, r.info.status) for r in cen.jobs]
    [parent] = cen.parents
    assert parent.info.status == "KILLED"
    for r in cen.jobs:
        assert [line for line in text.splitlines() if r.info.run_name in line and "KILLED" in line], r.info.run_name
    assert wait_no_leftovers(env["PER_EXP_TEST_TAG"]) == []
    # and a re-run finishes everything, each point once
    log2 = tmp_path / "again.log"
    assert finish(start(args, tmp_path, hook_env(tmp_path), log2)) == 0, log2.read_text()[-4000:]
    cen = census(uri)
    assert len(cen.jobs) == 4 and {r.info.status for r in cen.jobs} == {"FINISHED"}
    assert all(duplicated_points(uri, r.info.run_id) == 0 for r in cen.jobs)


def test_a_normal_joblib_sweep_leaves_no_worker_behind(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = hook_env(tmp_path)
    log = tmp_path / "sweep.log"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *BASE, "seed=0,1", "max_episodes=2"]
    assert finish(start([*args, f"tracking.uri={uri}"], tmp_path, env, log)) == 0, log.read_text()[-3000:]
    assert wait_no_leftovers(env["PER_EXP_TEST_TAG"], seconds=5) == []
