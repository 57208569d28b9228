"""`hydra/launcher=submitit_slurm`: the submitit plugin's Slurm launcher, plus what a user must see.

(A Hydra launcher must live in the `hydra_plugins` package; it is per_exp's all the same.)

It submits exactly as hydra-submitit-launcher does (one Slurm array task per Hydra job, the
plugin's keys: partition, timeout_min, cpus_per_task, mem_gb, ...). What it adds:

- right after submission it prints each job's Slurm id and its log files;
- it waits for every job, whatever happens to the others (the plugin stops waiting at the
  first job that failed, so the sweep summary was written while other jobs still ran), and
  prints the final Slurm state of every job that did not complete;
- a queue that starts nothing is reported, not waited on forever: when every unfinished
  job has been waiting in the queue (PENDING, or requeued and pending) and no job of the
  sweep has changed state for `queue_timeout_min` minutes, the waiting jobs are cancelled
  and listed with Slurm's reason (Resources, Priority, BeginTime, ...). Re-running the same
  command later submits them again (finished runs are skipped, interrupted ones resume).

A preempted or requeued job keeps its id and counts as in progress: it resumes its run from
the checkpoint it wrote on the signal (see per_exp/signals.py and per_exp/slurm.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from per_exp.contract import SweepFile, SweepFileError

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _PluginSlurmLauncher
except ImportError:  # no slurm extra: then this is no plugin (Hydra's plugin scan imports every module here)
    _PluginSlurmLauncher = object  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

WAITING = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED")
# states in which a job that has already written its result may still be seen for a moment
IN_PROGRESS = (*WAITING, "RUNNING", "COMPLETING", "CONFIGURING", "UNKNOWN")


class SlurmJobNotFinished(RuntimeError):
    """A Slurm job that ended without a result (cancelled, killed, timed out, never started)."""


def _say(msg: str) -> None:
    log.info(msg)
    print(msg, file=sys.stderr, flush=True)


def _pending_reasons(job_ids: Sequence[str]) -> dict[str, str]:
    """Slurm's reason for each pending job; empty where squeue cannot say.

    `-r`: one line per array task (squeue otherwise folds pending tasks into `17_[0-3]`).
    """
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i %r", "-j", ",".join(job_ids)], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def swept_labels(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    """Each job named by the overrides that differ between jobs (what the sweep swept)."""
    jobs = [filter_overrides(o) for o in job_overrides]
    common = set.intersection(*(set(o) for o in jobs)) if len(jobs) > 1 else set()
    return [" ".join(x for x in o if x not in common) or "(no overrides)" for o in jobs]


def group_labels(sweep_dir: str | Path, n_jobs: int, initial_job_idx: int) -> list[str] | None:
    """A grouped sweep's Slurm jobs named by their runs ("seed=0, seed=1"); None if the sweep is not grouped."""
    try:
        planned = SweepFile.read(sweep_dir)
    except SweepFileError:
        return None
    if planned is None or not planned.groups:
        return None
    out = []
    for members in planned.groups[initial_job_idx : initial_job_idx + n_jobs]:
        names = [planned.jobs[i].overrides or "(no overrides)" for i in members]
        more = f", ... ({len(names)} runs)" if len(names) > 3 else ""
        out.append(", ".join(names[:3]) + more)
    return out if len(out) == n_jobs else None


def poll_interval(elapsed_s: float) -> float:
    """Ask sacct often at first, then less: 2 s, growing to 30 s after ten minutes."""
    return min(30.0, max(2.0, elapsed_s / 20))


