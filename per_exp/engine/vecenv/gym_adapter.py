"""Any discrete-action gymnasium env with a 1-D Box observation, as K gymnasium env objects behind the VecEnv arrays.

The fallback for ids without a numba port: exact by construction (it is
gymnasium), slower by a Python call per active slot. Each slot's env is built
without gymnasium's TimeLimit (time limits are the engine's job) and without
the passive checker; reset installs the slot's generator as the env's
``np_random``, so an env that also draws in ``step`` draws from the same stream
it would with ``reset(seed=...)``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from per_exp.engine.vecenv.ported import checked_num_slots

# Ids whose dynamics are another id's: CartPole-v0 is v1 with a shorter time
# limit, which the engine applies; building v1 avoids gymnasium's "out of date"
# warning (as per_exp.engine.envs does).
SAME_DYNAMICS = {"CartPole-v0": "CartPole-v1"}


def make_slot_env(env_id: str) -> gym.Env:
    # max_episode_steps=-1 is gymnasium's documented "no TimeLimit wrapper".
    return gym.make(SAME_DYNAMICS.get(env_id, env_id), max_episode_steps=-1, disable_env_checker=True)


def space_problem(env: gym.Env) -> str | None:
    """Why the env cannot be a VecEnv, or None when it can."""
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(act_space, spaces.Discrete):
        return f"its action space is {act_space}, not Discrete"
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        return f"its observation space is {obs_space}, not a 1-D Box"
    return None


class GymVecEnv:
    """K gymnasium envs of one id; ``step`` loops over the active slots in Python."""

    def __init__(self, env_id: str, num_slots: int) -> None:
        self.env_id = env_id
        self.num_slots = checked_num_slots(num_slots)
        self.envs = [make_slot_env(env_id) for _ in range(self.num_slots)]
        problem = space_problem(self.envs[0])
        if problem is not None:
            raise ValueError(f"env.id={env_id!r} cannot be stepped as a VecEnv: {problem}")
        act_space = self.envs[0].action_space
        assert isinstance(act_space, spaces.Discrete)
        self.n_actions = int(act_space.n)
        # Discrete(n, start=s): the engine's action i is the env's s + i.
        self._action_start = int(act_space.start)
        self.obs_dim = int(self.envs[0].observation_space.shape[0])  # type: ignore[index]
        self.obs = np.zeros((self.num_slots, self.obs_dim), dtype=np.float32)
        self.reward = np.zeros(self.num_slots, dtype=np.float64)
        self.terminated = np.zeros(self.num_slots, dtype=np.bool_)

    def reset(self, slot: int, rng: np.random.Generator) -> None:
        env = self.envs[slot]
        env.unwrapped.np_random = rng
        obs, _ = env.reset()
        self.obs[slot] = obs  # cast to float32, as the engine stores observations
        self.reward[slot] = 0.0
        self.terminated[slot] = False

    def step(self, actions: np.ndarray, active: np.ndarray) -> None:
        if len(actions) != self.num_slots or len(active) != self.num_slots:
            raise ValueError("actions and active must have one entry per slot")
        for k in np.flatnonzero(active):
            a = int(actions[k])
            if not 0 <= a < self.n_actions:
                raise ValueError(f"{self.env_id} action {a} out of range: allowed 0..{self.n_actions - 1}")
            obs, r, term, trunc, _ = self.envs[k].step(self._action_start + a)
            if trunc:
                # The interface has no truncation flag: refuse rather than hide one.
                raise RuntimeError(f"{self.env_id} truncated an episode on its own; VecEnv carries only `terminated`")
            self.obs[k] = obs
            self.reward[k] = float(r)
            self.terminated[k] = bool(term)

    def close(self) -> None:
        for env in self.envs:
            env.close()
