"""One Hydra job = one MLflow run: validate, find or open the run, train, finish or fail.

`per_exp.train` (the entry point) hands each composed job config to `run_job`,
which reads as the list of a job's steps; each step is a function below.
Before creating anything the job looks its config hash up in the store: a
FINISHED run means skip; an unfinished one is continued in place from its
checkpoint (`per_exp.resume`). Nothing in the engine imports this module.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import signal
import socket
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from per_exp import checkpoint, config, credentials, resume, slurm, tracking
from per_exp import contract as C
from per_exp.config import Config, ConfigError, validate
from per_exp.engine.trainer import STATE_FORMAT, RunView, Summary, run_one
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
    swept: str = ""  # in a multirun, the overrides that set this job apart from the sweep's others


def run_job(cfg: DictConfig) -> dict[str, Any]:
    """One Hydra job = one MLflow run (a child of the sweep's parent in a multirun)."""
    conf, resolved = _validated(cfg)
    job = HydraJob.current(conf)
    if not conf.tracking.enabled:
        s = run_one(conf, label=job.name)
        return {"solved_episode": s.solved_episode, "episodes": s.episodes}
    try:
        place = _locate(conf, resolved, job)
        if place.swept:  # named by what sets this job apart from the sweep's others
            job = dataclasses.replace(job, name=tracking.run_name(conf, place.swept))
        with credentials.server_access(place.uri):  # a refused login: one line, before any run exists
            plan = resume.plan_job(
                place.client, place.experiment_id, place.config_hash, place.checkpoint_path, conf.rerun
            )
    except ConfigError as e:
        log.error("%s", e)
        raise SystemExit(2) from None
    plan = _engine_state_or_restart(plan, place)
    if plan.action == resume.SKIP:
        log.info("skipping %s: %s (rerun=true runs it again)", job.name, plan.reason)
        return {"run_id": plan.run_id, "skipped": True}
    run = _open_or_attach(conf, resolved, job, place, plan)
    stops = StopSignals()  # SIGTERM/SIGUSR2: stop at the next episode boundary, after a checkpoint
    try:
        with stops:
            model, summary = _train(conf, job, place, plan, run, stops)
        _finish(conf, resolved, job, place, run, model, summary)
    except BaseException as e:
        cause = slurm.why_stopped() if stops.signum == signal.SIGTERM else None
        _fail(job, run, e, stops, cause)
        # Only now that the run is closed may the job come back (and resume it).
        if cause is not None and cause.requeue:
            slurm.requeue_self()
        stops.hand_on()  # SIGUSR2 under submitit: its handler requeues and exits
        raise
    return {"run_id": run.run_id, "solved_episode": summary.solved_episode, "episodes": summary.episodes}


def _validated(cfg: DictConfig) -> tuple[Config, dict[str, Any]]:
    """The typed config and its resolved dict; bad input exits 2 before any run exists."""
    conf = config.typed(cfg)
    try:
        validate(conf)
    except ConfigError as e:
        log.error("%s", e)
        raise SystemExit(2) from None
    return conf, config.resolved(cfg)


def _locate(conf: Config, resolved: dict[str, Any], job: HydraJob) -> RunPlace:
    """The store, experiment and checkpoint folder: the sweep's (set up by the sweep manager), else our own."""
    try:
        sweep = C.SweepFile.read(job.sweep_dir) if job.sweep_dir else None
    except C.SweepFileError as e:
        log.error("%s", e)
        raise SystemExit(2) from None
    chash = config.config_hash(resolved)
    if sweep is not None:
        client = tracking.client_for(sweep.uri)
        place_uri, exp_id, ckpt_root = sweep.uri, sweep.experiment_id, Path(sweep.checkpoint_root)
    else:
        place_uri = C.resolve_tracking_uri(conf.tracking.uri)
        client = tracking.client_for(place_uri)
        with credentials.server_access(place_uri):
            exp_id = tracking.ensure_experiment(client, conf.tracking.experiment)
        ckpt_root = checkpoint.root_for(conf.checkpoint.dir, place_uri, job.launch_dir)
    return RunPlace(
        place_uri,
        client,
        exp_id,
        chash,
        checkpoint.path_for(ckpt_root, exp_id, chash),
        sweep.parent_run_id if sweep is not None else None,
        next((j.overrides for j in sweep.jobs if j.config_hash == chash), "") if sweep is not None else "",
    )


def _engine_state_or_restart(plan: resume.Plan, place: RunPlace) -> resume.Plan:
    """A checkpoint of the single-run trainer (before the engine) cannot resume here: the run starts over."""
    if plan.state is None or plan.state["trainer"].get("format") == STATE_FORMAT:
        return plan
    log.warning(
        "ignoring checkpoint %s: run state format %r, expected %r",
        place.checkpoint_path,
        plan.state["trainer"].get("format"),
        STATE_FORMAT,
    )
    return resume.Plan(resume.RESUME, plan.run_id, None, plan.reason + " (its checkpoint predates the engine)")


def _job_tags(job: HydraJob) -> dict[str, str]:
    return {
        C.TAG_OVERRIDES: job.overrides,
        # which process holds a RUNNING run, to tell a live job from a dead one
        C.TAG_HOST: socket.gethostname(),
        C.TAG_PID: str(os.getpid()),
        # under Slurm: the job id (kept across requeues) and its restart count
        **slurm.run_tags(),
        **tracking.git_tags(),
        **tracking.version_tags(),
    }


def _open_or_attach(
    conf: Config, resolved: dict[str, Any], job: HydraJob, place: RunPlace, plan: resume.Plan
) -> tracking.RunLogger:
    """A new run (FRESH), or the unfinished run with our hash reopened and retagged (RESUME)."""
    flush_every = conf.tracking.flush_every_episodes
    tags = _job_tags(job)
    if plan.action == resume.FRESH:
        tags |= {C.TAG_ROLE: C.ROLE_JOB, C.TAG_CONFIG_HASH: place.config_hash}
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
    conf: Config, job: HydraJob, place: RunPlace, plan: resume.Plan, run: tracking.RunLogger, stops: StopSignals
) -> tuple[dict[str, Any], Summary]:
    """Train to the end (a group of one), from the checkpoint if the plan has one, saving checkpoints on the way.

    Returns the final online network's state (empty unless tracking.log_model) and the summary.
    """

    def save_checkpoint(state: dict[str, Any]) -> None:
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

    model: dict[str, Any] = {}

    def keep_model(summary: Summary, view: RunView) -> None:
        if conf.tracking.log_model:
            model.update(view.online_state_dict())

    if plan.state is not None:
        run.rows = list(plan.state["rows"])
        log.info("[%s] resumed at episode %d from %s", job.name, plan.from_episode, place.checkpoint_path)
    summary = run_one(
        conf,
        on_episode=run.log_episode,
        label=job.name,
        state=plan.state["trainer"] if plan.state is not None else None,
        on_checkpoint=save_checkpoint,
        on_end=keep_model,
        should_stop=stops.requested,
    )
    run.flush()
    return model, summary


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


def _finish(
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


def _fail(
    job: HydraJob, run: tracking.RunLogger, e: BaseException, stops: StopSignals, cause: slurm.StopCause | None
) -> None:
    """End the run KILLED (interrupt, stop signal) or FAILED, keeping what it logged and saying why.

    The checkpoint stays: re-launching the command (or a requeued Slurm job) resumes this run from it.
    """
    status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
    error = f"{type(e).__name__}: {e}"
    if stops.signum is not None:
        error = f"stopped by {stops.name}" + (f": {cause.description}" if cause else "") + f" ({error})"
    try:
        run.flush()  # keep what was logged so far
        run.set_tags({C.TAG_ERROR: error[:5000]})
        (job.out_dir / C.ARTIFACT_ERROR).write_text(traceback.format_exc())
        run.log_artifacts({"": job.out_dir / C.ARTIFACT_ERROR}, {})
    finally:
        run.end(status)
    log.error("run %s ended %s: %s", job.name, status, error)


def _write_episode_table(rows: list[dict], path: Path) -> None:
    keys: list[str] = [C.EPISODE_COLUMN]
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
