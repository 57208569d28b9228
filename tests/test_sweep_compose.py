"""A sweep's jobs composed once per set of non-seed overrides equal the same jobs composed one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from per_exp.config import config_hash, register_configs, resolved
from per_exp.sweep import compose_job_configs

CONF = str(Path(__file__).resolve().parent.parent / "conf")


@pytest.fixture(autouse=True)
def _schemas():
    register_configs()  # the structured schemas the YAML files extend, as the entry point registers them


@pytest.mark.parametrize(
    "overrides",
    [
        ["sampler=uniform,sumtree", "seed=0,1,2"],  # the README's main command
        ["experiment=study", "env=cartpole_v0,acrobot_v1", "ablation=per,prio_rank", "seed=range(3,6)"],
        ["experiment=seed_notebook", "seed=7,-1", "lr=0.001,0.0005"],
        ["seed=4"],  # one job: nothing to share, still the shortcut's path
    ],
)
def test_each_job_equals_its_own_full_compose(overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        jobs = compose_job_configs("config", overrides)
        assert len(jobs) > 0
        for job, cfg in jobs:
            alone = compose(config_name="config", overrides=job)
            assert OmegaConf.to_container(cfg, resolve=False) == OmegaConf.to_container(alone, resolve=False), job
            assert config_hash(resolved(cfg)) == config_hash(resolved(alone)), job


def test_the_copies_do_not_share_their_seed():
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        jobs = compose_job_configs("config", ["seed=range(0,4)"])
    assert [cfg.seed for _, cfg in jobs] == [0, 1, 2, 3]
    assert len({config_hash(resolved(cfg)) for _, cfg in jobs}) == 4
