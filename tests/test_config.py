"""Every config group composes into the typed schema; the seed preset is the notebook."""

from __future__ import annotations

from dataclasses import replace

import pytest

from per_exp import overrides as command_line
from per_exp.config import Config, ConfigError, validate
from tests.support.cli import CONF_DIR, compose


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


# options that need a key set on the command line to validate
NEEDS = {("env", "gym_id"): ["env.id=CartPole-v1"]}


@pytest.mark.parametrize("group", ["sampler", "network", "env", "experiment", "ablation"])
def test_every_group_option_composes_and_validates(group):
    options = _options(group)
    assert options, f"no options in conf/{group}"
    for opt in options:
        cfg = compose([f"{group}={opt}", *NEEDS.get((group, opt), [])])
        assert isinstance(cfg, Config)
        validate(cfg)
        if group in ("sampler", "network", "env"):
            assert getattr(cfg, group).name == opt


def test_groups_hold_the_required_options():
    assert {"uniform", "linear_scan", "sumtree"} <= set(_options("sampler"))
    assert {"dueling", "mlp"} <= set(_options("network"))
    assert {"cartpole_v0", "cartpole_v1", "acrobot_v1", "mountaincar_v0", "gym_id"} <= set(_options("env"))
    assert {"seed_notebook", "study"} <= set(_options("experiment"))


def test_each_env_preset_carries_its_task():
    """Id, time limit, shaping, solve rule and episode budget: gymnasium's registration where it has one."""
    import gymnasium

    expected = {
        "cartpole_v0": ("CartPole-v0", 200, "seed", "length", None),
        "cartpole_v1": ("CartPole-v1", 500, "seed", "length", None),
        "acrobot_v1": ("Acrobot-v1", 500, "env", "mean_return", -100.0),
        "mountaincar_v0": ("MountainCar-v0", 200, "env", "mean_return", -110.0),
    }
    for name, (env_id, limit, reward, rule, threshold) in expected.items():
        c = compose([f"env={name}"])
        assert (c.env.id, c.env.max_steps, c.env.reward, c.solve.rule) == (env_id, limit, reward, rule)
        assert c.solve.return_threshold == threshold and c.max_episodes == 500
        assert gymnasium.spec(env_id).max_episode_steps == limit
        if threshold is not None:
            assert gymnasium.spec(env_id).reward_threshold == threshold and c.solve.window == 100
    # any other id: its time limit and threshold are read from gymnasium's registration
    c = compose(["env=gym_id", "env.id=CartPole-v1"])
    assert (c.env.max_steps, c.solve.rule, c.solve.return_threshold, c.env.reward) == (500, "mean_return", 475.0, "env")
    c = compose(["env=gym_id", "env.id=CartPole-v1", "env.max_steps=50", "solve.return_threshold=40"])
    assert (c.env.max_steps, c.solve.return_threshold) == (50, 40.0)


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
    for typo in ("max_episode=3", "+max_episode=3"):
        with pytest.raises(ConfigError) as e:
            command_line.check([typo])
        assert "max_episodes" in str(e.value) and "max_episode" in e.value.key
    command_line.check(["max_episodes=3", "+hydra.foo=1", "sampler.alpha=0.5", "-m"])


@pytest.mark.parametrize(
    "override, key, allowed",
    [
        ("sampler.alpah=1", "sampler.alpah", "did you mean 'alpha'"),
        ("tracking.nope=1", "tracking.nope", "a key of tracking"),
        ("seed.x=1", "seed.x", "seed holds an integer, not keys"),
        ("sampler.alpha=abc", "sampler.alpha", "a number"),
        ("seed=1.5", "seed", "an integer"),
        ("seed=null", "seed", "an integer"),
        ("seed=true", "seed", "an integer"),
        ("seed=[1,2]", "seed", "an integer"),
        ("seed=0,1,x", "seed", "an integer"),
        ("sampler.is_weights=maybe", "sampler.is_weights", "true or false"),
        ("group.slots=many", "group.slots", "an integer"),
        ("solve.return_threshold=high", "solve.return_threshold", "a number or null"),
    ],
)
def test_nested_keys_and_value_types_are_checked_before_composing(override, key, allowed):
    with pytest.raises(ConfigError) as e:
        command_line.check([override])
    assert e.value.key == key and allowed in e.value.allowed


def test_what_hydra_would_accept_passes_the_check():
    good = [
        "lr=1e-3",
        "seed='3'",
        "seed=range(0,5)",
        "seed=${oc.env:SEED}",
        "solve.return_threshold=null",
        "solve.return_threshold=-100",
        "tracking.uri=null",
        "sampler.is_weights=false",
        "sampler=uniform",
        "experiment=study",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "lr=interval(1e-4,1e-3)",
        "~epsilon.scale",
    ]
    command_line.check(good)
    for text in good:  # and each is one Hydra composes (or, for sweeps, parses) without complaint
        if "(" not in text and "${" not in text and not text.startswith(("hydra", "experiment", "~")):
            compose([text])


def test_env_id_is_the_gymnasium_env_built():
    import warnings

    from per_exp.engine.envs import make_env

    for env_id in ("CartPole-v0", "CartPole-v1"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # v0 builds without gymnasium's "out of date" warning
            env = make_env(replace(compose().env, id=env_id, max_steps=123))
        assert env.spec is not None and env.spec.id == env_id and env.spec.max_episode_steps == 123
    assert compose().env.id == "CartPole-v0" and compose(["env=cartpole_v1"]).env.id == "CartPole-v1"


@pytest.mark.parametrize(
    "overrides, why",
    [
        (["env=gym_id"], "Acrobot-v1, MountainCar-v0"),  # no id given
        (["env.id=CartPole-v9"], "doesn't exist"),
        (["env=gym_id", "env.id=Pendulum-v1"], "not Discrete"),
        (["env=gym_id", "env.id=FrozenLake-v1"], "not a 1-D Box"),
    ],
)
def test_env_id_refusals_name_the_id_and_what_is_allowed(overrides, why):
    with pytest.raises(ConfigError) as e:
        validate(compose(overrides))
    assert e.value.key == "env.id" and why in str(e.value) and "\n" not in str(e.value)
    assert "1-D Box observation" in e.value.allowed


def test_solve_and_eval_refusals():
    cases = [
        (["solve.rule=best"], "solve.rule"),
        (["env=acrobot_v1", "solve.return_threshold=null"], "solve.return_threshold"),
        (["env=acrobot_v1", "env.reward=seed"], "env.reward"),  # the rule judges the env's own return
        (["env=acrobot_v1", "solve.window=0"], "solve.window"),
        (["eval.every_episodes=-1"], "eval.every_episodes"),
        (["eval.episodes=0"], "eval.episodes"),
    ]
    for overrides, key in cases:
        with pytest.raises(ConfigError) as e:
            validate(compose(overrides))
        assert e.value.key == key, overrides
    with pytest.raises(ConfigError) as e:
        validate(compose(["env=acrobot_v1", "solve.return_threshold=null"]))
    assert "gymnasium registers -100 for Acrobot-v1" in str(e.value)