class SlurmLauncher(_PluginSlurmLauncher):  # type: ignore[valid-type,misc]
    def __init__(self, queue_timeout_min: float = 240.0, **params: Any) -> None:
        try:
            self.queue_timeout_min = float(queue_timeout_min)
            if not self.queue_timeout_min > 0:
                raise ValueError
        except (TypeError, ValueError):
            print(
                f"error: invalid hydra.launcher.queue_timeout_min={queue_timeout_min!r}; allowed: minutes > 0",
                file=sys.stderr,
            )
            raise SystemExit(2) from None
        super().__init__(**params)

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        """As the plugin's `launch` up to `map_array` (hydra-submitit-launcher 1.2): the same executor and keys."""
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        assert self.config is not None
        params = self.params
        specific_init_keys = {"max_num_timeout"}
        init_params = {"folder": params["submitit_folder"]}
        init_params.update({f"{self._EXECUTOR}_{x}": y for x, y in params.items() if x in specific_init_keys})
        init_keys = specific_init_keys | {"submitit_folder"}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{x if x in baseparams else f"{self._EXECUTOR}_{x}": y for x, y in params.items() if x not in init_keys}
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        job_params = [
            (list(overrides), "hydra.sweep.dir", initial_job_idx + i, f"job_id_for_{initial_job_idx + i}",
             Singleton.get_state())
            for i, overrides in enumerate(job_overrides)
        ]  # fmt: skip
        return executor.map_array(self, *zip(*job_params))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        jobs = self._submit(job_overrides, initial_job_idx)
        assert self.config is not None
        labels = group_labels(str(self.config.hydra.sweep.dir), len(job_overrides), initial_job_idx)
        labels = labels or swept_labels(job_overrides)
        p = self.params
        _say(
            f"Slurm: {len(jobs)} jobs submitted to partition {p.get('partition') or '(the default)'}, "
            f"time limit {p.get('timeout_min')} min, {p.get('cpus_per_task')} CPU and {p.get('mem_gb')} GB each; "
            f"jobs the queue does not start within {self.queue_timeout_min:g} min are cancelled "
            "(hydra.launcher.queue_timeout_min)"
        )
        for job, label in zip(jobs, labels):
            _say(f"  {job.job_id}  {label}  log: {job.paths.stdout} (and .err)")
        states = self._wait(jobs)
        returns, lines = [], []
        for job, label, overrides in zip(jobs, labels, job_overrides):
            state = states[job.job_id]
            ret = self._job_return(job, list(overrides), state)
            if state == "COMPLETED" and ret.status == JobStatus.FAILED:
                state = "COMPLETED, but the job raised (see the sweep summary)"
            if state != "COMPLETED":
                lines.append(f"  {job.job_id}  {label}  {state}  log: {job.paths.stdout}")
            returns.append(ret)
        if lines:
            n_ok = len(jobs) - len(lines)
            _say(f"Slurm: {n_ok}/{len(jobs)} jobs COMPLETED cleanly; the others:\n" + "\n".join(lines))
        else:
            _say(f"Slurm: {len(jobs)}/{len(jobs)} jobs COMPLETED")
        return returns

    def _wait(self, jobs: list) -> dict[str, str]:
        """Every job's final state (sacct's first word, or 'not started ...'), polling until all are done."""
        start = last_change = time.monotonic()
        seen: dict[str, str] = {}
        final: dict[str, str] = {}
        watcher = jobs[0].watcher
        while len(final) < len(jobs):
            time.sleep(poll_interval(time.monotonic() - start))
            watcher.update()
            for job in jobs:
                if job.job_id in final:
                    continue
                state = (watcher.get_state(job.job_id, mode="cache") or "UNKNOWN").split()[0]
                if seen.get(job.job_id) != state:
                    seen[job.job_id], last_change = state, time.monotonic()
                if job.done():
                    wrote_result = job.paths.result_pickle.exists()
                    final[job.job_id] = "COMPLETED" if wrote_result and state in IN_PROGRESS else state
            waiting = [j for j in jobs if j.job_id not in final and seen.get(j.job_id) in (*WAITING, "UNKNOWN")]
            unfinished = [j for j in jobs if j.job_id not in final]
            stalled_s = time.monotonic() - last_change
            if unfinished and len(waiting) == len(unfinished) and stalled_s >= self.queue_timeout_min * 60:
                reasons = _pending_reasons([j.job_id for j in waiting])
                for j in waiting:
                    j.cancel(check=False)
                    final[j.job_id] = f"not started within {self.queue_timeout_min:g} min (cancelled)"
                _say(
                    f"Slurm: the queue started none of {len(waiting)} waiting jobs within "
                    f"hydra.launcher.queue_timeout_min={self.queue_timeout_min:g}; cancelled them:\n"
                    + "\n".join(f"  {j.job_id}  waiting for: {reasons.get(j.job_id, '?')}" for j in waiting)
                    + "\nRe-run the same command later to submit them again (finished runs are skipped)."
                )
        return final

    @staticmethod
    def _job_return(job, overrides: list[str], state: str) -> JobReturn:
        failed = SlurmJobNotFinished(f"Slurm job {job.job_id} ended {state} without a result; log: {job.paths.stdout}")
        if job.paths.result_pickle.exists():
            try:
                return job.results()[0]
            except Exception as e:  # submitit's own error (the job function is Hydra's: it returns its errors)
                failed.__cause__ = e
        return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=failed)
