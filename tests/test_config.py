"""Every config group composes into the typed schema; the seed preset is the notebook."""

from __future__ import annotations

from dataclasses import replace

import pytest

from per_exp.config import Config, ConfigError, check_override_keys, validate
from tests.support.cli import CONF_DIR, compose


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["sampler", "network", "env", "experiment"])
def test_every_group_option_composes_and_validates(group):
    options = _options(group)
    assert options, f"no options in conf/{group}"
    for opt in options:
        cfg = compose([f"{group}={opt}"])
        assert isinstance(cfg, Config)
        validate(cfg)
        if group in ("sampler", "network", "env"):
            assert getattr(cfg, group).name == opt


def test_groups_hold_the_required_options():
    assert {"uniform", "linear_scan", "sumtree"} <= set(_options("sampler"))
    assert {"dueling", "mlp"} <= set(_options("network"))
    assert {"cartpole_v0", "cartpole_v1"} <= set(_options("env"))
    assert "seed_notebook" in _options("experiment")


def test_env_step_limits():
    assert compose(["env=cartpole_v0"]).env.max_steps == 200
    assert compose(["env=cartpole_v1"]).env.max_steps == 500


def test_defaults_and_stable_names():
    cfg = compose()
    assert cfg.seed == 0 and cfg.max_episodes == 500
    assert cfg.tracking.uri is None and cfg.tracking.experiment == "per-cartpole"
    # solve rule follows the env's success length through interpolation
    assert compose(["env=cartpole_v1"]).solve.min_length == 476


def test_types_are_checked_by_the_schema():
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ValidationError

    with pytest.raises((ValidationError, ConfigCompositionException)):
        compose(["batch_size=abc"])


def test_seed_notebook_is_the_notebook():
    c = compose(["experiment=seed_notebook"])
    s = c.sampler
    assert s.name == "linear_scan"
    assert (s.alpha, s.eps, s.is_weights, s.stratified) == (1.0, 1e-4, False, False)
    assert (s.new_priority, s.refresh, s.scan_off_by_one) == ("zero", "full_episode", True)
    assert c.network.name == "dueling" and (c.network.hidden, c.network.layers) == (32, 3)
    assert (c.env.max_steps, c.env.reward, c.env.truncation_as_terminal) == (200, "seed", True)
    assert c.solve.min_length == 196 and c.solve.consecutive == 10
    assert (c.epsilon.schedule, c.epsilon.scale) == ("inverse_episode", 0.5)
    assert (c.target_sync.every, c.target_sync.unit, c.target_sync.copy_at_start) == (2, "episodes", False)
    assert (c.warmup_episodes, c.learning_starts, c.batch_size, c.capacity) == (30, 32, 32, 10_000)
    assert (c.gamma, c.lr, c.max_episodes) == (0.99, 1e-4, 500)


def test_seed_preset_with_other_samplers():
    # the seed's own uniform baseline composes as is
    validate(compose(["experiment=seed_notebook", "sampler=uniform"]))
    # a tree sampler would silently ignore the scan bug: refused, with the fix in the message
    with pytest.raises(ConfigError) as e:
        validate(compose(["experiment=seed_notebook", "sampler=sumtree"]))
    assert e.value.key == "sampler.scan_off_by_one" and "scan_off_by_one=false" in str(e.value)
    validate(compose(["experiment=seed_notebook", "sampler=sumtree", "sampler.scan_off_by_one=false"]))


def test_seed_notebook_can_still_be_overridden():
    c = compose(["experiment=seed_notebook", "sampler.scan_off_by_one=false", "seed=3"])
    assert c.sampler.scan_off_by_one is False and c.seed == 3


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["batch_size=0"], "batch_size"),
        (["capacity=0"], "capacity"),
        (["capacity=16", "batch_size=32"], "capacity"),
        (["sampler.alpha=-0.5"], "sampler.alpha"),
        (["gamma=1.5"], "gamma"),
        (["gamma=-0.1"], "gamma"),
        (["sampler.new_priority=newest"], "sampler.new_priority"),
    ],
)
def test_validate_names_key_value_and_allowed(overrides, key):
    with pytest.raises(ConfigError) as e:
        validate(compose(overrides))
    assert e.value.key == key
    assert key in str(e.value) and "allowed" in str(e.value)


def test_typo_top_level_key_suggests_the_real_one():
    with pytest.raises(ConfigError) as e:
        check_override_keys(["max_episode=3"])
    assert "max_episodes" in str(e.value) and "max_episode" in e.value.key
    check_override_keys(["max_episodes=3", "+hydra.foo=1", "sampler.alpha=0.5", "-m"])


def test_env_id_is_the_gymnasium_env_built():
    import warnings

    from per_exp.engine.envs import make_env

    for env_id in ("CartPole-v0", "CartPole-v1"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # v0 builds without gymnasium's "out of date" warning
            env = make_env(replace(compose().env, id=env_id, max_steps=123))
        assert env.spec is not None and env.spec.id == env_id and env.spec.max_episode_steps == 123
    assert compose().env.id == "CartPole-v0" and compose(["env=cartpole_v1"]).env.id == "CartPole-v1"


def test_env_id_must_be_a_registered_cartpole():
    with pytest.raises(ConfigError) as e:
        validate(compose(["env.id=CartPole-v9"]))
    assert e.value.key == "env.id" and "CartPole-v0, CartPole-v1" in str(e.value)
    with pytest.raises(ConfigError):
        validate(compose(["env.id=MountainCar-v0"]))
