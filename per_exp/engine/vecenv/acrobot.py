"""Acrobot-v1 (book dynamics, no torque noise: gymnasium's defaults) as a numba kernel over slots.

Equal to ``gymnasium.envs.classic_control.acrobot.AcrobotEnv`` bit for bit:
one RK4 step of dt = 0.2 as gymnasium's ``rk4`` computes it (array sums in the
same order, the torque carried as a fifth state with derivative 0), then
gymnasium's ``wrap`` of the angles and ``bound`` of the velocities. Two
details matter for exactness:

- gymnasium squares numpy float64 scalars with ``**2``, which numpy computes
  with libm ``pow``; glibc's ``pow(x, 2.0)`` differs from ``x * x`` by one ulp
  for about 1 in 1,300 random x (measured). LLVM rewrites ``pow(x, 2.0)`` with a
  constant exponent into ``x * x``, so the kernel takes the exponent as a
  runtime argument (``two``): then numba's ``**`` calls libm ``pow`` as numpy does.
  With ``x * x`` instead, 11 of 9,000 random-action steps (30 seeds) left
  gymnasium's state by up to 1.0e-15 relative; with ``pow``, none.
- reset stores the start state as float32 (gymnasium's ``.astype(np.float32)``)
  and builds the first observation with numpy's float32 ``cos``/``sin``; reset
  runs in Python with those very calls.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from per_exp.engine.vecenv.ported import PortedVecEnv

DT = 0.2
M1 = 1.0  # link masses
M2 = 1.0
L1 = 1.0  # length of link 1
LC1 = 0.5  # centres of mass
LC2 = 0.5
I1 = 1.0  # moments of inertia
I2 = 1.0
G = 9.8
MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi
PI = math.pi
RESET_LOW, RESET_HIGH = -0.1, 0.1

# gymnasium's constant subexpressions, evaluated by Python in gymnasium's order.
LC1_SQ = LC1**2
L1_SQ = L1**2
LC2_SQ = LC2**2
TWO_L1_LC2 = 2 * L1 * LC2
L1_LC2 = L1 * LC2
NEG_M2_L1_LC2 = -M2 * L1 * LC2
TWO_M2_L1_LC2 = 2 * M2 * L1 * LC2
M2_L1_LC2 = M2 * L1 * LC2
PHI1_GRAVITY = (M1 * LC1 + M2 * L1) * G
PHI2_GRAVITY = M2 * LC2 * G
DDTHETA2_DEN = M2 * LC2_SQ + I2
DT2 = DT / 2.0
DT6 = DT / 6.0


@njit(cache=True, inline="always")
def _dsdt(theta1, theta2, dtheta1, dtheta2, a, two):
    """gymnasium's AcrobotEnv._dsdt ("book"), term for term; returns (ddtheta1, ddtheta2)."""
    d1 = M1 * LC1_SQ + M2 * (L1_SQ + LC2_SQ + TWO_L1_LC2 * math.cos(theta2)) + I1 + I2
    d2 = M2 * (LC2_SQ + L1_LC2 * math.cos(theta2)) + I2
    phi2 = PHI2_GRAVITY * math.cos(theta1 + theta2 - PI / 2.0)
    phi1 = (
        NEG_M2_L1_LC2 * dtheta2**two * math.sin(theta2)
        - TWO_M2_L1_LC2 * dtheta2 * dtheta1 * math.sin(theta2)
        + PHI1_GRAVITY * math.cos(theta1 - PI / 2)
        + phi2
    )
    ddtheta2 = (a + d2 / d1 * phi1 - M2_L1_LC2 * dtheta1**two * math.sin(theta2) - phi2) / (DDTHETA2_DEN - d2**two / d1)
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return ddtheta1, ddtheta2


@njit(cache=True, inline="always")
def _wrap(x, m, big_m):
    diff = big_m - m
    while x > big_m:
        x = x - diff
    while x < m:
        x = x + diff
    return x


