"""Hydra callback that turns a multirun into one MLflow sweep.

Runs on the launching machine before any job starts: it composes and
validates every job's config (bad input fails before any run exists), makes
sure the store is initialised and the experiment exists (so concurrent
workers never race on schema migration or `set_experiment`), and creates the
sweep's parent run. Jobs read the ids from a small file in the sweep folder
and attach as children; they never create shared state themselves.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from per_exp import tracking
from per_exp.config import ConfigError, validate

log = logging.getLogger(__name__)


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The job override lists a basic sweep of `overrides` will run."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides=overrides)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch]


def compose_job_configs(config_name: Optional[str], overrides: list[str]) -> list[tuple[list[str], DictConfig]]:
    from hydra import compose

    return [(job, compose(config_name=config_name, overrides=job)) for job in expand_sweep(overrides)]


def read_sweep_file(sweep_dir: str | Path) -> Optional[dict]:
    p = Path(sweep_dir) / tracking.SWEEP_FILE
    return json.loads(p.read_text()) if p.exists() else None


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.parent: Optional[dict] = None
        self._closed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        config_name = kwargs.get("config_name")
        task_overrides = list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
        try:
            jobs = compose_job_configs(config_name, task_overrides)
            for job_overrides, job_cfg in jobs:
                validate(OmegaConf.to_object(job_cfg))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        first = jobs[0][1]
        if not first.tracking.enabled:
            return
        uri = tracking.resolve_uri(first.tracking.uri)
        client = tracking.client_for(uri)
        exp_id = tracking.ensure_experiment(client, first.tracking.experiment)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        name = "sweep-" + "_".join(sweep_dir.resolve().parts[-2:])
        run = client.create_run(
            exp_id,
            run_name=name,
            tags={
                tracking.ROLE_TAG: "sweep",
                "hydra.overrides": " ".join(task_overrides),
                "per_exp.n_jobs": str(len(jobs)),
                "per_exp.sweep_dir": str(sweep_dir.resolve()),
                **tracking.git_tags(),
                **tracking.version_tags(),
            },
        )
        self.parent = {
            "uri": uri,
            "experiment_id": exp_id,
            "parent_run_id": run.info.run_id,
            "n_jobs": len(jobs),
        }
        (sweep_dir / tracking.SWEEP_FILE).write_text(json.dumps(self.parent, indent=2))
        log.info("MLflow sweep %s: parent run %s, %d jobs -> %s", name, run.info.run_id, len(jobs), uri)
        # If a job fails, Hydra's sweeper raises and on_multirun_end never runs:
        # close the parent at exit so it is never left RUNNING.
        atexit.register(self._close)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close()

    def _close(self) -> None:
        if self.parent is None or self._closed:
            return
        self._closed = True
        client = tracking.client_for(self.parent["uri"])
        pid = self.parent["parent_run_id"]
        children = client.search_runs(
            [self.parent["experiment_id"]],
            filter_string=f"tags.`{tracking.PARENT_TAG}` = '{pid}'",
            max_results=5000,
        )
        bad = [r for r in children if r.info.status != "FINISHED"]
        expected = self.parent["n_jobs"]
        status = "FINISHED" if not bad and len(children) >= expected else "FAILED"
        client.set_terminated(pid, status=status)
        done = len(children) - len(bad)
        msg = f"sweep {pid}: {done}/{expected} jobs FINISHED"
        if bad:
            msg += "; not finished: " + ", ".join(f"{r.info.run_name} ({r.info.status})" for r in bad)
        (log.info if status == "FINISHED" else log.error)(msg)
        print(msg, file=sys.stderr)
