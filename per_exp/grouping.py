"""A sweep's jobs in groups: which runs train together in one launcher job, and what that job reads.

The sweep manager (`per_exp.sweep`) composes every job's config on the launching
machine before anything runs; `plan` puts the jobs that may share the engine
(the same `group_key`: they differ only in per-run keys such as the seed, lr
or gamma) into groups, in sweep order, cut at `group.max_runs`. Each group's
members, with their overrides and composed configs, go to
`<sweep dir>/.per_exp_groups/<i>.json`, so a launcher job anywhere (a joblib
worker, a Slurm node) reads its members instead of composing them again, and
reads exactly what was validated. The grouped sweeper
(`hydra_plugins/per_exp_sweeper`) launches one job per group; the job trains
its members on `group.slots` slots (`per_exp.group_job`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from per_exp.config import Config
from per_exp.engine.trainer import group_key

GROUPS_DIR = ".per_exp_groups"


@dataclass(frozen=True)
class Member:
    """One run of a group: the sweep job it is."""

    index: int  # its index among the sweep's jobs (SweepFile.jobs)
    overrides: tuple[str, ...]  # the job's overrides, as Hydra would have given them to its own job
    config: dict[str, Any]  # its composed config, interpolations unresolved (what .hydra/config.yaml holds)

    def composed(self) -> DictConfig:
        """The config as Hydra composed it: typed by the schema again (`per_exp.config.typed` reads it)."""
        cfg = OmegaConf.merge(OmegaConf.structured(Config), self.config)
        assert isinstance(cfg, DictConfig)
        return cfg


def plan(configs: Sequence[Config]) -> tuple[tuple[int, ...], ...]:
    """The groups of a sweep's jobs (indexes into `configs`), or () when grouping is off.

    The `group` keys are bookkeeping, so a valid sweep cannot vary them (two jobs differing only there
    share a config hash and are refused): the first job's are the sweep's.
    """
    if not configs or not configs[0].group.enabled:
        return ()
    by_key: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        by_key.setdefault(group_key(c), []).append(i)
    cap = configs[0].group.max_runs
    out: list[tuple[int, ...]] = []
    for members in by_key.values():
        step = cap or len(members)
        out += [tuple(members[j : j + step]) for j in range(0, len(members), step)]
    return tuple(out)


def _path(sweep_dir: str | Path, group: int) -> Path:
    return Path(sweep_dir) / GROUPS_DIR / f"{group}.json"


def write(sweep_dir: str | Path, groups: Sequence[Sequence[int]], jobs: Sequence[tuple[list[str], DictConfig]]) -> None:
    """One file per group with its members' overrides and composed configs."""
    (Path(sweep_dir) / GROUPS_DIR).mkdir(parents=True, exist_ok=True)
    for g, members in enumerate(groups):
        rows = [
            {"index": i, "overrides": list(jobs[i][0]), "config": OmegaConf.to_container(jobs[i][1], resolve=False)}
            for i in members
        ]
        tmp = _path(sweep_dir, g).with_suffix(".tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(_path(sweep_dir, g))  # whole or absent: a worker never reads half a file


def read(sweep_dir: str | Path, group: int) -> list[Member]:
    rows = json.loads(_path(sweep_dir, group).read_text())
    return [Member(int(r["index"]), tuple(r["overrides"]), r["config"]) for r in rows]


def first_overrides(sweep_dir: str | Path, group: int) -> list[str]:
    """The overrides the group's launcher job is launched with: its first member's (Hydra composes them)."""
    return list(read(sweep_dir, group)[0].overrides)
