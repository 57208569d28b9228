"""The CartPole port equals gymnasium's CartPoleEnv step for step (observations, rewards, flags, state)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils import seeding

from per_exp.engine.vecenv.cartpole import CartPoleVecEnv
from tests.support.vecenv import lockstep_against_gymnasium, mixed_policy, random_policy, reference_env, reference_state

ENV_ID = "CartPole-v1"


def _balance(obs: np.ndarray) -> np.ndarray:
    # Push toward the pole's lean: long episodes that mostly end at the cart bounds.
    return (obs[:, 2] + obs[:, 3] > 0).astype(np.int64)


@pytest.mark.parametrize("seed", range(40))
def test_one_slot_random_actions_many_episodes(seed):
    vec = CartPoleVecEnv(1)
    counts = lockstep_against_gymnasium(ENV_ID, vec, [seed], 800, random_policy(2), ctrl_seed=seed)
    assert counts["terminated"] >= 10  # random CartPole episodes last ~20 steps


def test_long_episodes_and_cart_bound():
    vec = CartPoleVecEnv(1)
    ends: list = []
    counts = lockstep_against_gymnasium(
        ENV_ID, vec, [123], 6000, mixed_policy(_balance, 2, 0.2), max_len=700, ctrl_seed=5, terminal_states=ends
    )
    assert counts["steps"] == 6000
    assert sum(abs(s[0]) > 2.4 for s in ends) >= 5  # angle ends are covered by the random tests


def test_many_slots_mixed_masks_and_staggered_resets():
    seeds = [0, 1, 2, 3, 1000, 2**31 - 1, 77, 5]
    vec = CartPoleVecEnv(len(seeds))
    counts = lockstep_against_gymnasium(
        ENV_ID, vec, seeds, 1500, mixed_policy(_balance, 2, 0.5), p_active=0.6, p_reset=0.01, ctrl_seed=9
    )
    assert counts["idle"] > 1000 and counts["terminated"] > 50
    assert counts["resets"] > counts["terminated"]  # some resets come mid-episode


@pytest.mark.filterwarnings("ignore:.*already returned terminated = True")
def test_stepping_past_a_terminal_gives_gymnasiums_rewards():
    # gymnasium: reward 1 on the terminal step, 0 on every later step until reset.
    vec = CartPoleVecEnv(1)
    ref = reference_env(ENV_ID)
    rng = np.random.default_rng(0)
    slot_rng = seeding.np_random(4)[0]
    ref.reset(seed=4)
    vec.reset(0, slot_rng)
    post_terminal = 0
    for _ in range(200):
        a = np.array([int(rng.integers(2))])
        vec.step(a, np.ones(1, dtype=bool))
        obs, r, term, _, _ = ref.step(int(a[0]))
        np.testing.assert_array_equal(vec.obs[0], obs)
        np.testing.assert_array_equal(vec.state[0], reference_state(ref))
        assert vec.reward[0] == r and bool(vec.terminated[0]) is term
        post_terminal += r == 0.0
    assert post_terminal > 100
    # A reset clears the post-terminal state: the next terminal step pays 1 again.
    ref.reset()
    vec.reset(0, slot_rng)
    for _ in range(100):  # always pushing left ends an episode in ~10 steps
        vec.step(np.zeros(1, dtype=np.int64), np.ones(1, dtype=bool))
        _, r, term, _, _ = ref.step(0)
        assert vec.reward[0] == r
        if term:
            break
    assert term and r == 1.0


def test_bad_actions_and_shapes_are_refused():
    vec = CartPoleVecEnv(2)
    rng = np.random.default_rng(0)
    vec.reset(0, rng)
    vec.reset(1, rng)
    with pytest.raises(ValueError, match="out of range"):
        vec.step(np.array([0, 2]), np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match="one entry per slot"):
        vec.step(np.array([0]), np.ones(2, dtype=bool))
    # An out-of-range action in an inactive slot is never read.
    vec.step(np.array([0, 7]), np.array([True, False]))


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3"])
def test_num_slots_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="num_slots"):
        CartPoleVecEnv(bad)
