"""The sweep manager: the Hydra callback that turns a multirun into one MLflow sweep.

Runs on the launching machine before any job starts: it composes and
validates every job's config (bad input fails before any run exists), checks
the store and sets it up (schema under a lock, experiment, claims registry:
`per_exp.store`), refuses to continue runs written by other code
(`per_exp.provenance`), takes the sweep folder (refused if another running
launch uses it) and chooses the sweep's parent run once and for all through
the claims registry, so concurrent launches of one sweep share one parent.
Jobs read the ids from the sweep file (`per_exp.contract.SweepFile`) and
attach as children. Any failure here ends the launch (Hydra would only warn).
At the end it reports every job once and ends the parent: FINISHED, FAILED,
KILLED (a stopped launch), or still RUNNING when another live launch holds
some of its jobs.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import fcntl
import hashlib
import json
import logging
import re
import signal
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from per_exp import checkpoint, choices, credentials, grouping, owner, processes, provenance, slurm, store, tracking
from per_exp import contract as C
from per_exp.claims import ALIVE, DEAD, Registry, holder_of, judge
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


def sweeper_params(config: DictConfig) -> list[str]:
    """The sweep a config's `hydra.sweeper.params` declares (a preset such as experiment=study), as overrides.

    Hydra's basic sweeper puts them before the command line's overrides, and a
    key given on both takes the command line's value: so does `expand_sweep`.
    """
    params = OmegaConf.select(config, "hydra.sweeper.params")
    if not params:
        return []
    container = OmegaConf.to_container(params, resolve=False)
    assert isinstance(container, dict)
    return [f"{k!s}={v!s}" for k, v in container.items()]


# `seed=<integer>`, as Hydra's grammar reads an integer; anything else about the seed composes in full
_SEED_OVERRIDE = re.compile(r"seed=(-?(?:0|[1-9][0-9]*))")


def compose_job_configs(config_name: str | None, overrides: list[str]) -> list[tuple[list[str], DictConfig]]:
    """Every job of the sweep with its composed config.

    Composing is ~0.1-0.25 s a job (the defaults list, every YAML file read and merged), and a sweep's
    jobs mostly differ in their seed alone: the jobs that share all their other overrides are composed
    once and given their own `seed` on a copy. A plain value override of an existing key is applied
    last by Hydra too, so the copy equals a full compose (tests/test_sweep_compose.py compares them).
    """
    from hydra import compose

    composed: dict[tuple[str, ...], DictConfig] = {}
    out = []
    for job in expand_sweep(overrides):
        seeds = [o for o in job if _SEED_OVERRIDE.fullmatch(o)]
        if len(seeds) != 1:
            out.append((job, compose(config_name=config_name, overrides=job)))
            continue
        rest = tuple(o for o in job if o != seeds[0])
        if rest not in composed:
            composed[rest] = compose(config_name=config_name, overrides=list(rest))
        cfg = copy.deepcopy(composed[rest])  # a shallow copy shares its value nodes with the others
        cfg.seed = int(seeds[0].partition("=")[2])
        out.append((job, cfg))
    return out


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
        for job_overrides, job_cfg in jobs:
            choices.check_overrides(job_overrides)
            validate(typed(job_cfg))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(C.EXIT_BAD_INPUT) from None
    return jobs


# How long a stopped launch waits for its workers to close their runs (per_exp.train).
STOP_GRACE_SECONDS = 30.0
_ACTIVE: MlflowSweepCallback | None = None  # the sweep this process launched, if any


def in_flight_settled() -> bool:
    """True once no worker of this launch still holds a run (they were told to stop)."""
    return _ACTIVE.settled() if _ACTIVE is not None else True


def in_flight_pids() -> list[int]:
    """The processes of this launch that hold one of the sweep's runs (the workers training)."""
    return _ACTIVE.holders() if _ACTIVE is not None else []


