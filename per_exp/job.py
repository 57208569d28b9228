"""One Hydra job = one MLflow run: validate, find or open the run, train, finish or fail.

`per_exp.train` (the entry point) hands each composed job config to `run_job`,
which reads as the list of a job's steps; each step is a function below.
Before creating anything the job looks its config hash up in the store: a
FINISHED run means skip; an unfinished one is continued in place from its
checkpoint (`per_exp.resume`). Nothing in the engine imports this module.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from per_exp import (
    checkpoint,
    choices,
    config,
    credentials,
    endings,
    machine,
    owner,
    processes,
    provenance,
    resume,
    slurm,
    store,
    tracking,
)
from per_exp import contract as C
from per_exp.claims import Claim, ClaimError, Registry
from per_exp.config import Config, ConfigError, validate
from per_exp.engine.trainer import RunView, StateMismatch, Summary, run_one
from per_exp.heartbeat import Heartbeat
from per_exp.signals import StopSignals

log = logging.getLogger("per_exp")


@dataclass(frozen=True)
class HydraJob:
    """What Hydra says about this job: its name, folders and overrides (defaults when run without Hydra)."""

    name: str  # the run name
    out_dir: Path  # the job's output folder (artifacts are written there first)
    hydra_dir: Path  # Hydra's .hydra/ folder of the job
    launch_dir: Path  # the folder the command was started in
    overrides: str  # the job's command-line overrides
    sweep_dir: Path | None  # the multirun's folder, None for a single run

    @classmethod
    def current(cls, conf: Config) -> HydraJob:
        name = tracking.run_name(conf)
        if not HydraConfig.initialized():
            return cls(name, Path.cwd(), Path.cwd() / ".hydra", Path.cwd(), "", None)
        hc = HydraConfig.get()
        out_dir = Path(hc.runtime.output_dir)
        sweep_dir = Path(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None
        return cls(
            name,
            out_dir,
            out_dir / (hc.output_subdir or ".hydra"),
            Path(hc.runtime.cwd),
            " ".join(hc.overrides.task),
            sweep_dir,
        )


@dataclass(frozen=True)
class RunPlace:
    """Where a tracked job's run lives: the store, the experiment, the run's identity and checkpoint file."""

    uri: str
    client: Any  # mlflow.tracking.MlflowClient
    experiment_id: str
    config_hash: str
    checkpoint_path: Path
    parent_run_id: str | None  # the sweep's parent run, in a multirun
    registry: Registry  # the experiment's claims registry
    in_launcher: bool  # this job runs in the launching process (a single run, or Hydra's basic launcher)
    multirun: bool
    swept: str = ""  # in a multirun, the overrides that set this job apart from the sweep's others


def run_job(cfg: DictConfig) -> dict[str, Any]:
    """One Hydra job = one MLflow run (a child of the sweep's parent in a multirun).

    The steps: validate; find the store; plan from the store alone (skip a FINISHED run, refuse
    to continue another code version's run); claim the config hash (`per_exp.claims`: at most one
    live owner, else skip and say who holds it); plan again under the claim, now reading the
    checkpoint; open or attach the run; train with a heartbeat; finish, or end the way
    `per_exp.endings` says, and release the claim.
    """
    conf, resolved = validated(cfg)
    job = HydraJob.current(conf)
    if not conf.tracking.enabled:
        s = run_one(conf, label=job.name)
        return {"solved_episode": s.solved_episode, "episodes": s.episodes}
    group = _group_of(job)
    if group is not None:
        from per_exp import group_job

        return group_job.run_group(job, group)
    place = locate(conf, resolved, job)
    if place.swept:  # named by what sets this job apart from the sweep's others
        job = dataclasses.replace(job, name=tracking.run_name(conf, place.swept))
    try:
        with credentials.server_access(place.uri):  # a refused login: one line, before any run exists
            plan = plan_run(conf, job, place, read_checkpoint=False)
    except ConfigError as e:
        if place.in_launcher:
            _refuse_now(e)
        log.error("error: %s", e)  # a sweep's callback refuses this up front; here only after a race
        return {"refused": str(e)}
    if plan is None:
        return {"skipped": True}
    claim = place.registry.claim(place.config_hash, owner.this_process(), conf.tracking.stale_after_seconds)
    if claim.lease is None:
        return say_held(job, place, claim)
    beat = Heartbeat(
        place.registry,
        claim.lease,
        every=conf.tracking.heartbeat_seconds,
        give_up_after=min(conf.tracking.server_timeout_seconds, conf.tracking.stale_after_seconds / 2),
    ).start()
    run: tracking.RunLogger | None = None
    stops = StopSignals()  # SIGTERM/SIGUSR2: stop at the next episode boundary, after a checkpoint
    ending: endings.Ending | None = None
    cause: slurm.StopCause | None = None
    release = True
    try:
        if claim.taken_over is not None:
            gone = claim.taken_over.lease.owner.describe()
            log.info("[%s] took config hash %s over from %s: %s", job.name, place.config_hash, gone, claim.why)
        plan = plan_run(conf, job, place, read_checkpoint=True)  # again: the store may have moved meanwhile
        if plan is None:
            return {"skipped": True}
        run = open_or_attach(conf, resolved, job, place, plan)
        with stops:
            model, summary = _train(conf, job, place, plan, run, beat, stops)
        finish(conf, resolved, job, place, run, model, summary)
        return {"run_id": run.run_id, "solved_episode": summary.solved_episode, "episodes": summary.episodes}
    except BaseException as e:
        with processes.ignored_stops():
            ending = endings.classify(e, stops.signum)
            release = ending.may_write
            cause = slurm.why_stopped() if stops.signum == signal.SIGTERM else None
            detail = cause.description if cause is not None else ""
            endings.close_run(ending, job.name, run, job.out_dir, place.uri, place.checkpoint_path, detail)
    finally:
        beat.stop()
        if release:
            with contextlib.suppress(Exception):  # a store that failed: the heartbeat goes stale instead
                place.registry.release(claim.lease)
    # Only now that the run is closed and its claim released may the job come back (and resume it).
    if cause is not None and cause.requeue:
        slurm.requeue_self()
    stops.hand_on()  # SIGUSR2 under submitit: its handler requeues and exits
    assert ending is not None  # the try block returns unless it raised
    if cause is not None and ending.signum is not None:
        # Slurm stopped this attempt (preempted, requeued, cancelled, time limit). Returning would
        # record it as the job's result (submitit), and the launcher would stop waiting while Slurm
        # starts the next attempt; an exit leaves the outcome to Slurm's job state. The line is said.
        raise SystemExit(128 + ending.signum)
    return _after_ending(ending, place, run)


def _group_of(job: HydraJob) -> int | None:
    """The group this launcher job trains (a grouped sweep: `hydra.job.num`), None for a job of one run."""
    if job.sweep_dir is None:
        return None
    try:
        sweep = C.SweepFile.read(job.sweep_dir)
    except C.SweepFileError:
        return None  # _locate says it, with the way out
    if sweep is None or not sweep.groups:
        return None
    return int(HydraConfig.get().job.num)


def validated(cfg: DictConfig) -> tuple[Config, dict[str, Any]]:
    """The typed config and its resolved dict; bad input exits 2 before any run exists."""
    conf = config.typed(cfg)
    try:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.RUN:
            choices.check_composed(HydraConfig.get().runtime.choices)  # a sweep's are checked by its callback
        validate(conf)
    except ConfigError as e:
        _refuse_now(e)
    return conf, config.resolved(cfg)


def _refuse_now(e: ConfigError) -> NoReturn:
    print(f"error: {e}", file=sys.stderr)
    raise SystemExit(C.EXIT_BAD_INPUT) from None


def locate(conf: Config, resolved: dict[str, Any], job: HydraJob) -> RunPlace:
    """The store, experiment, claims registry and checkpoint folder: the sweep's (set up and checked by
    the sweep manager), else our own, checked here (bad or unreachable: exit 2 before any run)."""
    try:
        sweep = C.SweepFile.read(job.sweep_dir) if job.sweep_dir else None
    except C.SweepFileError as e:
        log.error("%s", e)
        raise SystemExit(C.EXIT_BAD_INPUT) from None
    chash = config.config_hash(resolved)
    if sweep is not None:
        store.bound_http(conf.tracking.server_timeout_seconds)
        client = tracking.client_for(sweep.uri)
        registry = Registry(client, sweep.experiment_id, sweep.claims_run_id)
        place_uri, exp_id, ckpt_root = sweep.uri, sweep.experiment_id, Path(sweep.checkpoint_root)
        in_launcher = owner.Owner.from_dict(sweep.launcher).same_process(owner.this_process())
    else:
        try:
            place_uri = C.resolve_tracking_uri(conf.tracking.uri)
            ckpt_root = checkpoint.root_for(conf.checkpoint.dir, place_uri, job.launch_dir)
            store.check_store(place_uri, conf.tracking.server_timeout_seconds)
            store.check_folder("checkpoint.dir", conf.checkpoint.dir or str(ckpt_root), ckpt_root)
            with credentials.server_access(place_uri):  # a refused login: one line, before any run exists
                opened = store.open_for_launch(
                    place_uri, conf.tracking.experiment, conf.tracking.server_timeout_seconds
                )
        except ConfigError as e:
            _refuse_now(e)
        except ClaimError as e:  # the registry is deleted or its election never finished: say how to go on
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(C.EXIT_FAILED) from None
        client, exp_id, registry = opened.client, opened.experiment_id, opened.registry
        in_launcher = job.sweep_dir is None  # a multirun without per_exp's callback: jobs may be anywhere
    return RunPlace(
        place_uri,
        client,
        exp_id,
        chash,
        checkpoint.path_for(ckpt_root, exp_id, chash),
        sweep.parent_run_id if sweep is not None else None,
        registry,
        in_launcher,
        job.sweep_dir is not None,
        next((j.overrides for j in sweep.jobs if j.config_hash == chash), "") if sweep is not None else "",
    )


def plan_run(conf: Config, job: HydraJob, place: RunPlace, read_checkpoint: bool) -> resume.Plan | None:
    """What to do with the hash (None: skip it, it is FINISHED); ConfigError if continuing its run
    would mix two code versions without `resume_across_commits=true`."""
    plan = resume.plan_job(
        place.client, place.experiment_id, place.config_hash, place.checkpoint_path, conf.rerun, read_checkpoint
    )
    if plan.action == resume.SKIP:
        log.info("skipping %s: %s (rerun=true runs it again)", job.name, plan.reason)
        return None
    if plan.action == resume.RESUME:
        assert plan.run_id is not None
        tags = place.client.get_run(plan.run_id).data.tags
        provenance.check_resume(plan.run_id, tags, tracking.code_version(), conf.resume_across_commits)
    return plan


def say_held(job: HydraJob, place: RunPlace, claim: Claim) -> dict[str, Any]:
    """Another live process trains this hash: leave it alone, say so, and (a single run) exit 3."""
    assert claim.held_by is not None
    log.warning(
        "skipping %s: config hash %s is held by %s (%s); a run whose owner lives is never taken over",
        job.name,
        place.config_hash,
        claim.held_by.lease.owner.describe(),
        claim.why,
    )
    if not place.multirun:
        raise SystemExit(C.EXIT_HELD_ELSEWHERE)
    return {"held_by": claim.held_by.lease.owner.describe()}


def _after_ending(ending: endings.Ending, place: RunPlace, run: tracking.RunLogger | None) -> dict[str, Any]:
    """What the job hands back once its run is closed. A deliberate stop of the launcher's own process
    stops the launch (per_exp.train closes the sweep); in a worker the launch goes on. A bug is raised."""
    if ending.kind == endings.FAILED:
        raise ending.error
    if ending.kind == endings.STOPPED and place.in_launcher:
        assert ending.signum is not None
        raise processes.Stopped(ending.signum)
    if place.in_launcher and not place.multirun:
        raise SystemExit(C.EXIT_BAD_INPUT if ending.kind == endings.REFUSED else C.EXIT_FAILED)
    return {"run_id": run.run_id if run is not None else None, "ended": ending.kind}


def _job_tags(job: HydraJob) -> dict[str, str]:
    return {
        C.TAG_OVERRIDES: job.overrides,
        # which process holds a RUNNING run (the claims registry is what decides; these are for people)
        C.TAG_HOST: socket.gethostname(),
        C.TAG_PID: str(os.getpid()),
        # under Slurm: the job id (kept across requeues) and its restart count
        **slurm.run_tags(),
    }


def open_or_attach(
    conf: Config,
    resolved: dict[str, Any],
    job: HydraJob,
    place: RunPlace,
    plan: resume.Plan,
    together: tuple[int, int] = (1, 1),
) -> tracking.RunLogger:
    """A new run (FRESH), or the unfinished run with our hash reopened and retagged (RESUME).

    A continued run keeps its first code version's `git.commit` and `versions.*`; a different
    version (allowed by `resume_across_commits`) is added to its code history. `together` is
    (slots, runs) of the engine it trains in: its `wall_seconds` are shared with the other slots.
    """
    flush_every = conf.tracking.flush_every_episodes
    tags = _job_tags(job) | {C.TAG_GROUP: C.group_tag(*together)}
    here = {**tracking.code_version(), "machine": machine.fingerprint()}
    if plan.action == resume.FRESH:
        tags |= {C.TAG_ROLE: C.ROLE_JOB, C.TAG_CONFIG_HASH: place.config_hash, C.TAG_MACHINE: here["machine"]}
        tags |= {**tracking.git_tags(), **tracking.version_tags()}
        tags[C.TAG_CODE_HISTORY] = provenance.encode(provenance.started(here))
        if place.parent_run_id is not None:
            tags |= {C.TAG_PARENT: place.parent_run_id, C.TAG_SWEEP_ID: place.parent_run_id}
        params = config.science_params(resolved)
        run = tracking.RunLogger.start(place.client, place.experiment_id, job.name, params, tags, flush_every)
    else:
        # The run keeps its original parent: it is the same piece of work, now continued.
        assert plan.run_id is not None  # resume.decide names the run it continues
        run = tracking.RunLogger.attach(place.client, plan.run_id, flush_every)
        previous = place.client.get_run(plan.run_id).data.tags
        if C.TAG_ERROR in previous:  # the error of an earlier attempt; it is in error.txt if it was a crash
            place.client.delete_tag(plan.run_id, C.TAG_ERROR)
        tags[C.TAG_RESUMES] = str(int(previous.get(C.TAG_RESUMES, "0")) + 1)
        tags[C.TAG_RESUMED_FROM] = str(plan.from_episode)
        first_new = max(run.logged_upto.values(), default=-1) + 1
        history = provenance.continued(previous, here, plan.from_episode, first_new)
        if history is not None:
            tags[C.TAG_CODE_HISTORY] = provenance.encode(history)
        if plan.refused:
            tags[C.TAG_CHECKPOINT_REFUSED] = plan.refused[:5000]
        run.set_tags(tags)
    log.info(
        "MLflow run %s (%s) in experiment %s at %s: %s",
        job.name,
        run.run_id,
        place.experiment_id,
        place.uri,
        plan.reason,
    )
    return run


def _train(
    conf: Config,
    job: HydraJob,
    place: RunPlace,
    plan: resume.Plan,
    run: tracking.RunLogger,
    beat: Heartbeat,
    stops: StopSignals,
) -> tuple[dict[str, Any], Summary]:
    """Train to the end (a group of one), from the checkpoint if the plan has one, saving checkpoints on the way.

    Returns the final online network's state (empty unless tracking.log_model) and the summary.
    Every episode and every checkpoint first asks the heartbeat whether the claim still holds: a
    job taken over, or cut off from the store, stops before it writes anything more. A checkpoint
    whose state does not fit this code (an older format, other shapes) is refused and the run
    starts over in place.
    """

    sink, save_checkpoint = episode_sink(run, beat), checkpoint_saver(run, beat, place)
    model: dict[str, Any] = {}

    def keep_model(summary: Summary, view: RunView) -> None:
        if conf.tracking.log_model:
            model.update(view.online_state_dict())

    state = None
    if plan.state is not None:
        state = resume_from(plan, run, job.name, place.checkpoint_path)
    summary = run_one(
        conf,
        on_episode=sink,
        label=job.name,
        state=state,
        on_checkpoint=save_checkpoint,
        on_end=keep_model,
        should_stop=stops.requested,
        on_state_mismatch=lambda e: start_over(e, run, place.checkpoint_path),
    )
    run.flush()
    return model, summary


def episode_sink(run: tracking.RunLogger, beat: Heartbeat) -> Callable[[int, dict[str, float]], None]:
    """What the engine calls after each of the run's episodes: nothing is written once the claim is lost."""

    def sink(episode: int, metrics: dict[str, float]) -> None:
        beat.check()
        run.log_episode(episode, metrics)

    return sink


