"""The sweep manager: the Hydra callback that turns a multirun into one MLflow sweep.

Runs on the launching machine before any job starts: it composes and
validates every job's config (bad input fails before any run exists), makes
sure the store is initialised and the experiment exists (so concurrent
workers never race on schema migration or `set_experiment`), and creates the
sweep's parent run. Jobs read the ids from the sweep file
(`per_exp.contract.SweepFile`) in the sweep folder and attach as children;
they never create shared state themselves.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from per_exp import checkpoint, credentials, slurm, tracking
from per_exp import contract as C
from per_exp.config import Config, ConfigError, config_hash, hash_rules, resolved, typed, validate
from per_exp.sweep_progress import ProgressReporter

log = logging.getLogger(__name__)

# conf/hydra/launcher/*.yaml deliberately replace the plugins' configs of the same name, and
# Hydra warns that it merges them onto the plugin's schema, which is what we want. The filter
# lives here because launcher workers import this module (through the pickled task function)
# before they compose their job's config.
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema with the same name")


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The job override lists a basic sweep of `overrides` will run."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides=overrides)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch]


def compose_job_configs(config_name: str | None, overrides: list[str]) -> list[tuple[list[str], DictConfig]]:
    from hydra import compose

    return [(job, compose(config_name=config_name, overrides=job)) for job in expand_sweep(overrides)]


def sweep_hash(job_hashes: Iterable[str]) -> str:
    """Identity of a sweep: the set of its jobs' config hashes (order and duplicates ignored)."""
    blob = json.dumps(sorted(set(job_hashes)))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _job_label(overrides: list[str]) -> str:
    return " ".join(overrides) or "(no overrides)"


def _swept_labels(job_overrides: list[list[str]]) -> list[str]:
    """Each job named by the overrides that differ between jobs (what the sweep swept)."""
    common = set.intersection(*(set(o) for o in job_overrides)) if len(job_overrides) > 1 else set()
    return [_job_label([x for x in o if x not in common]) for o in job_overrides]


class SweepFailed(SystemExit):
    pass


