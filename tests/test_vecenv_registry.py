"""make_vecenv: ports for the four ids, gymnasium env objects for any other discrete/1-D-Box id, one-line refusals."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from per_exp.engine.vecenv import (
    AcrobotVecEnv,
    CartPoleVecEnv,
    EnvRefused,
    GymVecEnv,
    MountainCarVecEnv,
    make_vecenv,
    resolve_backend,
)
from per_exp.engine.vecenv.gym_adapter import make_slot_env
from tests.support.vecenv import lockstep_against_gymnasium, random_policy


class NoisyWalk(gym.Env):
    """A test env without a port: float64 obs, and it draws from np_random in step as well as in reset."""

    def __init__(self, start: int = 0, truncate_after: int | None = None):
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float64)
        self.action_space = spaces.Discrete(3, start=start)
        self._truncate_after = truncate_after

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.normal(size=3)
        self.t = 0
        return self.x.copy(), {}

    def step(self, action):
        assert self.action_space.contains(action)
        self.t += 1
        self.x = self.x + (action - self.action_space.start - 1) + self.np_random.normal(size=3) * 0.1
        terminated = bool(abs(self.x[0]) > 3.0)
        truncated = self._truncate_after is not None and self.t >= self._truncate_after
        return self.x.copy(), float(-abs(self.x[0])), terminated, truncated, {}


gym.register(id="PerExpTest/NoisyWalk-v0", entry_point=NoisyWalk)
gym.register(id="PerExpTest/NoisyWalkShifted-v0", entry_point=lambda: NoisyWalk(start=-1))
gym.register(id="PerExpTest/NoisyWalkTruncates-v0", entry_point=lambda: NoisyWalk(truncate_after=5))
gym.register(id="PerExpTest/NoisyWalkWithLimit-v0", entry_point=NoisyWalk, max_episode_steps=3)


@pytest.mark.parametrize(
    ("env_id", "cls"),
    [
        ("CartPole-v0", CartPoleVecEnv),
        ("CartPole-v1", CartPoleVecEnv),
        ("Acrobot-v1", AcrobotVecEnv),
        ("MountainCar-v0", MountainCarVecEnv),
    ],
)
def test_ported_ids_get_their_port(env_id, cls):
    vec = make_vecenv(env_id, 4)
    assert type(vec) is cls and vec.num_slots == 4
    ref = make_slot_env(env_id)
    assert (vec.obs_dim,) == ref.observation_space.shape and vec.n_actions == ref.action_space.n
    assert vec.obs.shape == (4, vec.obs_dim) and vec.obs.dtype == np.float32
    assert vec.reward.dtype == np.float64 and vec.terminated.dtype == np.bool_
    assert type(make_vecenv(env_id, 4, backend="gymnasium")) is GymVecEnv


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"])
def test_adapter_equals_gymnasium_with_mixed_masks(env_id):
    vec = make_vecenv(env_id, 5, backend="gymnasium")
    n = vec.n_actions
    counts = lockstep_against_gymnasium(
        env_id, vec, [3, 1, 4, 1, 5], 300, random_policy(n), p_active=0.6, p_reset=0.02, max_len=200, ctrl_seed=2
    )
    assert counts["idle"] > 300 and counts["resets"] > 10


def test_unported_env_runs_by_id_and_draws_from_the_slot_stream():
    # The env draws in step too: equality needs the slot's generator installed as np_random.
    vec = make_vecenv("PerExpTest/NoisyWalk-v0", 4)
    assert isinstance(vec, GymVecEnv) and (vec.obs_dim, vec.n_actions) == (3, 3)
    counts = lockstep_against_gymnasium(
        "PerExpTest/NoisyWalk-v0", vec, [7, 8, 9, 10], 400, random_policy(3), p_active=0.7, p_reset=0.01, ctrl_seed=1
    )
    assert counts["terminated"] > 5


def test_unported_env_has_no_time_limit_of_its_own():
    vec = make_vecenv("PerExpTest/NoisyWalkWithLimit-v0", 1)
    vec.reset(0, np.random.default_rng(0))
    for _ in range(10):  # past the registered limit of 3: no truncation raised
        vec.step(np.array([1]), np.ones(1, dtype=bool))


def test_discrete_start_is_offset():
    vec = make_vecenv("PerExpTest/NoisyWalkShifted-v0", 1)
    vec.reset(0, np.random.default_rng(0))
    vec.step(np.array([2]), np.ones(1, dtype=bool))  # env action 1 would fail its own contains() if not offset
    with pytest.raises(ValueError, match="out of range"):
        vec.step(np.array([3]), np.ones(1, dtype=bool))


def test_an_env_that_truncates_itself_is_refused_loudly():
    vec = make_vecenv("PerExpTest/NoisyWalkTruncates-v0", 1)
    vec.reset(0, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="truncated an episode on its own"):
        for _ in range(5):
            vec.step(np.array([1]), np.ones(1, dtype=bool))


@pytest.mark.parametrize(
    ("env_id", "why"),
    [
        ("Pendulum-v1", "not Discrete"),
        ("MountainCarContinuous-v0", "not Discrete"),
        ("FrozenLake-v1", "not a 1-D Box"),
        ("Blackjack-v1", "not a 1-D Box"),
        ("NoSuch-v0", "doesn't exist"),
        ("CartPole-v9", "doesn't exist"),
        (42, "gymnasium id string"),
    ],
)
def test_refusals_are_one_line_naming_the_id_and_what_is_allowed(env_id, why):
    with pytest.raises(EnvRefused) as err:
        make_vecenv(env_id, 2)
    msg = str(err.value)
    assert "\n" not in msg and f"env.id={env_id!r}" in msg and why in msg
    assert "allowed: CartPole-v0, CartPole-v1, Acrobot-v1, MountainCar-v0" in msg


def test_backend_choice_is_validated():
    assert resolve_backend("CartPole-v1") == "numba"
    assert resolve_backend("CartPole-v1", "gymnasium") == "gymnasium"
    assert resolve_backend("PerExpTest/NoisyWalk-v0") == "gymnasium"
    with pytest.raises(EnvRefused, match="has no numba port"):
        resolve_backend("PerExpTest/NoisyWalk-v0", "numba")
    with pytest.raises(EnvRefused, match="backend='jax' is not allowed"):
        make_vecenv("CartPole-v1", 1, backend="jax")