def checkpoint_saver(run: tracking.RunLogger, beat: Heartbeat, place: RunPlace) -> Callable[[dict[str, Any]], None]:
    """What the engine calls with the run's state every `checkpoint.every_episodes` episodes."""

    def save_checkpoint(state: dict[str, Any]) -> None:
        beat.check()
        # Flush first: a checkpoint promises that every point before it is in the store.
        run.flush()
        checkpoint.save(
            place.checkpoint_path,
            {
                "config_hash": place.config_hash,
                "experiment_id": place.experiment_id,
                "run_id": run.run_id,
                "trainer": state,
                "rows": run.rows,
            },
        )

    return save_checkpoint


def resume_from(plan: resume.Plan, run: tracking.RunLogger, name: str, ckpt: Path) -> dict[str, Any]:
    """The engine state a run resumes from; the rows logged before it are taken back into the run."""
    assert plan.state is not None
    run.rows = list(plan.state["rows"])
    log.info("[%s] resuming at episode %d from %s", name, plan.from_episode, ckpt)
    return plan.state["trainer"]


def start_over(e: StateMismatch, run: tracking.RunLogger, ckpt: Path) -> None:
    """The checkpoint's state does not fit this code: refuse it, and the run starts over in place."""
    why = f"its state does not fit this code ({e})"
    checkpoint.refuse(ckpt, why)
    run.set_tags({C.TAG_CHECKPOINT_REFUSED: why, C.TAG_RESUMED_FROM: "0"})
    run.rows = []


