"""What the config hash covers, and how a key added later stays out of it at its neutral value.

The pinned hashes are those of tests/support/pinned.py (recorded before
the issue-10 refactor): adding keys the documented way must leave them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from omegaconf import MISSING

from per_exp.config import (
    Config,
    EnvConfig,
    SamplerConfig,
    added,
    config_hash,
    hash_rules,
    register_configs,
    science_params,
)
from tests.support.cli import compose_resolved
from tests.support.pinned import PINNED_HASHES


@dataclass
class EvalConfig:
    """A new group whose every key is added with a neutral value."""

    every_episodes: int = added(0)  # 0: no evaluation, as before the group existed
    episodes: int = added(10)


@dataclass
class SamplerPlus(SamplerConfig):
    new_knob: float = added(0.0)


@dataclass
class EnvPlus(EnvConfig):
    # a default that differs from the neutral value: new runs are new science, old runs keep their hash
    obs_noise: float = added(0.05, neutral=0.0)


@dataclass
class ConfigPlus(Config):
    # as if the keys had been added to SamplerConfig and EnvConfig themselves
    sampler: SamplerPlus = MISSING
    env: EnvPlus = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    new_flag: bool = added(False)


@pytest.fixture
def schema_with_added_keys():
    """The real config tree composed against the schema with the dummy keys (Hydra's real ConfigStore)."""
    from hydra.core.config_store import ConfigStore

    register_configs()
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=ConfigPlus)
    cs.store(group="sampler", name="sampler_schema", node=SamplerPlus)
    cs.store(group="env", name="env_schema", node=EnvPlus)
    try:
        yield ConfigPlus
    finally:
        register_configs()


def _compose_plus(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from tests.support.cli import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("overrides, expected", PINNED_HASHES, ids=[" ".join(o) or "default" for o, _ in PINNED_HASHES])
def test_pinned_hashes_survive_added_keys_at_their_neutral_value(schema_with_added_keys, overrides, expected):
    resolved = _compose_plus([*overrides, "env.obs_noise=0.0"])
    assert resolved["new_flag"] is False and resolved["sampler"]["new_knob"] == 0.0
    assert resolved["eval"] == {"every_episodes": 0, "episodes": 10}
    assert config_hash(resolved, schema_with_added_keys) == expected


def test_an_added_key_off_its_neutral_value_is_new_science(schema_with_added_keys):
    base = config_hash(_compose_plus(["env.obs_noise=0.0"]), schema_with_added_keys)
    assert base == PINNED_HASHES[0][1]
    changed = {
        config_hash(_compose_plus(["env.obs_noise=0.0", *ov]), schema_with_added_keys)
        for ov in (["new_flag=true"], ["sampler.new_knob=0.5"], ["eval.every_episodes=5"], ["eval.episodes=3"])
    }
    assert base not in changed and len(changed) == 4
    # the default of obs_noise is not its neutral value: a default run is not an old run
    assert config_hash(_compose_plus([]), schema_with_added_keys) != base
    params = science_params(_compose_plus(["eval.every_episodes=5"]), schema_with_added_keys)
    assert params["eval.every_episodes"] == 5 and "eval.episodes" not in params and "new_flag" not in params


def test_bookkeeping_is_declared_on_the_schema_and_stays_out():
    rules = hash_rules(Config)
    assert set(rules.bookkeeping) == {
        "tracking",
        "checkpoint",
        "group",
        "log_every_episodes",
        "rerun",
        "resume_across_commits",
    }
    # the keys added after runs existed, each at the value that behaves as before it
    assert rules.neutral == {
        "solve.rule": "length",
        "solve.return_threshold": None,
        "solve.window": 100,
        "eval.every_episodes": 0,
        "eval.episodes": 10,
    }
    params = science_params(compose_resolved([]))
    assert not any(rules.is_bookkeeping(k) for k in params)
    assert {"seed", "sampler.alpha", "env.id", "fail_at_episode", "torch_threads"} <= set(params)
