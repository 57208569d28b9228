"""The test services themselves: each one started for real and made to do its job once."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from tests.support.services import request

# Each test starts a real service (and sometimes waits on Slurm's scheduler): tens of seconds.
pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout: float, what: str, poll: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# A batch job like submitit's: the work runs as a step (srun). Each start appends a line with
# Slurm's restart count; each SIGTERM is noted. With `patient`, the first SIGTERM is otherwise
# ignored and the second ends the job: a preempted job that exits by itself within its grace
# time is not requeued by Slurm, so a job that wants to come back waits for the final signal.
_JOB = """#!/bin/bash
srun bash -c 'echo "start restarts=${{SLURM_RESTART_COUNT:-0}} partition=$SLURM_JOB_PARTITION" >> {log}
trap "echo TERM >> {log}; [ -n \\"\\$seen\\" -o {patient} = 0 ] && exit 143; seen=1" TERM
for i in $(seq 1 {seconds}); do sleep 1 & wait $!; done
echo "done" >> {log}'
"""


def _submit(cluster, tmp_path: Path, name: str, seconds: int, *sbatch_args: str, patient: bool = False):
    log = tmp_path / f"{name}.log"
    script = tmp_path / f"{name}.sh"
    script.write_text(_JOB.format(log=log, seconds=seconds, patient=int(patient)))
    jid = cluster.run(
        "sbatch", "--parsable", "-J", name, "-o", str(tmp_path / f"{name}-%j.out"), *sbatch_args, str(script)
    ).stdout.strip()
    return jid, log


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _sacct_states(cluster, jid: str) -> list[str]:
    """Every recorded state of the job, requeued attempts included (-D), oldest first."""
    out = cluster.run("sacct", "-n", "-X", "-D", "-P", "-o", "State", "-j", jid).stdout
    return [s.split()[0] for s in out.split()]


def test_slurm_sbatch_job_runs_and_is_accounted(slurm_cluster, tmp_path: Path):
    out = tmp_path / "hello.out"
    r = slurm_cluster.run(
        "sbatch",
        "--parsable",
        "--wait",
        "-o",
        str(out),
        "--wrap",
        "echo cpus=$SLURM_CPUS_ON_NODE partition=$SLURM_JOB_PARTITION",
        timeout=120,
    )
    jid = r.stdout.strip()
    assert out.read_text().strip() == "cpus=1 partition=main"
    _wait_for(lambda: _sacct_states(slurm_cluster, jid) == ["COMPLETED"], 30, f"sacct to show job {jid} COMPLETED")
    nodes = slurm_cluster.run("sinfo", "-h", "-N", "-o", "%N %c %m %t").stdout.split()
    assert nodes[1] == str(os.cpu_count())  # the machine's real cores


def test_slurm_requeue_restarts_the_same_job(slurm_cluster, tmp_path: Path):
    jid, log = _submit(slurm_cluster, tmp_path, "requeue", 120)
    try:
        _wait_for(lambda: "start restarts=0 partition=main" in _lines(log), 60, "the job to start")
        slurm_cluster.run("scontrol", "requeue", jid)
        _wait_for(lambda: "start restarts=1 partition=main" in _lines(log), 90, "the requeued job to start again")
        assert _lines(log)[:3] == ["start restarts=0 partition=main", "TERM", "start restarts=1 partition=main"]
        assert _sacct_states(slurm_cluster, jid)[0] == "REQUEUED"
    finally:
        slurm_cluster.run("scancel", jid, check=False)


def test_slurm_preemption_requeues_the_low_priority_job(slurm_cluster, tmp_path: Path):
    low, low_log = _submit(slurm_cluster, tmp_path, "low", 300, "-p", "low", patient=True)
    try:
        _wait_for(lambda: "start restarts=0 partition=low" in _lines(low_log), 60, "the low-priority job to start")
        cpus = slurm_cluster.run("sinfo", "-h", "-N", "-o", "%c").stdout.split()[0]
        # a job in the default partition that needs every core: it can only run by preempting `low`
        high_out = tmp_path / "high.out"
        slurm_cluster.run(
            "sbatch",
            "--parsable",
            "--wait",
            "-c",
            cpus,
            "-o",
            str(high_out),
            "--wrap",
            f"squeue -h -j {low} -o %T",
            timeout=240,
        )
        assert _lines(low_log)[:2] == ["start restarts=0 partition=low", "TERM"]  # told at preemption
        assert high_out.read_text().strip() == "PENDING"  # back in the queue while the high job ran
        _wait_for(lambda: "start restarts=1 partition=low" in _lines(low_log), 120, "the preempted job to restart")
        assert _sacct_states(slurm_cluster, low)[0] == "PREEMPTED"
    finally:
        slurm_cluster.run("scancel", low, check=False)


def test_mlflow_run_through_a_postgresql_backed_server(mlflow_server, postgres):
    import psycopg
    from mlflow.tracking import MlflowClient

    server = mlflow_server(backend="postgresql")
    assert server.backend_uri.startswith("postgresql://")
    c = MlflowClient(tracking_uri=server.url)
    exp = c.create_experiment("pg-check")
    run = c.create_run(exp, tags={"who": "test"})
    for step in range(5):
        c.log_metric(run.info.run_id, "x", step * 0.5, step=step)
    c.log_param(run.info.run_id, "alpha", "0.6")
    c.set_terminated(run.info.run_id)
    got = MlflowClient(tracking_uri=server.url).get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.data.params == {"alpha": "0.6"}
    assert [(m.step, m.value) for m in c.get_metric_history(run.info.run_id, "x")] == [(s, s * 0.5) for s in range(5)]
    # the points are in PostgreSQL's tables, not anywhere else
    with psycopg.connect(server.backend_uri) as conn:
        n = conn.execute(
            "SELECT count(*) FROM metrics WHERE run_uuid = %s AND key = 'x'", (run.info.run_id,)
        ).fetchone()
        assert n[0] == 5


def test_basic_auth_server_refuses_requests_without_credentials(mlflow_server):
    server = mlflow_server(auth=True)
    search = server.url + "/api/2.0/mlflow/experiments/search"
    assert request(search, "POST", {"max_results": 10})[0] == 401
    bad = {"Authorization": "Basic " + base64.b64encode(b"alice:wrong-password-123").decode()}
    assert request(search, "POST", {"max_results": 10}, bad)[0] == 401
    status, body = request(search, "POST", {"max_results": 10}, server.user.header())
    assert status == 200 and "experiments" in json.loads(body)
    # the second user exists and is not an admin; the admin sees it
    status, body = request(server.url + "/api/2.0/mlflow/users/get?username=alice", "GET", None, server.admin.header())
    assert status == 200 and json.loads(body)["user"]["is_admin"] is False