def _summary_metrics(s: Summary) -> dict[str, float]:
    out = {
        C.SOLVED: float(s.solved),
        C.EPISODES: float(s.episodes),
        C.TOTAL_ENV_STEPS: float(s.total_env_steps),
        C.UPDATES: float(s.updates),
        C.WALL_SECONDS: s.wall_seconds,
        C.SPS: s.sps,
        **{C.time_metric(k): v for k, v in s.timings.items()},
    }
    if s.solved_episode is not None:
        out[C.SOLVED_EPISODE] = float(s.solved_episode)
    return out


def finish(
    conf: Config,
    resolved: dict[str, Any],
    job: HydraJob,
    place: RunPlace,
    run: tracking.RunLogger,
    model: dict[str, Any],
    summary: Summary,
) -> None:
    """Summary metrics and artifacts, then FINISHED; the checkpoint goes unless asked to keep it."""
    run.log_summary(_summary_metrics(summary))
    out = job.out_dir
    (out / C.ARTIFACT_CONFIG).write_text(OmegaConf.to_yaml(resolved))
    _write_episode_table(run.rows, out / C.ARTIFACT_EPISODES)
    run.log_artifacts({"": out / C.ARTIFACT_CONFIG}, {C.ARTIFACT_HYDRA_DIR: job.hydra_dir})
    run.log_artifacts({"": out / C.ARTIFACT_EPISODES}, {})
    if conf.tracking.log_model:
        import torch

        torch.save(model, out / C.MODEL_FILE)
        run.log_artifacts({C.ARTIFACT_MODEL_DIR: out / C.MODEL_FILE}, {})
    run.end("FINISHED")
    if not conf.checkpoint.keep:
        checkpoint.remove(place.checkpoint_path)


def _write_episode_table(rows: list[dict], path: Path) -> None:
    keys: list[str] = [C.EPISODE_COLUMN]
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