def close_stopped(signum: int) -> None:
    """The launch was stopped by `signum`: end the parent KILLED and print the summary (once)."""
    if _ACTIVE is not None:
        _ACTIVE.close(stopped=signum)


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.sweep: C.SweepFile | None = None
        self.client: Any = None
        self.registry: Registry | None = None
        self.here = owner.this_process()
        self.stale_after = 120.0
        self._closed = False
        self._progress: ProgressReporter | None = None
        self._launch_dir = Path.cwd()  # job.chdir is false: the folder the command ran in

    def __getstate__(self) -> dict[str, Any]:
        # Parallel launchers pickle the callbacks with each job; the progress thread stays home.
        return {**self.__dict__, "_progress": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns an exception in a callback into a warning and launches the jobs anyway: a
        # sweep that could not be set up must not run, so every failure here ends the launch.
        try:
            self._start(config, kwargs.get("config_name"))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(C.EXIT_BAD_INPUT) from None
        except Exception as e:
            short = " ".join(f"{type(e).__name__}: {e}".split())[:500]
            print(f"error: the sweep could not be set up, no job was launched: {short}", file=sys.stderr)
            raise SystemExit(C.EXIT_FAILED) from None

    def _start(self, config: DictConfig, config_name: str | None) -> None:
        global _ACTIVE
        # unresolved: an override is passed on as typed (it may hold an interpolation)
        task_overrides = [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False) or []]
        jobs = _validated_jobs(config_name, sweeper_params(config) + task_overrides)
        first: Config = typed(jobs[0][1])
        if not first.tracking.enabled:
            return
        hashes = [config_hash(resolved(c)) for _, c in jobs]
        _refuse_duplicate_hashes(jobs, hashes)
        groups = grouping.plan([typed(c) for _, c in jobs])
        uri = C.resolve_tracking_uri(first.tracking.uri)
        # this process is the launch folder's (job.chdir is false); jobs elsewhere get the absolute path
        ckpt_root = checkpoint.root_for(first.checkpoint.dir, uri, Path.cwd())
        store.check_store(uri, first.tracking.server_timeout_seconds)
        store.check_folder("checkpoint.dir", first.checkpoint.dir or str(ckpt_root), ckpt_root)
        # The store is created (schema migrated) and the experiment and its claims registry made
        # here, under a lock, before any worker exists: concurrent first use of a sqlite file
        # crashes 7 processes of 8 in MLflow's migration.
        with credentials.server_access(uri):  # a refused login: one line, before any run exists
            opened = store.open_for_launch(uri, first.tracking.experiment, first.tracking.server_timeout_seconds)
            self.client, self.registry = opened.client, opened.registry
            self.stale_after = first.tracking.stale_after_seconds
            exp_id = opened.experiment_id
            existing = tracking.job_runs_by_hash(self.client, exp_id)
            finished = {h: [r for r in existing.get(h, []) if r.info.status == "FINISHED"] for h in hashes}
            done = [] if first.rerun else [runs[0] for runs in finished.values() if runs]
            unfinished = [] if first.rerun else [existing[h][0] for h in hashes if existing.get(h) and not finished[h]]
            here = tracking.code_version()
            if not first.resume_across_commits:
                _refuse_resuming_other_code(unfinished, here)
            sweep_dir = Path(config.hydra.sweep.dir)
            with _sweep_folder(sweep_dir, self.here):
                parent_id, reused = self._parent_run(self.client, exp_id, sweep_dir, task_overrides, hashes)
                self.sweep = C.SweepFile(
                    uri=uri,
                    experiment_id=exp_id,
                    parent_run_id=parent_id,
                    checkpoint_root=str(ckpt_root),
                    jobs=tuple(C.SweepJob(label, h) for label, h in zip(_swept_labels([o for o, _ in jobs]), hashes)),
                    claims_run_id=self.registry.run_id,
                    launcher=self.here.to_dict(),
                    groups=groups,
                )
                grouping.write(sweep_dir, groups, jobs)  # before the sweep file, which says they exist
                self.sweep.write(sweep_dir)
        _ACTIVE = self
        n_done, n_resume = len(done), len(unfinished)
        log.info(
            "MLflow sweep %s (%s): %d jobs -> %s; %d already FINISHED (skipped%s), %d to resume, %d new%s",
            parent_id,
            "re-opened" if reused else "new",
            len(jobs),
            uri,
            n_done,
            "" if n_done == 0 else ", rerun=true runs them again",
            n_resume,
            len(jobs) - n_done - n_resume,
            _grouped(groups, first.group.slots),
        )
        other = provenance.skipped_from_other_code(done, here)
        if other:
            log.warning(
                "%d of the %d skipped runs were trained by another commit (%s), not this code's %s; "
                "rerun=true trains them again under this one",
                len(other),
                n_done,
                ", ".join(sorted(set(other))),
                provenance.describe(here),
            )
        finished_before = [] if first.rerun else [h for h in hashes if finished[h]]
        self._progress = ProgressReporter(self.client, exp_id, parent_id, hashes, finished_before)
        self._progress.start()
        # If a job fails, Hydra's sweeper raises and on_multirun_end never runs:
        # close the parent at exit so it is never left RUNNING.
        atexit.register(self.close)

    def _parent_run(self, client, exp_id: str, sweep_dir: Path, task_overrides: list[str], hashes: list[str]):
        """The sweep's parent run: the one an earlier (or concurrent) launch of the same jobs made,
        else a new one, chosen once and for all through the claims registry.

        Re-launching a sweep to finish it keeps all its jobs under one parent.
        """
        assert self.registry is not None
        shash = sweep_hash(hashes)
        prefix = f"{C.PARAM_SWEEP_PARENT_PREFIX}{shash}."
        published = self.registry.published(prefix)
        k = 0
        if published:
            k, rid = published[-1]
            if _live(client, rid):
                return self._reopen(client, rid, sweep_dir), True
            k += 1  # its parent was deleted: a new one
        else:
            # a store written before the registry existed: adopt the parent found by the sweep's hash
            where = C.tag_equals(C.TAG_ROLE, C.ROLE_SWEEP) + " and " + C.tag_equals(C.TAG_SWEEP_HASH, shash)
            found = C.search_runs(client, exp_id, where)
            if found:
                legacy = max(found, key=lambda r: r.info.start_time or 0).info.run_id
                return self._reopen(client, self.registry.publish(f"{prefix}0", legacy), sweep_dir), True
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
        winner = self.registry.publish(f"{prefix}{k}", run.info.run_id)
        if winner != run.info.run_id:  # a concurrent launch of the same sweep made its parent first
            client.delete_run(run.info.run_id)
            return self._reopen(client, winner, sweep_dir), True
        return run.info.run_id, False

    @staticmethod
    def _reopen(client, run_id: str, sweep_dir: Path) -> str:
        run = client.get_run(run_id)
        client.update_run(run_id, status="RUNNING")
        launches = int(run.data.tags.get(C.TAG_LAUNCHES, "1")) + 1
        client.set_tag(run_id, C.TAG_LAUNCHES, str(launches))
        client.set_tag(run_id, C.TAG_SWEEP_DIR, str(sweep_dir.resolve()))
        return run_id

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        code = self.close()
        if code != C.EXIT_OK:
            # Some launchers return normally even though a job failed: the exit code must say so.
            raise SweepFailed(code)

    def settled(self) -> bool:
        """No process started by this launch still holds one of the sweep's config hashes."""
        return not self.holders()

    def holders(self) -> list[int]:
        """The processes started by this launch that hold one of the sweep's config hashes."""
        if self.sweep is None or self.registry is None:
            return []
        params, tags = self.registry.snapshot()
        ours = set(processes.descendants())
        pids = set()
        for job in self.sweep.jobs:
            h = holder_of(job.config_hash, params, tags)
            if h is not None and not h.released and h.lease.owner.pid in ours and h.lease.owner.host == self.here.host:
                pids.add(h.lease.owner.pid)
        return sorted(pids)

    def close(self, stopped: int | None = None) -> int:
        """Report every job's outcome once, end the parent run; returns the launch's exit code.

        0: every job FINISHED; 3: none failed but some are held by another live launch (the parent
        stays RUNNING: that launch closes it); 1: some did not finish; 128+signal: stopped.
        """
        sweep, client, registry = self.sweep, self.client, self.registry
        if sweep is None or self._closed or registry is None:
            return C.EXIT_OK
        self._closed = True
        pid = sweep.parent_run_id
        try:
            if self._progress is not None:
                self._progress.stop()
                self._progress.report()  # the last jobs, if they ended after the last poll
            return self._summarize(sweep, client, registry, stopped)
        except Exception as e:
            if not store.is_unreachable(e):
                raise
            short = " ".join(str(e).split())[:200]
            print(
                f"sweep {pid}: the tracking store {sweep.uri} does not answer ({short}); no summary: "
                "re-run the same command once it is back (finished jobs are skipped, the others resume)",
                file=sys.stderr,
            )
            return C.EXIT_FAILED

    def _summarize(self, sweep: C.SweepFile, client, registry: Registry, stopped: int | None) -> int:
        pid = sweep.parent_run_id
        # Claims first, runs second. An owner ends its run (FINISHED, FAILED, KILLED) before it releases
        # the claim, so a claim seen released here means the run's end is already in the store. Read the
        # other way round, a run another launch finished between the two reads looked RUNNING with no
        # live owner: "process died", exit 1, for a job that had finished.
        params, tags = registry.snapshot()
        by_hash = tracking.job_runs_by_hash(client, sweep.experiment_id)
        now = time.time()
        lines, held, n_ok = [], 0, 0
        for job in sweep.jobs:
            runs = by_hash.get(job.config_hash, [])
            if any(r.info.status == "FINISHED" for r in runs):
                n_ok += 1
                continue
            holder = holder_of(job.config_hash, params, tags)
            verdict = judge(holder, self.here, now, self.stale_after) if holder is not None else None
            if verdict is not None and verdict.state == ALIVE:
                held += 1
                assert holder is not None
                who = holder.lease.owner.describe()
                lines.append(f"  {job.overrides}: held by another launch, {who} ({verdict.why})")
                continue
            if not runs:
                lines.append(f"  {job.overrides}: no run (the job never started)")
                continue
            r = runs[0]
            status = r.info.status
            if stopped is not None and status == "RUNNING":
                # a worker killed before it could say so (the launcher's stop): its run ends KILLED
                why = f"stopped by {signal.Signals(stopped).name} (the launch was stopped)"
                _best_effort(lambda r=r, why=why: client.set_tag(r.info.run_id, C.TAG_ERROR, why))
                _best_effort(lambda r=r: client.set_terminated(r.info.run_id, status="KILLED"))
                if holder is not None and verdict is not None and verdict.state == DEAD:
                    _best_effort(lambda h=holder: registry.release(h.lease))
                status = "KILLED"
            why = r.data.tags.get(C.TAG_ERROR, "process died without reporting" if status == "RUNNING" else "")
            if stopped is not None and status == "KILLED" and not why:
                why = f"stopped by {signal.Signals(stopped).name}"
            where = f" (Slurm job {r.data.tags[slurm.JOB_TAG]})" if slurm.JOB_TAG in r.data.tags else ""
            lines.append(f"  {job.overrides}: run {r.info.run_id} {status}{where}" + (f": {why}" if why else ""))
        expected = sweep.n_jobs
        if stopped is not None:
            status, code = "KILLED", 128 + stopped
        elif n_ok == expected:
            status, code = "FINISHED", C.EXIT_OK
        elif n_ok + held == expected:
            status, code = "RUNNING", C.EXIT_HELD_ELSEWHERE  # the launch that holds them closes the parent
        else:
            status, code = "FAILED", C.EXIT_FAILED
        if status != "RUNNING":
            client.set_terminated(pid, status=status)
        msg = f"sweep {pid}: {n_ok}/{expected} jobs FINISHED"
        if stopped is not None:
            msg += f"; stopped by {signal.Signals(stopped).name}"
        if lines:
            msg += f"; {expected - n_ok} not finished (re-run the same command to resume them):\n" + "\n".join(lines)
        # printed, not logged: Hydra's console handler would show the summary a second time
        ui, how = tracking.ui_address(sweep.uri, self._launch_dir)
        url = C.runs_url(ui, sweep.experiment_id, pid)
        print(msg + f"\nruns: {url}" + (f" ({how})" if how else ""), file=sys.stderr, flush=True)
        return code


