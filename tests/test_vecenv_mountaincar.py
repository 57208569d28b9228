"""The MountainCar port equals gymnasium's MountainCarEnv step for step (observations, rewards, flags, state)."""

from __future__ import annotations

import numpy as np
import pytest

from per_exp.engine.vecenv.mountaincar import MIN_POSITION, MountainCarVecEnv
from tests.support.vecenv import lockstep_against_gymnasium, mixed_policy, random_policy, reference_env, reference_state

ENV_ID = "MountainCar-v0"


def _pump(obs: np.ndarray) -> np.ndarray:
    # Push along the velocity: reaches the flag in ~100-200 steps.
    return np.where(obs[:, 1] >= 0, 2, 0)


@pytest.mark.parametrize("seed", range(20))
def test_one_slot_random_actions(seed):
    vec = MountainCarVecEnv(1)
    counts = lockstep_against_gymnasium(ENV_ID, vec, [seed], 1000, random_policy(3), max_len=200, ctrl_seed=seed)
    assert counts["resets"] >= 5


@pytest.mark.parametrize("seed", range(20))
def test_one_slot_pumping_reaches_the_flag(seed):
    vec = MountainCarVecEnv(1)
    counts = lockstep_against_gymnasium(
        ENV_ID, vec, [50 + seed], 1500, mixed_policy(_pump, 3, 0.3), max_len=400, ctrl_seed=seed
    )
    assert counts["terminated"] >= 3


def test_left_wall_stops_the_car():
    vec = MountainCarVecEnv(1)
    ref = reference_env(ENV_ID)
    ref.reset(seed=0)
    stopped = 0
    for v in np.linspace(-0.07, 0.07, 41):
        for a in range(3):
            state = np.array([MIN_POSITION + 0.01, v])
            vec.state[0] = state
            ref.unwrapped.state = (state[0], state[1])
            vec.step(np.array([a]), np.ones(1, dtype=bool))
            obs, r, term, _, _ = ref.step(a)
            np.testing.assert_array_equal(vec.state[0], reference_state(ref))
            np.testing.assert_array_equal(vec.obs[0], obs)
            assert vec.reward[0] == r and bool(vec.terminated[0]) is term
            stopped += vec.state[0, 0] == MIN_POSITION and vec.state[0, 1] == 0.0
    assert stopped >= 30


def test_many_slots_mixed_masks_and_staggered_resets():
    seeds = [0, 1, 2, 3, 1000, 2**31 - 1, 77, 8, 9]
    vec = MountainCarVecEnv(len(seeds))
    counts = lockstep_against_gymnasium(
        ENV_ID, vec, seeds, 1500, mixed_policy(_pump, 3, 0.3), p_active=0.6, p_reset=0.003, ctrl_seed=4
    )
    assert counts["idle"] > 2000 and counts["terminated"] >= 20
    assert counts["resets"] > counts["terminated"]


def test_bad_actions_are_refused():
    vec = MountainCarVecEnv(1)
    vec.reset(0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="out of range"):
        vec.step(np.array([-1]), np.ones(1, dtype=bool))
