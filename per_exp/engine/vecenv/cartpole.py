"""CartPole-v0/v1 (same dynamics; v0 only has a shorter time limit) as a numba kernel over slots.

Equal to ``gymnasium.envs.classic_control.cartpole.CartPoleEnv`` bit for bit:
every float64 operation is gymnasium's, in gymnasium's order (no fastmath, so
LLVM neither reassociates nor fuses into FMA), and ``math.cos/sin`` call the
same libm as ``np.cos/np.sin`` on float64 (tests/test_vecenv_cartpole.py
checks whole episodes against the real env).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from per_exp.engine.vecenv.ported import PortedVecEnv

# Constants built with gymnasium's own expressions, so each rounds the same way.
GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
RESET_LOW, RESET_HIGH = -0.05, 0.05


@njit(cache=True)
def cartpole_step(state, obs, reward, terminated, beyond, actions, active):
    """Euler step of every active slot, in place.

    ``beyond[k]`` mirrors gymnasium's ``steps_beyond_terminated is not None``:
    stepping a terminated episode without a reset gives reward 0, as gymnasium does.
    """
    k_slots = state.shape[0]
    if actions.shape[0] != k_slots or active.shape[0] != k_slots:
        raise ValueError("actions and active must have one entry per slot")
    for k in range(k_slots):
        if not active[k]:
            continue
        a = actions[k]
        if a != 0 and a != 1:
            raise ValueError("CartPole action out of range: allowed 0 or 1")
        x = state[k, 0]
        x_dot = state[k, 1]
        theta = state[k, 2]
        theta_dot = state[k, 3]
        force = FORCE_MAG if a == 1 else -FORCE_MAG
        costheta = math.cos(theta)
        sintheta = math.sin(theta)
        # np.square is a plain product, so x * x is exact to it.
        temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS)
        )
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        x = x + TAU * x_dot
        x_dot = x_dot + TAU * xacc
        theta = theta + TAU * theta_dot
        theta_dot = theta_dot + TAU * thetaacc
        state[k, 0] = x
        state[k, 1] = x_dot
        state[k, 2] = theta
        state[k, 3] = theta_dot
        for i in range(4):
            obs[k, i] = np.float32(state[k, i])
        term = x < -X_THRESHOLD or x > X_THRESHOLD or theta < -THETA_THRESHOLD or theta > THETA_THRESHOLD
        terminated[k] = term
        if not term:
            reward[k] = 1.0
        elif not beyond[k]:
            beyond[k] = True
            reward[k] = 1.0
        else:
            reward[k] = 0.0


class CartPoleVecEnv(PortedVecEnv):
    """K CartPoles: obs (x, x_dot, theta, theta_dot) as float32, reward +1 per step (terminal step included).

    ``past_terminal`` (K,) bool is gymnasium's ``steps_beyond_terminated is not
    None``, part of the state ``cartpole_step`` needs.
    """

    obs_dim = 4
    n_actions = 2
    state_dim = 4

    def __init__(self, num_slots: int) -> None:
        super().__init__(num_slots)
        self.past_terminal = np.zeros(self.num_slots, dtype=np.bool_)

    def reset(self, slot: int, rng: np.random.Generator) -> None:
        # gymnasium: self.np_random.uniform(low=-0.05, high=0.05, size=(4,))
        s = rng.uniform(RESET_LOW, RESET_HIGH, 4)
        self.state[slot] = s
        self.obs[slot] = s  # the float32 row casts on assignment, rounding as astype does
        self.past_terminal[slot] = False
        self._started(slot)

    def step(self, actions: np.ndarray, active: np.ndarray) -> None:
        cartpole_step(self.state, self.obs, self.reward, self.terminated, self.past_terminal, actions, active)