def _validated_jobs(config_name: str | None, task_overrides: list[str]) -> list[tuple[list[str], DictConfig]]:
    """Every job's composed config, each validated; exit 2 on the first bad one, before any run exists."""
    try:
        jobs = compose_job_configs(config_name, task_overrides)
        for _, job_cfg in jobs:
            validate(typed(job_cfg))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return jobs


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.sweep: C.SweepFile | None = None
        self._closed = False
        self._progress: ProgressReporter | None = None
        self._launch_dir = Path.cwd()  # job.chdir is false: the folder the command ran in

    def __getstate__(self) -> dict[str, Any]:
        # Parallel launchers pickle the callbacks with each job; the progress thread stays home.
        return {**self.__dict__, "_progress": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # unresolved: an override is passed on as typed (it may hold an interpolation)
        task_overrides = [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False) or []]
        jobs = _validated_jobs(kwargs.get("config_name"), task_overrides)
        first: Config = typed(jobs[0][1])
        if not first.tracking.enabled:
            return
        hashes = [config_hash(resolved(c)) for _, c in jobs]
        _refuse_duplicate_hashes(jobs, hashes)
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            uri = C.resolve_tracking_uri(first.tracking.uri)
            # The store is created (schema migrated) and the experiment made here, once, before any
            # worker exists: concurrent first use of a sqlite file crashes 7 workers of 8, and
            # concurrent experiment creation misfiles runs under "Default".
            client = tracking.client_for(uri)
            with credentials.server_access(uri):  # a refused login: one line, before any run exists
                exp_id = tracking.ensure_experiment(client, first.tracking.experiment)
                existing = tracking.job_runs_by_hash(client, exp_id)
                sweep_dir.mkdir(parents=True, exist_ok=True)
                parent_id, reused = self._parent_run(client, exp_id, sweep_dir, task_overrides, hashes)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        # this process is the launch folder's (job.chdir is false); jobs elsewhere get the absolute path
        ckpt_root = checkpoint.root_for(first.checkpoint.dir, uri, Path.cwd())
        rerun = first.rerun
        n_done = 0 if rerun else sum(any(r.info.status == "FINISHED" for r in existing.get(h, [])) for h in hashes)
        n_resume = (
            0
            if rerun
            else sum(
                bool(existing.get(h)) and not any(r.info.status == "FINISHED" for r in existing[h]) for h in hashes
            )
        )
        self.sweep = C.SweepFile(
            uri=uri,
            experiment_id=exp_id,
            parent_run_id=parent_id,
            checkpoint_root=str(ckpt_root),
            jobs=tuple(C.SweepJob(label, h) for label, h in zip(_swept_labels([o for o, _ in jobs]), hashes)),
        )
        self.sweep.write(sweep_dir)
        msg = (
            f"MLflow sweep {parent_id} ({'re-opened' if reused else 'new'}): {len(jobs)} jobs -> {uri}; "
            f"{n_done} already FINISHED (skipped{'' if n_done == 0 else ', rerun=true runs them again'}), "
            f"{n_resume} to resume, {len(jobs) - n_done - n_resume} new"
        )
        log.info(msg)
        finished_before = (
            [] if rerun else [h for h in hashes if any(r.info.status == "FINISHED" for r in existing.get(h, []))]
        )
        self._progress = ProgressReporter(client, exp_id, parent_id, hashes, finished_before)
        self._progress.start()
        # If a job fails, Hydra's sweeper raises and on_multirun_end never runs:
        # close the parent at exit so it is never left RUNNING.
        atexit.register(self._close)

    def _parent_run(self, client, exp_id: str, sweep_dir: Path, task_overrides: list[str], hashes: list[str]):
        """The sweep's parent run: the one an earlier launch of the same jobs made, else a new one.

        Re-launching a sweep to finish it keeps all its jobs under one parent.
        """
        shash = sweep_hash(hashes)
        where = C.tag_equals(C.TAG_ROLE, C.ROLE_SWEEP) + " and " + C.tag_equals(C.TAG_SWEEP_HASH, shash)
        found = C.search_runs(client, exp_id, where)
        if found:
            run = max(found, key=lambda r: r.info.start_time or 0)
            client.update_run(run.info.run_id, status="RUNNING")
            launches = int(run.data.tags.get(C.TAG_LAUNCHES, "1")) + 1
            client.set_tag(run.info.run_id, C.TAG_LAUNCHES, str(launches))
            client.set_tag(run.info.run_id, C.TAG_SWEEP_DIR, str(sweep_dir.resolve()))
            return run.info.run_id, True
        name = "sweep-" + "_".join(sweep_dir.resolve().parts[-2:])
        run = client.create_run(
            exp_id,
            run_name=name,
            tags={
                C.TAG_ROLE: C.ROLE_SWEEP,
                C.TAG_SWEEP_HASH: shash,
                C.TAG_OVERRIDES: " ".join(task_overrides),
                C.TAG_N_JOBS: str(len(hashes)),
                C.TAG_SWEEP_DIR: str(sweep_dir.resolve()),
                C.TAG_LAUNCHES: "1",
                **tracking.git_tags(),
                **tracking.version_tags(),
            },
        )
        return run.info.run_id, False

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        ok = self._close()
        if not ok:
            # Some launchers return normally even though a job failed: the exit code must say so.
            raise SweepFailed(1)

    def _close(self) -> bool:
        """Report every job's outcome, end the parent run; True when every job has a FINISHED run."""
        sweep = self.sweep
        if sweep is None or self._closed:
            return True
        self._closed = True
        if self._progress is not None:
            self._progress.stop()
            self._progress.report()  # the last jobs, if they ended after the last poll
        client = tracking.client_for(sweep.uri)
        pid = sweep.parent_run_id
        by_hash = tracking.job_runs_by_hash(client, sweep.experiment_id)
        lines, n_ok = [], 0
        for job in sweep.jobs:
            runs = by_hash.get(job.config_hash, [])
            if any(r.info.status == "FINISHED" for r in runs):
                n_ok += 1
                continue
            if not runs:
                lines.append(f"  {job.overrides}: no run (the job never started)")
                continue
            r = runs[0]
            why = r.data.tags.get(C.TAG_ERROR, "process died without reporting" if r.info.status == "RUNNING" else "")
            where = f" (Slurm job {r.data.tags[slurm.JOB_TAG]})" if slurm.JOB_TAG in r.data.tags else ""
            lines.append(f"  {job.overrides}: run {r.info.run_id} {r.info.status}{where}" + (f": {why}" if why else ""))
        expected = sweep.n_jobs
        status = "FINISHED" if n_ok == expected else "FAILED"
        client.set_terminated(pid, status=status)
        msg = f"sweep {pid}: {n_ok}/{expected} jobs FINISHED"
        if lines:
            msg += f"; {expected - n_ok} not finished (re-run the same command to resume them):\n" + "\n".join(lines)
        (log.info if status == "FINISHED" else log.error)(msg)
        ui, how = tracking.ui_address(sweep.uri, self._launch_dir)
        url = C.runs_url(ui, sweep.experiment_id, pid)
        print(msg + f"\nruns: {url}" + (f" ({how})" if how else ""), file=sys.stderr, flush=True)
        return status == "FINISHED"


def _refuse_duplicate_hashes(jobs: list[tuple[list[str], DictConfig]], hashes: list[str]) -> None:
    """Two jobs with one config hash would be one run's work done twice (they differ only in
    bookkeeping keys such as tracking.* or checkpoint.*)."""
    seen: dict[str, list[str]] = {}
    for (overrides, _), h in zip(jobs, hashes):
        if h in seen:
            print(
                f"error: invalid sweep: jobs [{_job_label(seen[h])}] and [{_job_label(overrides)}] have the same "
                f"config hash {h}; allowed: jobs that differ in a key that changes what is learned "
                f"(not in {', '.join(hash_rules(Config).bookkeeping)}, nor a newly added key at its neutral value)",
                file=sys.stderr,
            )
            raise SystemExit(2)
        seen[h] = overrides
