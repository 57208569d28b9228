"""Launches that coordinate through the store (issue 11, item 1), with real processes.

Each test starts real launches side by side and then counts what the store holds: runs per
config hash, parents, metric points per (key, step), and each run's own hydra/overrides.yaml.
Tests taking `any_store` run twice: on a SQLite file and on an `mlflow server` backed by
PostgreSQL (tests/conftest.py); the others exercise what only a local store can show.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from per_exp import contract as C
from per_exp.claims import Registry
from per_exp.heartbeat import Heartbeat
from per_exp.owner import Owner
from tests.support.census import assert_each_job_trained_once, census, duplicated_points, run_overrides, seed_of
from tests.support.faults import finish, hook_env, start, traceback_lines, wait_for, wait_no_leftovers

pytestmark = pytest.mark.slow

BASE = ["sampler=uniform", "capacity=500", "tracking.flush_every_episodes=2", "checkpoint.every_episodes=2"]


def _existing_store(tmp: Path, uri: str) -> None:
    """A store that already holds another sweep (what 'existing store' means in the issue)."""
    log = tmp / "setup.log"
    p = start(["-m", *BASE, "seed=99", "max_episodes=2", f"tracking.uri={uri}"], tmp, hook_env(tmp), log)
    assert finish(p) == 0, log.read_text()[-3000:]


@pytest.mark.parametrize("fresh", [False, True], ids=["existing-store", "fresh-store"])
def test_the_same_sweep_launched_twice_at_once_trains_each_job_once(tmp_path: Path, any_store: str, fresh: bool):
    uri = any_store
    if not fresh:
        _existing_store(tmp_path, uri)
    args = ["-m", *BASE, "seed=0,1,2,3", "max_episodes=6", f"tracking.uri={uri}"]
    # slow episodes make the two launches overlap whatever the machine's load
    envs = [hook_env(tmp_path, PER_EXP_TEST_SLOW="0.4") for _ in range(2)]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [start(args, tmp_path, e, log) for e, log in zip(envs, logs)]
    codes = [finish(p) for p in procs]
    outs = [log.read_text() for log in logs]
    # 0: every job FINISHED by the end of the launch; 3: some were held by the other, live launch
    assert set(codes) <= {0, 3}, (codes, outs[0][-3000:], outs[1][-3000:])
    assert any("held by" in o for o in outs), "the launches did not overlap on any job"
    assert not any(traceback_lines(o) for o in outs)
    assert_each_job_trained_once(uri, {0, 1, 2, 3}, 6)
    cen = census(uri)
    sweep_parents = [p for p in cen.parents if "seed=0,1,2,3" in p.data.tags.get(C.TAG_OVERRIDES, "")]
    assert len(sweep_parents) == 1  # one sweep, one parent, whichever launch made it
    assert sweep_parents[0].info.status == "FINISHED"
    assert len(cen.registries) == 1
    for e in envs:
        assert wait_no_leftovers(e["PER_EXP_TEST_TAG"]) == []


def test_two_different_sweeps_in_the_same_second_keep_their_own_runs_folders_and_parents(
    tmp_path: Path, any_store: str
):
    uri = any_store
    _existing_store(tmp_path, uri)
    same_second = "2026-12-01 10:00:00"  # Hydra's ${now:...} in both launches: the sweep folders' timestamp
    sweeps = {"a": "seed=0,1", "b": "seed=2,3"}
    envs = {k: hook_env(tmp_path, PER_EXP_TEST_NOW=same_second, PER_EXP_TEST_SLOW="0.2") for k in sweeps}
    logs = {k: tmp_path / f"{k}.log" for k in sweeps}
    procs = {
        k: start(["-m", *BASE, s, "max_episodes=4", f"tracking.uri={uri}"], tmp_path, envs[k], logs[k])
        for k, s in sweeps.items()
    }
    codes = {k: finish(p) for k, p in procs.items()}
    assert codes == {"a": 0, "b": 0}, {k: logs[k].read_text()[-3000:] for k in sweeps}
    cen = census(uri)
    parents = {p.data.tags[C.TAG_OVERRIDES]: p for p in cen.parents if "seed=99" not in p.data.tags[C.TAG_OVERRIDES]}
    assert len(parents) == 2
    dirs = {p.data.tags[C.TAG_SWEEP_DIR] for p in parents.values()}
    assert len(dirs) == 2  # one folder per launch, although both were started in the same second
    assert all("10-00-00" in d for d in dirs)
    for over, parent in parents.items():
        want = {int(s) for s in re.search(r"seed=([\d,]+)", over).group(1).split(",")}
        children = [r for r in cen.jobs if r.data.tags[C.TAG_PARENT] == parent.info.run_id]
        assert {int(r.data.params["seed"]) for r in children} == want
        for r in children:
            assert r.info.status == "FINISHED"
            assert duplicated_points(uri, r.info.run_id) == 0
            assert seed_of(run_overrides(uri, r.info.run_id)) == int(r.data.params["seed"])


def test_a_live_owner_is_not_taken_over_and_the_second_launch_says_so(tmp_path: Path, any_store: str):
    uri = any_store
    args = [*BASE, "seed=5", "max_episodes=12", f"tracking.uri={uri}"]
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start(args, tmp_path, hook_env(tmp_path, PER_EXP_TEST_SLOW="1.0"), first_log)
    try:
        wait_for(lambda: [r for r in census(uri).jobs if r.info.status == "RUNNING"], 240, "the first run")
        second = start(args, tmp_path, hook_env(tmp_path), second_log)
        assert finish(second) == 3, second_log.read_text()[-3000:]
        text = second_log.read_text()
        assert f"held by pid {first.pid} on " in text and "its process runs on this host" in text, text[-3000:]
        assert traceback_lines(text) == 0
        assert first.poll() is None  # untouched
    finally:
        assert finish(first) == 0, first_log.read_text()[-3000:]
    assert_each_job_trained_once(uri, {5}, 12)


def test_a_remote_owner_is_judged_by_its_heartbeat_and_a_requeued_slurm_job_by_its_id(tmp_path: Path):
    """An owner on another host cannot be looked at: fresh heartbeat = held, stale = taken over.
    A requeued Slurm job (same job id, higher restart count) takes its own claim over at once."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        *BASE,
        "seed=6",
        "max_episodes=3",
        f"tracking.uri={uri}",
        "tracking.stale_after_seconds=8",
        "tracking.heartbeat_seconds=2",
    ]
    # a first launch that dies (SIGKILL) after its first episode: a RUNNING run with a checkpoint
    log0 = tmp_path / "0.log"
    p0 = start(args, tmp_path, hook_env(tmp_path, PER_EXP_TEST_SIGNAL=f"s6-uniform-dueling:2:{signal.SIGKILL}"), log0)
    assert finish(p0) == -signal.SIGKILL, log0.read_text()[-3000:]
    [run] = census(uri).jobs
    chash = run.data.tags[C.TAG_CONFIG_HASH]
    c = MlflowClient(uri)
    reg = Registry.open(c, run.info.experiment_id)
    # the hash is now claimed by Slurm job 4242 on another host, alive by its heartbeat (this test beats for it)
    remote = Owner("node-elsewhere", 4242, "1", "other-boot", slurm_job="4242", slurm_restart=0)
    lease = reg.claim(chash, remote, stale_after=0.0).lease
    assert lease is not None
    beat = Heartbeat(reg, lease, every=1.0, give_up_after=60).start()
    try:
        log1 = tmp_path / "1.log"
        p1 = start(args, tmp_path, hook_env(tmp_path, SLURM_JOB_ID="999"), log1)
        assert finish(p1) == 3, log1.read_text()[-3000:]
        assert "held by Slurm job 4242" in log1.read_text()
        # the same Slurm job, requeued: its own earlier claim does not hold it back, fresh heartbeat or not
        log2 = tmp_path / "2.log"
        p2 = start(args, tmp_path, hook_env(tmp_path, SLURM_JOB_ID="4242", SLURM_RESTART_COUNT="1"), log2)
        assert finish(p2) == 0, log2.read_text()[-3000:]
        assert "requeued as this job" in log2.read_text()
    finally:
        beat.stop()
    assert_each_job_trained_once(uri, {6}, 3)

    # a remote claim is held while it beats, and taken over once its heartbeat is older than stale_after_seconds
    args7 = [a.replace("seed=6", "seed=7") for a in args]
    log3 = tmp_path / "3.log"
    p3 = start(args7, tmp_path, hook_env(tmp_path, PER_EXP_TEST_SIGNAL=f"s7-uniform-dueling:2:{signal.SIGKILL}"), log3)
    assert finish(p3) == -signal.SIGKILL
    run7 = next(r for r in census(uri).jobs if r.data.params["seed"] == "7")
    lease7 = reg.claim(run7.data.tags[C.TAG_CONFIG_HASH], Owner("node-elsewhere", 1, "1", "b"), stale_after=0.0).lease
    assert lease7 is not None
    beat = Heartbeat(reg, lease7, every=1.0, give_up_after=60).start()
    try:
        log4 = tmp_path / "4.log"
        assert finish(start(args7, tmp_path, hook_env(tmp_path), log4)) == 3, log4.read_text()[-3000:]
        assert "heartbeat" in log4.read_text()
    finally:
        beat.stop()  # the remote owner goes silent
    time.sleep(9)
    log5 = tmp_path / "5.log"
    assert finish(start(args7, tmp_path, hook_env(tmp_path), log5)) == 0, log5.read_text()[-3000:]
    assert "no heartbeat for" in log5.read_text()
    assert_each_job_trained_once(uri, {6, 7}, 3)


