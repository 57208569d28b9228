"""Environments as array code: K copies of one env stepped together (the engine's slot axis).

Interface (``protocol.VecEnv``, agreed with the engine; unchanged from the brief)::

    vec = make_vecenv(env_id, num_slots)      # backend="auto" | "numba" | "gymnasium"
    vec.obs_dim, vec.n_actions, vec.num_slots
    vec.obs        (K, obs_dim) float32       current observation per slot
    vec.reward     (K,) float64               reward of the last step per slot
    vec.terminated (K,) bool                  true terminal of the last step (no time limits here)
    vec.reset(slot, rng)                      rng = gymnasium.utils.seeding.np_random(seed)[0]
    vec.step(actions, active)                 one numba call for all active slots (ports)

Two additions, both optional to use: ``make_vecenv(..., backend=...)`` chooses
port or gymnasium objects explicitly (benchmarks, tests, a study that wants
gymnasium's own objects), and ``resolve_backend(env_id, backend)`` validates an
id for config validation without building K envs (raises ``EnvRefused``, a
``ValueError`` whose message is one line naming the id and what is allowed).
The ports also expose ``state`` (K, state_dim) float64, the exact physics
state, for mid-episode checkpoints; their kernels (``cartpole_step``,
``acrobot_step``, ``mountaincar_step``) are public ``@njit`` functions that
numba code may call directly, without the dispatcher's ~1 us per call.

Backends (measured by ``scripts/bench_envs.py``; the port wins at every K, so
``auto`` takes it wherever one exists):

- numba ports, equal to gymnasium 1.x bit for bit (observation, reward,
  terminated and the float64 state, step for step across resets; tests in
  ``tests/test_vecenv_*.py``): CartPole-v0, CartPole-v1, Acrobot-v1,
  MountainCar-v0. Exactness rests on numpy's float64 ``sin``/``cos``/``pow``
  being the process's libm, as numba's are (true here: numpy 2.4, glibc 2.36,
  x86-64 with AVX-512); a numpy build with its own SIMD float64 trig would
  make the tests fail by an ulp, which is how it would be noticed.
- ``GymVecEnv``: any other registered gymnasium id with a ``Discrete`` action
  space and a 1-D ``Box`` observation space, as K gymnasium env objects (built
  without TimeLimit; float64 observations are cast to float32; an env that
  truncates on its own raises, since the interface carries no truncation).
- anything else: ``EnvRefused``.

The tasks, for the study's config keys (``max_episode_steps`` and
``reward_threshold`` are gymnasium's registration; the solve rule is "mean
return over the last 100 consecutive episodes >= reward_threshold"):

============== ====== ========== ========= =====================================================
id             limit  threshold  solve     reward per step (return of an episode of n steps)
============== ====== ========== ========= =====================================================
CartPole-v0    200    195        >= 195    +1 every step, the terminal step included (return n);
                                           terminal when |x| > 2.4 or |theta| > 12 deg. Solve
                                           rule from the Gym wiki ("average reward of 195.0
                                           over 100 consecutive trials").
CartPole-v1    500    475        >= 475    as v0; only the limit and threshold differ.
Acrobot-v1     500    -100       >= -100   -1 every step, 0 on the terminal step (return
                                           -(n-1); -500 when cut by the limit); terminal when
                                           the tip is 1 link-length above the pivot:
                                           -cos(t1) - cos(t1 + t2) > 1. The threshold is
                                           gymnasium's (openai/gym PR #464, the old v0's
                                           value); Gym's wiki listed Acrobot as unsolved.
MountainCar-v0 200    -110       >= -110   -1 every step, the terminal step included (return
                                           -n; -200 when cut by the limit); terminal when
                                           position >= 0.5 (velocity >= 0). Solve rule from
                                           the Gym wiki ("average reward of -110.0 over 100
                                           consecutive trials").
============== ====== ========== ========= =====================================================

For the study engineer: per_exp's current success notion (an episode at least
``success_length`` steps long; ``reward: seed`` pays -1 for a short episode)
is CartPole's, where longer is better. On Acrobot and MountainCar shorter is
better and a short episode is a success, so those tasks need ``reward: env``
and the return-threshold rule above, not the length rule. None of the three
shapes rewards beyond gymnasium's own; no config key is added here.
"""

from per_exp.engine.vecenv.acrobot import AcrobotVecEnv, acrobot_step
from per_exp.engine.vecenv.cartpole import CartPoleVecEnv, cartpole_step
from per_exp.engine.vecenv.gym_adapter import GymVecEnv
from per_exp.engine.vecenv.mountaincar import MountainCarVecEnv, mountaincar_step
from per_exp.engine.vecenv.ported import PortedVecEnv
from per_exp.engine.vecenv.protocol import VecEnv
from per_exp.engine.vecenv.registry import BACKENDS, PORTS, EnvRefused, make_vecenv, resolve_backend

__all__ = [
    "BACKENDS",
    "PORTS",
    "AcrobotVecEnv",
    "CartPoleVecEnv",
    "EnvRefused",
    "GymVecEnv",
    "MountainCarVecEnv",
    "PortedVecEnv",
    "VecEnv",
    "acrobot_step",
    "cartpole_step",
    "make_vecenv",
    "mountaincar_step",
    "resolve_backend",
]
