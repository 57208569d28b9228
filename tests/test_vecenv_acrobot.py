"""The Acrobot port equals gymnasium's AcrobotEnv step for step (observations, rewards, flags, state)."""

from __future__ import annotations

import numpy as np
import pytest

from per_exp.engine.vecenv.acrobot import MAX_VEL_1, MAX_VEL_2, AcrobotVecEnv
from tests.support.vecenv import lockstep_against_gymnasium, mixed_policy, random_policy, reference_env, reference_state

ENV_ID = "Acrobot-v1"


def _pump(obs: np.ndarray) -> np.ndarray:
    # Torque along the second joint's velocity pumps energy: episodes reach the
    # terminal height in ~100 steps.
    return np.where(obs[:, 5] > 0, 2, 0)


@pytest.mark.parametrize("seed", range(12))
def test_one_slot_random_actions(seed):
    vec = AcrobotVecEnv(1)
    counts = lockstep_against_gymnasium(ENV_ID, vec, [seed], 600, random_policy(3), max_len=300, ctrl_seed=seed)
    assert counts["steps"] == 600


@pytest.mark.parametrize("seed", range(12))
def test_one_slot_pumping_reaches_the_terminal(seed):
    vec = AcrobotVecEnv(1)
    counts = lockstep_against_gymnasium(
        ENV_ID, vec, [100 + seed], 800, mixed_policy(_pump, 3, 0.2), max_len=500, ctrl_seed=seed
    )
    assert counts["terminated"] >= 2


def test_many_slots_mixed_masks_and_staggered_resets():
    seeds = [0, 1, 2, 3, 1000, 2**31 - 1, 77]
    vec = AcrobotVecEnv(len(seeds))
    counts = lockstep_against_gymnasium(
        ENV_ID, vec, seeds, 800, mixed_policy(_pump, 3, 0.3), p_active=0.6, p_reset=0.005, ctrl_seed=3
    )
    assert counts["idle"] > 1000 and counts["terminated"] >= 5
    assert counts["resets"] > counts["terminated"]


def test_wrap_and_bound_from_arbitrary_states():
    # States the dynamics rarely reach from rest: angles many turns out, velocities
    # beyond both bounds. One step from each, port and gymnasium side by side.
    ctrl = np.random.default_rng(0)
    n = 3000
    states = np.column_stack(
        [
            ctrl.uniform(-20, 20, n),
            ctrl.uniform(-20, 20, n),
            ctrl.uniform(-1.5 * MAX_VEL_1, 1.5 * MAX_VEL_1, n),
            ctrl.uniform(-1.5 * MAX_VEL_2, 1.5 * MAX_VEL_2, n),
        ]
    )
    actions = ctrl.integers(0, 3, n)
    vec = AcrobotVecEnv(n)
    vec.state[:] = states
    vec.step(actions, np.ones(n, dtype=bool))
    ref = reference_env(ENV_ID)
    ref.reset(seed=0)
    bounded = 0
    for k in range(n):
        ref.unwrapped.state = states[k].copy()
        obs, r, term, _, _ = ref.step(int(actions[k]))
        np.testing.assert_array_equal(vec.state[k], reference_state(ref), err_msg=f"state {states[k]!r}")
        np.testing.assert_array_equal(vec.obs[k], obs)
        assert vec.reward[k] == r and bool(vec.terminated[k]) is term
        bounded += abs(vec.state[k, 2]) == MAX_VEL_1 or abs(vec.state[k, 3]) == MAX_VEL_2
    assert bounded > 500
    assert np.all(np.abs(vec.state[:, :2]) <= np.pi)


def test_bad_actions_are_refused():
    vec = AcrobotVecEnv(1)
    vec.reset(0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="out of range"):
        vec.step(np.array([3]), np.ones(1, dtype=bool))
