"""Lockstep comparison of a VecEnv against real gymnasium envs, one reference env per slot.

Each slot k owns ``rng_k = seeding.np_random(seeds[k])[0]`` and a reference
``gym.make(env_id, max_episode_steps=-1)`` (no TimeLimit: time limits are the
engine's job) that is reset with ``seed=seeds[k]`` first and without a seed
afterwards, the way per_exp's trainer drives its env. Every step compares
observation, reward and terminated flag exactly (and the float64 physics state
when the VecEnv exposes one); inactive slots must be left untouched. Slots are
reset on termination and at random times, so they reset at different steps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def random_policy(n_actions: int) -> Policy:
    return lambda obs, ctrl: ctrl.integers(0, n_actions, size=obs.shape[0])


def mixed_policy(greedy: Callable[[np.ndarray], np.ndarray], n_actions: int, p_random: float) -> Policy:
    """A heuristic that reaches the terminal states, mixed with random actions."""

    def act(obs: np.ndarray, ctrl: np.random.Generator) -> np.ndarray:
        a = greedy(obs).astype(np.int64)
        flip = ctrl.random(obs.shape[0]) < p_random
        a[flip] = ctrl.integers(0, n_actions, size=int(flip.sum()))
        return a

    return act


def reference_env(env_id: str) -> gym.Env:
    return gym.make(env_id, max_episode_steps=-1, disable_env_checker=True)


def reference_state(env: gym.Env) -> np.ndarray:
    return np.asarray(env.unwrapped.state, dtype=np.float64)  # type: ignore[attr-defined]


def as_float32(obs: np.ndarray) -> np.ndarray:
    # The engine stores observations as float32; gymnasium's classic-control obs already are.
    return np.asarray(obs, dtype=np.float32)


def lockstep_against_gymnasium(
    env_id: str,
    vec,
    seeds: list[int],
    steps: int,
    policy: Policy,
    p_active: float = 1.0,
    p_reset: float = 0.0,
    max_len: int | None = None,
    ctrl_seed: int = 0,
    terminal_states: list | None = None,
) -> Counter:
    k_slots = vec.num_slots
    assert len(seeds) == k_slots
    refs = [reference_env(env_id) for _ in range(k_slots)]
    rngs = [seeding.np_random(s)[0] for s in seeds]
    ctrl = np.random.default_rng(ctrl_seed)
    lengths = np.zeros(k_slots, dtype=np.int64)
    counts: Counter = Counter()
    has_state = hasattr(vec, "state")

    def start(k: int, first: bool) -> None:
        ref_obs, _ = refs[k].reset(seed=seeds[k] if first else None)
        vec.reset(k, rngs[k])
        assert vec.obs.dtype == np.float32
        np.testing.assert_array_equal(
            vec.obs[k], as_float32(ref_obs), err_msg=f"{env_id} reset slot {k} seed {seeds[k]}"
        )
        if has_state:
            np.testing.assert_array_equal(vec.state[k], reference_state(refs[k]))
        assert vec.reward[k] == 0.0 and not vec.terminated[k]
        lengths[k] = 0
        counts["resets"] += 1

    for k in range(k_slots):
        start(k, first=True)
    for t in range(steps):
        active = ctrl.random(k_slots) < p_active
        actions = policy(vec.obs, ctrl)
        before = (vec.obs.copy(), vec.reward.copy(), vec.terminated.copy())
        vec.step(actions, active)
        for k in range(k_slots):
            if not active[k]:
                np.testing.assert_array_equal(vec.obs[k], before[0][k])
                assert vec.reward[k] == before[1][k] and vec.terminated[k] == before[2][k]
                counts["idle"] += 1
                continue
            ref_obs, ref_r, ref_term, ref_trunc, _ = refs[k].step(int(actions[k]))
            where = f"{env_id} step {t} slot {k} seed {seeds[k]} episode step {lengths[k]}"
            if has_state:
                np.testing.assert_array_equal(vec.state[k], reference_state(refs[k]), err_msg=where)
            np.testing.assert_array_equal(vec.obs[k], as_float32(ref_obs), err_msg=where)
            assert vec.reward[k] == ref_r, where
            assert bool(vec.terminated[k]) is ref_term, where
            assert not ref_trunc
            lengths[k] += 1
            counts["steps"] += 1
            counts["terminated"] += int(ref_term)
            if ref_term and terminal_states is not None:
                terminal_states.append(reference_state(refs[k]))
            if ref_term or ctrl.random() < p_reset or (max_len is not None and lengths[k] >= max_len):
                start(k, first=False)
    return counts
