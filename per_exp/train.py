"""Entry point: `python -m per_exp.train [overrides]` (add `-m` for a sweep).

Wires the pieces: validated config -> Trainer -> MLflow run. Nothing else
imports this module.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Any, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from per_exp import tracking
from per_exp.callbacks import read_sweep_file
from per_exp.config import Config, ConfigError, check_override_keys, register_configs, validate
from per_exp.loop import Trainer

log = logging.getLogger("per_exp")

register_configs()


def _write_episode_table(rows: list[dict], path: Path) -> None:
    import csv

    keys: list[str] = ["episode"]
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def run_job(cfg: DictConfig) -> dict[str, Any]:
    """One Hydra job = one MLflow run (a child of the sweep's parent in a multirun)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    conf: Config = OmegaConf.to_object(cfg)
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
    uri = sweep["uri"] if sweep else tracking.resolve_uri(conf.tracking.uri)
    client = tracking.client_for(uri)
    exp_id = sweep["experiment_id"] if sweep else tracking.ensure_experiment(client, conf.tracking.experiment)
    tags = {
        tracking.ROLE_TAG: "job",
        tracking.HASH_TAG: tracking.config_hash(resolved),
        "hydra.overrides": " ".join(hc.overrides.task) if hc else "",
        **tracking.git_tags(),
        **tracking.version_tags(),
    }
    if sweep:
        tags[tracking.PARENT_TAG] = sweep["parent_run_id"]
        tags[tracking.SWEEP_TAG] = sweep["parent_run_id"]
    run = tracking.RunLogger.start(
        client, exp_id, name, tracking.science_params(resolved), tags, conf.tracking.flush_every_episodes
    )
    log.info("MLflow run %s (%s) in experiment %s at %s", name, run.run_id, exp_id, uri)
    try:
        trainer = Trainer(conf, sink=run.log_episode, run_label=name)
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
        return {"run_id": run.run_id, "solved_episode": s.solved_episode, "episodes": s.episodes}
    except BaseException as e:
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> Optional[dict]:
    return run_job(cfg)


def main() -> None:
    try:
        check_override_keys([a for a in sys.argv[1:] if not a.startswith("-")])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    _hydra_main()


if __name__ == "__main__":
    main()
