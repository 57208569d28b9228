"""A sweep's closing summary when another launch finishes a shared job while the summary reads the store.

Two launches of the same sweep split its jobs through the claims registry; the first to end writes
the summary while the other may still be finishing its jobs. The summary reads the claims and the
runs in two reads. The other launch ends a run (FINISHED) before it releases the claim, so the
summary must read the claims first: this test puts the other launch's ending between the reads.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from per_exp import contract as C
from per_exp import owner as owners
from per_exp import tracking
from per_exp.claims import Registry
from per_exp.sweep import MlflowSweepCallback

HASH = "0123456789abcdef"


class _OtherLaunchEndsDuringSummary(Registry):
    """The registry as the summary sees it: the other launch ends its run and releases its claim
    just before the claims are read (`when="before"`) or just after (`when="after"`)."""

    def __init__(self, reg: Registry, finish, when: str):
        super().__init__(reg.client, reg.experiment_id, reg.run_id)
        self._finish, self._when = finish, when

    def snapshot(self):
        if self._when == "before":
            self._finish()
        got = super().snapshot()
        if self._when == "after":
            self._finish()
        return got


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_job_another_launch_finishes_during_the_summary_is_not_reported_dead(tmp_path: Path, capsys, when):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracking.client_for(uri)
    exp = tracking.ensure_experiment(client, "e")
    reg = Registry.open(client, exp)
    parent = client.create_run(exp, run_name="sweep", tags={C.TAG_ROLE: C.ROLE_SWEEP}).info.run_id
    run = client.create_run(exp, run_name="s1", tags={C.TAG_ROLE: C.ROLE_JOB, C.TAG_CONFIG_HASH: HASH})
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        # the other launch: a live process on this host, holding the job's hash, its run RUNNING
        them = dataclasses.replace(owners.this_process(), pid=other.pid, started=owners.process_start(other.pid))
        claim = reg.claim(HASH, them, stale_after=3600)
        assert claim.lease is not None

        def finish() -> None:  # what the other launch does when its run ends: the run first, then the claim
            client.set_terminated(run.info.run_id, status="FINISHED")
            reg.release(claim.lease)

        sweep = C.SweepFile(uri, exp, parent, str(tmp_path), (C.SweepJob("seed=1", HASH),), reg.run_id)
        me = SimpleNamespace(here=owners.this_process(), stale_after=3600.0, _launch_dir=tmp_path)
        code = MlflowSweepCallback._summarize(me, sweep, client, _OtherLaunchEndsDuringSummary(reg, finish, when), None)
    finally:
        other.kill()
        other.wait()
    said = capsys.readouterr().err
    assert "process died" not in said
    assert code == C.EXIT_OK, said
    assert "1/1 jobs FINISHED" in said
    assert client.get_run(parent).info.status == "FINISHED"
