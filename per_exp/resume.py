"""What a job does with its config hash: skip, resume, or start a run.

The rule keeps one run per config hash (unless `rerun=true` asks for a new
one): a FINISHED run means the work is done; any other run with the hash
(RUNNING after a SIGKILL, KILLED after Ctrl-C, FAILED) is continued in place,
from its checkpoint if one names it, else from episode 0. Metric points it
already holds are not sent again (`RunLogger.attach`), so continuing never
duplicates a point; and since a job is deterministic for a given config the
replayed episodes produce the values already stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from per_exp import checkpoint, tracking

SKIP, RESUME, FRESH = "skip", "resume", "fresh"


@dataclass
class Plan:
    action: str  # skip | resume | fresh
    run_id: str | None = None  # the run to skip or continue
    state: dict[str, Any] | None = None  # the checkpoint to resume from (None: from episode 0)
    reason: str = ""
    refused: str | None = None  # why the checkpoint on disk was refused (moved aside), if it was

    @property
    def from_episode(self) -> int:
        return int(self.state["trainer"]["counters"]["episode"]) if self.state else 0


def decide(runs: list, ckpt: dict[str, Any] | None, rerun: bool) -> Plan:
    """Pure decision from the runs carrying the hash (newest first) and the checkpoint on disk."""
    if rerun:
        return Plan(FRESH, reason="rerun=true: a new run even though runs with this config hash may exist")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    if finished:
        return Plan(SKIP, finished[0].info.run_id, reason=f"run {finished[0].info.run_id} already FINISHED")
    unfinished = {r.info.run_id: r for r in runs}
    if ckpt is not None and ckpt.get("run_id") in unfinished:
        rid = ckpt["run_id"]
        return Plan(RESUME, rid, ckpt, reason=f"run {rid} ({unfinished[rid].info.status}) resumes from its checkpoint")
    if runs:
        rid = runs[0].info.run_id
        return Plan(
            RESUME, rid, None, reason=f"run {rid} ({runs[0].info.status}) had no checkpoint: restarts from episode 0"
        )
    return Plan(FRESH, reason="no run with this config hash yet")


def plan_job(
    client, experiment_id: str, config_hash: str, ckpt_path: Path, rerun: bool, read_checkpoint: bool = True
) -> Plan:
    """The plan from the store and the checkpoint file. `read_checkpoint=False` (before the job owns
    its hash) leaves the file alone: reading it may refuse it, which is the owner's business."""
    runs = tracking.job_runs_with_hash(client, experiment_id, config_hash)
    if not read_checkpoint or (not rerun and any(r.info.status == "FINISHED" for r in runs)):
        return decide(runs, None, rerun)
    ckpt, refused = checkpoint.load_checked(ckpt_path)
    if ckpt is not None and (ckpt.get("config_hash") != config_hash or ckpt.get("experiment_id") != experiment_id):
        ckpt = None  # another experiment's file under the same folder: not ours to resume
    plan = decide(runs, ckpt, rerun)
    plan.refused = refused
    return plan
