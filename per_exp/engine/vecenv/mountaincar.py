"""MountainCar-v0 as a numba kernel over slots.

Equal to ``gymnasium.envs.classic_control.mountain_car.MountainCarEnv`` bit for
bit: gymnasium already computes in float64 with ``math.cos`` (libm, the same
function numba calls), and ``np.clip`` on a scalar is ``min(max(x, lo), hi)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from per_exp.engine.vecenv.ported import PortedVecEnv

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.5
GOAL_VELOCITY = 0  # gymnasium's default
FORCE = 0.001
GRAVITY = 0.0025
RESET_LOW, RESET_HIGH = -0.6, -0.4


@njit(cache=True)
def mountaincar_step(state, obs, reward, terminated, actions, active):
    k_slots = state.shape[0]
    if actions.shape[0] != k_slots or active.shape[0] != k_slots:
        raise ValueError("actions and active must have one entry per slot")
    for k in range(k_slots):
        if not active[k]:
            continue
        a = actions[k]
        if a < 0 or a > 2:
            raise ValueError("MountainCar action out of range: allowed 0, 1 or 2")
        position = state[k, 0]
        velocity = state[k, 1]
        # gymnasium's `velocity += ...`: the whole right side is summed first.
        velocity = velocity + ((a - 1) * FORCE + math.cos(3 * position) * (-GRAVITY))
        velocity = min(max(velocity, -MAX_SPEED), MAX_SPEED)
        position = position + velocity
        position = min(max(position, MIN_POSITION), MAX_POSITION)
        if position == MIN_POSITION and velocity < 0:
            velocity = 0.0  # the car stops dead at the left wall
        state[k, 0] = position
        state[k, 1] = velocity
        obs[k, 0] = np.float32(position)
        obs[k, 1] = np.float32(velocity)
        terminated[k] = position >= GOAL_POSITION and velocity >= GOAL_VELOCITY
        reward[k] = -1.0


class MountainCarVecEnv(PortedVecEnv):
    """K mountain cars: obs (position, velocity) as float32, reward -1 per step (terminal step included)."""

    obs_dim = 2
    n_actions = 3
    state_dim = 2

    def reset(self, slot: int, rng: np.random.Generator) -> None:
        # gymnasium: np.array([self.np_random.uniform(low=-0.6, high=-0.4), 0]): one scalar draw.
        position = rng.uniform(RESET_LOW, RESET_HIGH)
        self.state[slot, 0] = position
        self.state[slot, 1] = 0.0
        self.obs[slot, 0] = position  # float32 element: rounds as np.array(..., dtype=np.float32)
        self.obs[slot, 1] = 0.0
        self._started(slot)

    def step(self, actions: np.ndarray, active: np.ndarray) -> None:
        mountaincar_step(self.state, self.obs, self.reward, self.terminated, actions, active)
