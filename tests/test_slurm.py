"""Sweeps through the shipped `hydra/launcher=submitit_slurm` on a real one-node Slurm cluster.

The cluster comes from the `slurm_cluster` fixture (scripts/services/slurm.sh): partition
`main` (default) and `low`, which `main` preempts with PreemptMode=REQUEUE. Jobs run on this
machine, so a SQLite store in the test's folder is reachable from every job.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from per_exp import contract as C
from tests.support.faults import wait_for
from tests.support.sweeps import (
    TINY,
    all_runs,
    histories,
    jobs_and_parents,
    out,
    same_series,
    slow_episodes_env,
    sweep,
)

# Each test runs real sweeps through a real Slurm cluster: a minute or two each.
pytestmark = pytest.mark.slow

SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=10", "hydra.launcher.mem_gb=1"]
# long enough to be interrupted mid-run: 30 episodes of at least 0.4 s each (slow_episodes_env)
LONG = ["max_episodes=30", "capacity=500", "sampler=uniform", "tracking.flush_every_episodes=1"]
# one Slurm job per run: the tests below that say "the job" of a run (grouped sweeps: the last test)
PER_RUN = ["group.enabled=false"]
# no periodic checkpoint within 30 episodes: a resume from episode k > 0 proves one was written on the signal
NO_PERIODIC_CHECKPOINT = ["checkpoint.every_episodes=1000"]


def _env(cluster, *extra: dict) -> dict[str, str]:
    env = dict(cluster.env)
    for e in extra:
        env.update(e)
    return env


def _popen_sweep(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"PYTHONUNBUFFERED": "1"} | env
    return subprocess.Popen(
        [sys.executable, "-m", "per_exp.train", "-m", *args],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _job_run_with_points(cwd: Path, uri: str, n: int, timeout: float = 240, **tags: str):
    """Wait until a job run (with these tag values) holds at least `n` episode points; return it."""
    from mlflow.tracking import MlflowClient

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # the sweep file is written once the launch has created the store: reading before could race its migration
        if any(cwd.glob(f"multirun/*/*/{C.SWEEP_FILE_NAME}")):
            for r in all_runs(uri):
                if r.data.tags.get(C.TAG_ROLE) != C.ROLE_JOB or any(r.data.tags.get(k) != v for k, v in tags.items()):
                    continue
                if len(MlflowClient(tracking_uri=uri).get_metric_history(r.info.run_id, C.EPISODE_STEPS)) >= n:
                    return r
        time.sleep(1)
    raise AssertionError(f"no job run with {n} episode points in {timeout:.0f} s")


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"sweep still running after {timeout:.0f} s:\n{(stdout + stderr)[-4000:]}") from None
    return proc.returncode, stdout + stderr


def _assert_same_as_uninterrupted(tmp_path: Path, uri: str, run_id: str, overrides: list[str]) -> None:
    """The run's series equal an uninterrupted run's of the same config, point by point (clock metrics aside)."""
    ref_uri = f"sqlite:///{tmp_path / 'reference.db'}"
    r = sweep([*overrides, f"tracking.uri={ref_uri}"], tmp_path)
    assert r.returncode == 0, out(r)[-3000:]
    (ref,), _ = jobs_and_parents(ref_uri)
    got, want = histories(uri, run_id), histories(ref_uri, ref.info.run_id)
    assert set(got) == set(want)
    for key in want:
        if key not in C.CLOCK_METRICS and key != C.SPS and not key.endswith("_seconds"):  # clock metrics differ
            assert same_series(got[key], want[key]), f"{key}: {got[key][:5]}... != {want[key][:5]}..."


def test_four_job_sweep_submits_runs_and_logs_under_one_parent(slurm_cluster, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*SLURM, *PER_RUN, "hydra.launcher.partition=main", "seed=0,1,2,3", *TINY, f"tracking.uri={uri}"]
    r = sweep(args, tmp_path, env=_env(slurm_cluster), timeout=600)
    text = out(r)
    assert r.returncode == 0, text[-4000:]
    assert "4/4 jobs FINISHED" in r.stderr and "Slurm: 4/4 jobs COMPLETED" in r.stderr
    # the launching command names each job's Slurm id and log file
    found = re.findall(r"^  (\d+_\d+)  (seed=\d)  log: (\S+)", r.stderr, re.M)
    printed = {seed: (job_id, log) for job_id, seed, log in found}
    assert sorted(printed) == ["seed=0", "seed=1", "seed=2", "seed=3"], r.stderr[-3000:]
    assert all(Path(log).exists() for _, log in printed.values())
    jobs, parents = jobs_and_parents(uri)
    assert len(parents) == 1 and len(jobs) == 4
    assert all(x.info.status == "FINISHED" for x in jobs + parents)
    assert all(x.data.tags[C.TAG_PARENT] == parents[0].info.run_id for x in jobs)
    by_seed = {x.data.params["seed"]: x for x in jobs}
    for seed, (job_id, _) in printed.items():
        assert by_seed[seed.split("=")[1]].data.tags[C.TAG_SLURM_JOB_ID] == job_id
    # partition, time limit and resources reached Slurm as configured. The launcher counts a job
    # done once its result is written; accounting may record the job's end a moment later.
    array_id = next(iter(printed.values()))[0].split("_")[0]

    def all_completed() -> list[str] | None:
        cols = "JobID,Partition,Timelimit,ReqCPUS,ReqMem,State"
        lines = slurm_cluster.run("sacct", "-n", "-X", "-P", "-o", cols, "-j", array_id).stdout.split()
        return lines if len(lines) == 4 and all(x.endswith("|COMPLETED") for x in lines) else None

    lines = wait_for(
        all_completed,
        60,
        f"sacct to record array {array_id}'s 4 jobs COMPLETED",
    )
    assert all(line.split("|")[1:] == ["main", "00:10:00", "1", "1G", "COMPLETED"] for line in lines), lines


# How a running job is sent back to the queue: by Slurm (SIGTERM, then Slurm requeues it), or by
# submitit on the SIGUSR2 that Slurm sends `signal_delay_s` before the time limit (what
# submitit's own test helper `SlurmJob._interrupt(timeout=True)` sends): submitit requeues it.
REQUEUES = {
    "scontrol-requeue": lambda cluster, job_id: cluster.run("scontrol", "requeue", job_id),
    "submitit-usr2": lambda cluster, job_id: cluster.run("scancel", "--signal=USR2", job_id),
}


@pytest.mark.parametrize("how", sorted(REQUEUES))
def test_requeue_mid_run_resumes_the_same_run_from_the_signal_checkpoint(slurm_cluster, tmp_path: Path, how: str):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    science = ["seed=0", *LONG]
    proc = _popen_sweep(
        [*SLURM, *science, *NO_PERIODIC_CHECKPOINT, f"tracking.uri={uri}"],
        tmp_path,
        _env(slurm_cluster, slow_episodes_env(tmp_path, 0.4)),
    )
    try:
        run = _job_run_with_points(tmp_path, uri, 5)
        job_id = run.data.tags[C.TAG_SLURM_JOB_ID]
        assert run.data.tags[C.TAG_SLURM_RESTARTS] == "0"
        REQUEUES[how](slurm_cluster, job_id)
        rc, text = _finish(proc)
    finally:
        proc.kill()
    assert rc == 0, text[-4000:]
    assert "1/1 jobs FINISHED" in text
    (job,), _ = jobs_and_parents(uri)
    tags = job.data.tags
    assert job.info.run_id == run.info.run_id and job.info.status == "FINISHED"
    assert tags[C.TAG_SLURM_JOB_ID] == job_id and tags[C.TAG_SLURM_RESTARTS] == "1"  # the same job, requeued
    assert tags[C.TAG_RESUMES] == "1"
    assert 5 <= int(tags[C.TAG_RESUMED_FROM]) < 30  # the checkpoint written on the signal
    _assert_same_as_uninterrupted(tmp_path, uri, job.info.run_id, science)


def test_preempted_job_checkpoints_requeues_and_continues_its_run(slurm_cluster, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    science = ["seed=1", *LONG]
    proc = _popen_sweep(
        [*SLURM, "hydra.launcher.partition=low", *science, *NO_PERIODIC_CHECKPOINT, f"tracking.uri={uri}"],
        tmp_path,
        _env(slurm_cluster, slow_episodes_env(tmp_path, 0.4)),
    )
    try:
        run = _job_run_with_points(tmp_path, uri, 5)
        cpus = slurm_cluster.run("sinfo", "-h", "-N", "-o", "%c").stdout.split()[0]
        # a `main` job that needs every core preempts the `low` one
        slurm_cluster.run(
            "sbatch", "--wait", "-p", "main", "-c", cpus, "-o", "/dev/null", "--wrap", "sleep 1", timeout=300
        )
        rc, text = _finish(proc)
    finally:
        proc.kill()
    assert rc == 0, text[-4000:]
    (job,), _ = jobs_and_parents(uri)
    tags = job.data.tags
    assert job.info.run_id == run.info.run_id and job.info.status == "FINISHED"
    assert tags[C.TAG_SLURM_RESTARTS] == "1" and tags[C.TAG_RESUMES] == "1"
    assert 5 <= int(tags[C.TAG_RESUMED_FROM]) < 30

    def states() -> list[str]:  # every attempt of the job, oldest first
        jid = tags[C.TAG_SLURM_JOB_ID]
        return slurm_cluster.run("sacct", "-n", "-X", "-D", "-P", "-o", "State", "-j", jid).stdout.split()

    deadline = time.monotonic() + 60  # accounting may record the end a moment after the launcher saw the result
    while states()[-1] != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(1)
    assert states() == ["REQUEUED", "COMPLETED"]  # preempted (and requeued) once, then ran to the end
    _assert_same_as_uninterrupted(tmp_path, uri, job.info.run_id, science)


def test_scancel_ends_the_run_killed_and_the_summary_says_which(slurm_cluster, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _popen_sweep(
        [*SLURM, *PER_RUN, "seed=0,1", *LONG, f"tracking.uri={uri}"],
        tmp_path,
        _env(slurm_cluster, slow_episodes_env(tmp_path, 0.4)),
    )
    try:
        run = _job_run_with_points(tmp_path, uri, 3)
        job_id = run.data.tags[C.TAG_SLURM_JOB_ID]
        slurm_cluster.run("scancel", job_id)
        rc, text = _finish(proc)
    finally:
        proc.kill()
    assert rc != 0
    jobs, _ = jobs_and_parents(uri)
    status = {x.info.run_id: x.info.status for x in jobs}
    assert status.pop(run.info.run_id) == "KILLED" and list(status.values()) == ["FINISHED"]
    assert "1/2 jobs FINISHED" in text
    line = next(x for x in text.splitlines() if run.info.run_id in x and "KILLED" in x)
    assert f"(Slurm job {job_id})" in line and "stopped by SIGTERM" in line, line
    assert re.search(rf"^  {job_id}  seed=\d  CANCELLED", text, re.M), text[-3000:]


def test_a_job_that_raises_fails_alone(slurm_cluster, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = sweep(
        [*SLURM, *PER_RUN, "fail_at_episode=1,-1", *TINY, f"tracking.uri={uri}"],
        tmp_path,
        env=_env(slurm_cluster),
        timeout=600,
    )
    assert r.returncode != 0
    jobs, parents = jobs_and_parents(uri)
    status = {x.data.params["fail_at_episode"]: x.info.status for x in jobs}
    assert status == {"1": "FAILED", "-1": "FINISHED"}
    assert parents[0].info.status == "FAILED"
    assert "1/2 jobs FINISHED" in r.stderr and "failing on purpose" in r.stderr
    assert "fail_at_episode=1  COMPLETED, but the job raised" in r.stderr


def test_a_queue_that_starts_nothing_is_reported_not_waited_on(slurm_cluster, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    start = time.monotonic()
    r = sweep(
        [
            *SLURM,
            *PER_RUN,
            "seed=0,1",
            *TINY,
            f"tracking.uri={uri}",
            "hydra.launcher.queue_timeout_min=0.25",
            "+hydra.launcher.additional_parameters.begin=now+1hour",
        ],
        tmp_path,
        env=_env(slurm_cluster),
        timeout=600,
    )
    assert r.returncode != 0
    assert time.monotonic() - start < 180
    assert "the queue started none of 2 waiting jobs within hydra.launcher.queue_timeout_min=0.25" in r.stderr
    assert r.stderr.count("waiting for: BeginTime") == 2, r.stderr[-3000:]
    ids = re.findall(r"^  (\d+_\d+)  waiting for", r.stderr, re.M)
    left = slurm_cluster.run("squeue", "-h", "-o", "%i %T", "-j", ",".join(ids), check=False).stdout
    assert "PENDING" not in left  # cancelled, not left in the queue
    jobs, _ = jobs_and_parents(uri)
    assert jobs == []


def test_a_grouped_sweep_is_one_slurm_job_per_group_and_a_cancelled_group_resumes(slurm_cluster, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*SLURM, "group.max_runs=2", "seed=0,1,2,3", *LONG, f"tracking.uri={uri}"]
    proc = _popen_sweep(args, tmp_path, _env(slurm_cluster, slow_episodes_env(tmp_path, 0.4)))
    try:
        run = _job_run_with_points(tmp_path, uri, 3)
        job_id = run.data.tags[C.TAG_SLURM_JOB_ID]
        slurm_cluster.run("scancel", job_id)
        rc, text = _finish(proc)
    finally:
        proc.kill()
    assert rc != 0
    # two Slurm jobs, each named by its runs
    found = re.findall(r"^  (\d+_\d+)  (seed=\d, seed=\d)  log: ", text, re.M)
    assert sorted(label for _, label in found) == ["seed=0, seed=1", "seed=2, seed=3"], text[-3000:]
    jobs, _ = jobs_and_parents(uri)
    by_job: dict[str, set[str]] = {}
    for x in jobs:
        by_job.setdefault(x.data.tags[C.TAG_SLURM_JOB_ID], set()).add(x.info.status)
    # the cancelled job's runs ended KILLED together; the other job's runs finished
    assert by_job.pop(job_id) == {"KILLED"} and list(by_job.values()) == [{"FINISHED"}], by_job
    assert "2/4 jobs FINISHED" in text
    # the same command resumes the cancelled group's runs into themselves
    again = sweep(args, tmp_path, env=_env(slurm_cluster), timeout=600)
    assert again.returncode == 0, out(again)[-4000:]
    after, _ = jobs_and_parents(uri)
    assert len(after) == 4 and {x.info.status for x in after} == {"FINISHED"}
    assert run.info.run_id in {x.info.run_id for x in after}
