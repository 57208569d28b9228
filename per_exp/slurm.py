"""What a job asks Slurm about itself: who it is, and why it was told to stop.

Identity: a requeued Slurm job keeps its job id (`<array id>_<task>` for a sweep's array
task) and counts its restarts (SLURM_RESTART_COUNT). Both go on the run as tags
(`per_exp.slurm_job_id`, `per_exp.slurm_restarts`), so a run continued by its requeued job
shows the same owner with a higher restart count.

Why a SIGTERM came: `scontrol show job` tells a preemption (JobState RUNNING with a
PreemptTime) from a cancel, a requeue or the time limit (the job is already COMPLETING).
A preempted job that exits by itself within its grace time is not requeued by Slurm (it
ends COMPLETED), so after checkpointing, a job preempted in a partition whose PreemptMode
is REQUEUE puts itself back in the queue (`scontrol requeue`), as Slurm would have done at
the end of the grace time.

Every function is a no-op outside a Slurm job (no SLURM_JOB_ID).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from per_exp import contract as C

log = logging.getLogger(__name__)

JOB_TAG = C.TAG_SLURM_JOB_ID
RESTARTS_TAG = C.TAG_SLURM_RESTARTS

_FIELD = re.compile(r"(\w+)=(\S*)")


def job_id(env: Mapping[str, str] = os.environ) -> str | None:
    """The job's id as squeue and sacct show it: `<array id>_<task>` for an array task."""
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return env.get("SLURM_JOB_ID") or None


def run_tags(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    jid = job_id(env)
    return {JOB_TAG: jid, RESTARTS_TAG: env.get("SLURM_RESTART_COUNT", "0")} if jid else {}


def parse_fields(text: str) -> dict[str, str]:
    """`Key=Value` fields of one `scontrol show ... -o` line (values with spaces are cut; none we read has one)."""
    return dict(_FIELD.findall(text))


@dataclass(frozen=True)
class StopCause:
    description: str  # for the run's `error` tag and the log
    requeue: bool  # True: put the job back in the queue once the run is closed


def stop_cause(job: Mapping[str, str], partition: Mapping[str, str]) -> StopCause:
    """Pure: why a SIGTERM came, from the job's and its partition's `scontrol show` fields."""
    state = job.get("JobState", "?")
    preempted = state == "RUNNING" and job.get("PreemptTime", "None") not in ("None", "", "Unknown")
    if preempted:
        mode = partition.get("PreemptMode", "")
        if "REQUEUE" in mode.upper().split(",") and job.get("Requeue") == "1":
            return StopCause(f"preempted in partition {job.get('Partition', '?')}: requeued", True)
        return StopCause(
            f"preempted in partition {job.get('Partition', '?')} (PreemptMode={mode}): not requeued", False
        )
    if state == "COMPLETING":
        return StopCause("Slurm ended the job (scancel, scontrol requeue or its time limit)", False)
    return StopCause(f"Slurm job state {state}", False)


def _scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30, check=True).stdout


def why_stopped(env: Mapping[str, str] = os.environ) -> StopCause | None:
    """Ask Slurm why this job got a SIGTERM; None outside Slurm or when Slurm cannot be asked."""
    own = env.get("SLURM_JOB_ID")
    if not own:
        return None
    try:
        job = parse_fields(_scontrol("show", "job", "-o", own))
        part = (
            parse_fields(_scontrol("show", "partition", "-o", job.get("Partition", ""))) if job.get("Partition") else {}
        )
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("could not ask Slurm why job %s was stopped: %s", own, e)
        return None
    return stop_cause(job, part)


def requeue_self(env: Mapping[str, str] = os.environ) -> None:
    own = env.get("SLURM_JOB_ID")
    if not own:
        return
    try:
        _scontrol("requeue", own)
        log.info("Slurm job %s put back in the queue; it resumes from its checkpoint when it starts again", job_id(env))
    except (OSError, subprocess.SubprocessError) as e:
        log.error("scontrol requeue %s failed (%s): re-run the sweep command to resume this run", own, e)
