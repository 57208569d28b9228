"""One Hydra job = one MLflow run: validate, find or open the run, train, finish or fail.

`per_exp.train` (the entry point) hands each composed job config to `run_job`.
Nothing in the engine imports this module.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from per_exp import checkpoint, config, credentials, resume, tracking
from per_exp.config import ConfigError, validate
from per_exp.engine.trainer import Trainer
from per_exp.sweep import read_sweep_file

log = logging.getLogger("per_exp")


def _write_episode_table(rows: list[dict], path: Path) -> None:
    import csv

    keys: list[str] = ["episode"]
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


class JobTerminated(KeyboardInterrupt):
    """SIGTERM (Slurm preemption, `kill`, a launcher shutting down): handled like Ctrl-C, run KILLED."""


@contextmanager
def _sigterm_as_interrupt():
    def handler(signum, frame):
        raise JobTerminated(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (some launchers): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _job_tags(resolved: dict, chash: str, hc) -> dict[str, str]:
    return {
        tracking.ROLE_TAG: "job",
        tracking.HASH_TAG: chash,
        "hydra.overrides": " ".join(hc.overrides.task) if hc else "",
        # which process holds a RUNNING run, to tell a live job from a dead one
        "per_exp.host": socket.gethostname(),
        "per_exp.pid": str(os.getpid()),
        **tracking.git_tags(),
        **tracking.version_tags(),
    }


def run_job(cfg: DictConfig) -> dict[str, Any]:
    """One Hydra job = one MLflow run (a child of the sweep's parent in a multirun).

    Before creating anything the job looks its config hash up in the store:
    a FINISHED run means skip; an unfinished one is continued in place from
    its checkpoint (see `per_exp.resume`).
    """
    resolved = config.resolved(cfg)
    conf = config.typed(cfg)
    try:
        validate(conf)
    except ConfigError as e:
        log.error("%s", e)
        raise SystemExit(2) from None
    name = tracking.run_name(resolved)
    hc = HydraConfig.get() if HydraConfig.initialized() else None
    out_dir = Path(hc.runtime.output_dir) if hc else Path.cwd()

    if not conf.tracking.enabled:
        s = Trainer(conf, run_label=name).run()
        return {"solved_episode": s.solved_episode, "episodes": s.episodes}

    sweep = read_sweep_file(hc.sweep.dir) if hc and hc.mode == RunMode.MULTIRUN else None
    try:
        uri = sweep["uri"] if sweep else tracking.resolve_uri(conf.tracking.uri)
        client = tracking.client_for(uri)
        with credentials.server_access(uri):  # a refused login: one line, before any run exists
            exp_id = sweep["experiment_id"] if sweep else tracking.ensure_experiment(client, conf.tracking.experiment)
            chash = tracking.config_hash(resolved)
            if sweep and sweep.get("checkpoint_root"):
                ckpt_root = Path(sweep["checkpoint_root"])  # resolved on the launching machine
            else:
                ckpt_root = checkpoint.root_for(conf.checkpoint.dir, uri, Path(hc.runtime.cwd) if hc else Path.cwd())
            ckpt_path = checkpoint.path_for(ckpt_root, exp_id, chash)
            plan = resume.plan_job(client, exp_id, chash, ckpt_path, conf.rerun)
    except ConfigError as e:
        log.error("%s", e)
        raise SystemExit(2) from None
    if plan.action == resume.SKIP:
        log.info("skipping %s: %s (rerun=true runs it again)", name, plan.reason)
        return {"run_id": plan.run_id, "skipped": True}
    tags = _job_tags(resolved, chash, hc)
    if plan.action == resume.FRESH:
        if sweep:
            tags[tracking.PARENT_TAG] = sweep["parent_run_id"]
            tags[tracking.SWEEP_TAG] = sweep["parent_run_id"]
        run = tracking.RunLogger.start(
            client, exp_id, name, tracking.science_params(resolved), tags, conf.tracking.flush_every_episodes
        )
    else:
        # The run keeps its original parent: it is the same piece of work, now continued.
        assert plan.run_id is not None  # resume.decide names the run it continues
        run = tracking.RunLogger.attach(client, plan.run_id, conf.tracking.flush_every_episodes)
        previous = client.get_run(plan.run_id).data.tags
        if "error" in previous:  # the error of an earlier attempt; it is in error.txt if it was a crash
            client.delete_tag(plan.run_id, "error")
        tags.pop(tracking.HASH_TAG)
        tags[tracking.RESUME_TAG] = str(int(previous.get(tracking.RESUME_TAG, "0")) + 1)
        tags["per_exp.resumed_from_episode"] = str(plan.from_episode)
        run.set_tags(tags)
    log.info("MLflow run %s (%s) in experiment %s at %s: %s", name, run.run_id, exp_id, uri, plan.reason)

    def save_checkpoint(trainer: Trainer) -> None:
        # Flush first: a checkpoint promises that every point before it is in the store.
        run.flush()
        checkpoint.save(
            ckpt_path,
            {
                "config_hash": chash,
                "experiment_id": exp_id,
                "run_id": run.run_id,
                "trainer": trainer.state_dict(),
                "rows": run.rows,
            },
        )

    try:
        with _sigterm_as_interrupt():
            trainer = Trainer(conf, sink=run.log_episode, run_label=name, on_checkpoint=save_checkpoint)
            if plan.state is not None:
                trainer.load_state_dict(plan.state["trainer"])
                run.rows = list(plan.state["rows"])
                log.info("[%s] resumed at episode %d from %s", name, plan.from_episode, ckpt_path)
            s = trainer.run()
            run.flush()
        summary = {
            "solved": float(s.solved),
            "episodes": float(s.episodes),
            "total_env_steps": float(s.total_env_steps),
            "updates": float(s.updates),
            "wall_seconds": s.wall_seconds,
            "sps": s.sps,
            **{f"time/{k}_seconds": v for k, v in s.timings.items()},
        }
        if s.solved_episode is not None:
            summary["solved_episode"] = float(s.solved_episode)
        run.log_summary(summary)
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
        _write_episode_table(run.rows, out_dir / "episodes.csv")
        if conf.tracking.log_model:
            import torch

            torch.save(trainer.agent.online.state_dict(), out_dir / "model.pt")
        run.log_artifacts(
            {"": out_dir / "config.yaml"},
            {"hydra": out_dir / (hc.output_subdir if hc and hc.output_subdir else ".hydra")},
        )
        run.log_artifacts({"": out_dir / "episodes.csv"}, {})
        if conf.tracking.log_model:
            run.log_artifacts({"model": out_dir / "model.pt"}, {})
        run.end("FINISHED")
        if not conf.checkpoint.keep:
            checkpoint.remove(ckpt_path)
        return {"run_id": run.run_id, "solved_episode": s.solved_episode, "episodes": s.episodes}
    except BaseException as e:
        # The checkpoint stays: re-launching the command resumes this run from it.
        status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
        try:
            run.flush()  # keep what was logged so far
            run.set_tags({"error": f"{type(e).__name__}: {e}"[:5000]})
            (out_dir / "error.txt").write_text(traceback.format_exc())
            run.log_artifacts({"": out_dir / "error.txt"}, {})
        finally:
            run.end(status)
        log.error("run %s ended %s: %s: %s", name, status, type(e).__name__, e)
        raise