@njit(cache=True)
def acrobot_step(state, obs, reward, terminated, actions, active, two):
    """One RK4 step of every active slot, in place; ``two`` must be 2.0 (see the module docstring)."""
    k_slots = state.shape[0]
    if actions.shape[0] != k_slots or active.shape[0] != k_slots:
        raise ValueError("actions and active must have one entry per slot")
    for k in range(k_slots):
        if not active[k]:
            continue
        act = actions[k]
        if act < 0 or act > 2:
            raise ValueError("Acrobot action out of range: allowed 0, 1 or 2")
        a = act - 1.0  # AVAIL_TORQUE = [-1.0, 0.0, +1]
        y0 = state[k, 0]
        y1 = state[k, 1]
        y2 = state[k, 2]
        y3 = state[k, 3]
        # k_i = (dtheta1, dtheta2, ddtheta1, ddtheta2); the torque's derivative is 0,
        # so `a + dt2 * 0.0` stays a in every stage.
        p1, p2 = _dsdt(y0, y1, y2, y3, a, two)
        k1 = (y2, y3, p1, p2)
        q0 = y0 + DT2 * k1[0]
        q1 = y1 + DT2 * k1[1]
        q2 = y2 + DT2 * k1[2]
        q3 = y3 + DT2 * k1[3]
        p1, p2 = _dsdt(q0, q1, q2, q3, a, two)
        k2 = (q2, q3, p1, p2)
        q0 = y0 + DT2 * k2[0]
        q1 = y1 + DT2 * k2[1]
        q2 = y2 + DT2 * k2[2]
        q3 = y3 + DT2 * k2[3]
        p1, p2 = _dsdt(q0, q1, q2, q3, a, two)
        k3 = (q2, q3, p1, p2)
        q0 = y0 + DT * k3[0]
        q1 = y1 + DT * k3[1]
        q2 = y2 + DT * k3[2]
        q3 = y3 + DT * k3[3]
        p1, p2 = _dsdt(q0, q1, q2, q3, a, two)
        k4 = (q2, q3, p1, p2)
        # yout[1] = y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        n0 = y0 + DT6 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0])
        n1 = y1 + DT6 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1])
        n2 = y2 + DT6 * (k1[2] + 2.0 * k2[2] + 2.0 * k3[2] + k4[2])
        n3 = y3 + DT6 * (k1[3] + 2.0 * k2[3] + 2.0 * k3[3] + k4[3])
        n0 = _wrap(n0, -PI, PI)
        n1 = _wrap(n1, -PI, PI)
        # gymnasium's bound(x, m, M) = min(max(x, m), M)
        n2 = min(max(n2, -MAX_VEL_1), MAX_VEL_1)
        n3 = min(max(n3, -MAX_VEL_2), MAX_VEL_2)
        state[k, 0] = n0
        state[k, 1] = n1
        state[k, 2] = n2
        state[k, 3] = n3
        obs[k, 0] = np.float32(math.cos(n0))
        obs[k, 1] = np.float32(math.sin(n0))
        obs[k, 2] = np.float32(math.cos(n1))
        obs[k, 3] = np.float32(math.sin(n1))
        obs[k, 4] = np.float32(n2)
        obs[k, 5] = np.float32(n3)
        term = -math.cos(n0) - math.cos(n1 + n0) > 1.0
        terminated[k] = term
        reward[k] = 0.0 if term else -1.0


class AcrobotVecEnv(PortedVecEnv):
    """K acrobots: obs (cos t1, sin t1, cos t2, sin t2, dt1, dt2) float32; reward -1 a step, 0 on the terminal one."""

    obs_dim = 6
    n_actions = 3
    state_dim = 4

    def reset(self, slot: int, rng: np.random.Generator) -> None:
        s = rng.uniform(low=RESET_LOW, high=RESET_HIGH, size=(4,)).astype(np.float32)
        self.state[slot] = s
        # gymnasium's _get_ob on a float32 state: numpy's float32 cos/sin.
        self.obs[slot] = np.array(
            [np.cos(s[0]), np.sin(s[0]), np.cos(s[1]), np.sin(s[1]), s[2], s[3]], dtype=np.float32
        )
        self._started(slot)

    def step(self, actions: np.ndarray, active: np.ndarray) -> None:
        acrobot_step(self.state, self.obs, self.reward, self.terminated, actions, active, 2.0)