def test_a_shared_explicit_sweep_folder_in_use_is_refused(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = tmp_path / "one-folder"
    la, lb = tmp_path / "a.log", tmp_path / "b.log"
    a = start(
        ["-m", *BASE, "seed=0,1", "max_episodes=8", f"tracking.uri={uri}", f"hydra.sweep.dir={folder}"],
        tmp_path,
        hook_env(tmp_path, PER_EXP_TEST_SLOW="0.5"),
        la,
    )
    try:
        wait_for(lambda: (folder / ".per_exp_sweep.json").exists(), 240, "the first launch's sweep file")
        b = start(
            ["-m", *BASE, "seed=2,3", "max_episodes=8", f"tracking.uri={uri}", f"hydra.sweep.dir={folder}"],
            tmp_path,
            hook_env(tmp_path),
            lb,
        )
        assert finish(b) == 2, lb.read_text()[-3000:]
        err = [line for line in lb.read_text().splitlines() if "hydra.sweep.dir" in line]
        assert len(err) == 1 and "in use by a running launch" in err[0], lb.read_text()[-3000:]
    finally:
        assert finish(a) == 0, la.read_text()[-3000:]
    cen = census(uri)
    assert sorted(int(r.data.params["seed"]) for r in cen.jobs) == [0, 1]
    assert len(cen.parents) == 1


def test_a_failure_in_the_sweep_callback_fails_the_launch_before_any_job(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = tmp_path / "l.log"
    p = start(
        ["-m", *BASE, "seed=0,1", "max_episodes=2", f"tracking.uri={uri}"],
        tmp_path,
        hook_env(tmp_path, PER_EXP_TEST_CALLBACK_FAIL="1"),
        log,
    )
    code = finish(p)
    text = log.read_text()
    assert code not in (0, 2), text[-3000:]  # not a success, and not bad input: the launch failed
    assert "injected failure in the sweep callback" in text
    if (tmp_path / "mlflow.db").exists():
        assert census(uri).jobs == []


def test_a_deleted_claims_registry_stops_a_launch_in_one_line_saying_how_to_restore_it(tmp_path: Path):
    """Attack beyond the issue's table: someone deletes the registry run in the UI."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _existing_store(tmp_path, uri)
    c = MlflowClient(uri)
    [exp] = [e for e in c.search_experiments() if C.EXPERIMENT_TAG_CLAIMS_RUN in e.tags]
    registry_id = exp.tags[C.EXPERIMENT_TAG_CLAIMS_RUN]
    c.delete_run(registry_id)
    before = len(census(uri).jobs)
    for multirun in ([], ["-m"]):
        log = tmp_path / f"deleted{len(multirun)}.log"
        code = finish(
            start(
                [*multirun, *BASE, "seed=5", "max_episodes=2", f"tracking.uri={uri}"], tmp_path, hook_env(tmp_path), log
            )
        )
        text = log.read_text()
        assert code == C.EXIT_FAILED, text[-3000:]
        assert traceback_lines(text) == 0, text[-3000:]
        lines = [x for x in text.splitlines() if f"runs restore --run-id {registry_id}" in x]
        assert len(lines) == 1 and lines[0].startswith("error: "), text[-3000:]
    assert len(census(uri).jobs) == before  # nothing trained
    c.restore_run(registry_id)
    log = tmp_path / "restored.log"
    code = finish(start([*BASE, "seed=5", "max_episodes=2", f"tracking.uri={uri}"], tmp_path, hook_env(tmp_path), log))
    assert code == 0, log.read_text()[-3000:]