def _grouped(groups: tuple[tuple[int, ...], ...], slots: int) -> str:
    if not groups:
        return "; one launcher job per run (group.enabled=false)"
    return f"; {len(groups)} launcher job(s), each a group of runs trained {slots} at a time (group.*)"


def _best_effort(step) -> None:
    with contextlib.suppress(Exception):
        step()


def _live(client, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception as e:
        if getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


def _refuse_resuming_other_code(unfinished: list, here: dict[str, str]) -> None:
    """Up front, for the whole sweep: unfinished runs last written by other code are not continued
    unless resume_across_commits=true (each job checks again under its claim)."""
    foreign = [r for r in unfinished if not provenance.same_code(provenance.history_of(r.data.tags)[-1], here)]
    if not foreign:
        return
    versions = sorted({provenance.describe(provenance.history_of(r.data.tags)[-1]) for r in foreign})
    raise ConfigError(
        provenance.ALLOW_KEY,
        False,
        f"true to continue {len(foreign)} unfinished run(s) of this sweep last written by {', '.join(versions)} "
        f"with this code at {provenance.describe(here)} (both are then recorded on each run), "
        "or rerun=true for new runs",
    )


@contextlib.contextmanager
def _sweep_folder(sweep_dir: Path, here: owner.Owner) -> Iterator[None]:
    """Hold the sweep folder while its sweep file is written; refuse one a running launch uses.

    The default folder is unique per launch (conf/config.yaml); an explicit hydra.sweep.dir
    shared by two launches would mix their jobs' files and sweep files.
    """
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / ".per_exp_sweep.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                previous = C.SweepFile.read(sweep_dir)
            except C.SweepFileError:
                previous = None  # an older per_exp's: its launch cannot be judged, and has long ended
            if previous is not None and previous.launcher:
                o = owner.Owner.from_dict(previous.launcher)
                state = owner.local_state(o, here)
                if state != owner.DEAD and not o.same_process(here):
                    hint = "" if state == owner.ALIVE else " (if that launch has ended, delete its .per_exp_sweep.json)"
                    raise ConfigError(
                        "hydra.sweep.dir",
                        str(sweep_dir),
                        f"a folder no running launch uses; it is in use by a running launch ({o.describe()}){hint}: "
                        "leave hydra.sweep.dir at its default, which is unique per launch",
                    )
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
