"""`hydra/sweeper=per_exp` (the default in conf/config.yaml): Hydra's basic sweeper, one launcher job per group.

(A Hydra sweeper must live in the `hydra_plugins` package; it is per_exp's all the same.)

Why the sweeper: it is the one place that decides what a launcher job is, for
every launcher alike, so the basic, joblib, submitit (Slurm) and Ray launchers
all run groups without knowing it, and a cluster schedules groups. It expands
the sweep exactly as Hydra's basic sweeper does (same keys, same `params`, so
`experiment=study`'s preset sweeps as before). per_exp's sweep manager, a
Hydra callback that runs just before the sweeper, has already composed and
validated every job and planned the groups (`per_exp.grouping`) into the
sweep file; when it planned any, the sweeper launches one job per group,
composed from the group's first member's overrides, and that job trains all
its members (`per_exp.group_job`). No sweep file, or no groups in it
(`group.enabled=false`, `tracking.enabled=false`): exactly the basic sweeper.
"""

# no `from __future__ import annotations`: Hydra scans plugins outside sys.modules, where a
# dataclass cannot resolve string annotations
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from per_exp import grouping
from per_exp.contract import SweepFile


@dataclass
class GroupedSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.per_exp_sweeper.grouped_sweeper.GroupedSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="per_exp", node=GroupedSweeperConf, provider="per_exp")


def fit_pool(launcher: Any, n_jobs: int) -> None:
    """No more joblib workers than launcher jobs.

    An idle loky worker dies of a Ctrl-C (the terminal signals the whole process group), and loky
    then kills every worker of the pool, busy ones included, before they can checkpoint and close
    their runs. A grouped sweep often has fewer jobs than cores (one group), so the pool is cut to
    the jobs. (Workers that go idle at the tail of a long sweep are the same risk; not handled.)
    """
    pool = getattr(launcher, "joblib", None)
    if not isinstance(pool, dict) or n_jobs < 1:
        return
    want = pool.get("n_jobs", -1)
    cores = os.cpu_count() or 1
    workers = cores + 1 + want if isinstance(want, int) and want < 0 else int(want)
    if workers > n_jobs:
        pool["n_jobs"] = n_jobs


class GroupedSweeper(BasicSweeper):
    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        planned = SweepFile.read(sweep_dir)
        if planned is None or not planned.groups:
            if planned is not None:
                fit_pool(self.launcher, planned.n_jobs)
            return super().sweep(arguments)
        fit_pool(self.launcher, len(planned.groups))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        # launcher job i is group i (per_exp.group_job reads hydra.job.num)
        batch = [grouping.first_overrides(sweep_dir, g) for g in range(len(planned.groups))]
        self.overrides = [batch]
        self.batch_index = 1
        results = self.launcher.launch(batch, initial_job_idx=0)
        for r in results:
            _ = r.return_value  # as the basic sweeper: a failed job raises here, after every job ran
        return [results]
