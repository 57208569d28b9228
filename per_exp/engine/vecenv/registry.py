"""One registry from gymnasium id to VecEnv: the numba ports, else K gymnasium env objects, else a one-line refusal."""

from __future__ import annotations

import gymnasium as gym

from per_exp.engine.vecenv.acrobot import AcrobotVecEnv
from per_exp.engine.vecenv.cartpole import CartPoleVecEnv
from per_exp.engine.vecenv.gym_adapter import GymVecEnv, make_slot_env, space_problem
from per_exp.engine.vecenv.mountaincar import MountainCarVecEnv
from per_exp.engine.vecenv.ported import PortedVecEnv
from per_exp.engine.vecenv.protocol import VecEnv

# scripts/bench_envs.py (load 2.9 on 2 cores), time in step calls per slot-step:
# ports 1.0-2.4 us at K = 1 (5-16x a plain gymnasium env.step loop, 7-39 us),
# 0.04-0.42 us at K = 32 (94-264x); the adapter 0.7-1.0x the plain loop at
# every K. So "auto" takes the port wherever one exists.
PORTS: dict[str, type[PortedVecEnv]] = {
    "CartPole-v0": CartPoleVecEnv,  # v0 and v1 differ only in the time limit
    "CartPole-v1": CartPoleVecEnv,
    "Acrobot-v1": AcrobotVecEnv,
    "MountainCar-v0": MountainCarVecEnv,
}
BACKENDS = ("auto", "numba", "gymnasium")


class EnvRefused(ValueError):
    """An env id (or backend) the engine cannot step; the message is one line naming it and what is allowed."""


def _allowed() -> str:
    return (
        f"allowed: {', '.join(PORTS)} (numba ports) or any registered gymnasium id "
        "with a Discrete action space and a 1-D Box observation space"
    )


def resolve_backend(env_id: str, backend: str = "auto") -> str:
    """The backend ("numba" or "gymnasium") that ``make_vecenv`` would use, or EnvRefused.

    Cheap enough for config validation: an unported id costs one gymnasium env
    built and closed to read its spaces.
    """
    if backend not in BACKENDS:
        raise EnvRefused(f"vecenv backend={backend!r} is not allowed: allowed {', '.join(BACKENDS)}")
    if not isinstance(env_id, str):
        raise EnvRefused(f"env.id={env_id!r} is not allowed: a gymnasium id string is required; {_allowed()}")
    if backend != "gymnasium" and env_id in PORTS:
        return "numba"
    if backend == "numba":
        raise EnvRefused(f"env.id={env_id!r} has no numba port: ports exist for {', '.join(PORTS)}")
    try:
        env = make_slot_env(env_id)
    except (gym.error.Error, ImportError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
        raise EnvRefused(f"env.id={env_id!r} is not allowed: {reason}; {_allowed()}") from None
    problem = space_problem(env)
    env.close()
    if problem is not None:
        raise EnvRefused(f"env.id={env_id!r} is not allowed: {problem}; {_allowed()}")
    return "gymnasium"


def make_vecenv(env_id: str, num_slots: int, backend: str = "auto") -> VecEnv:
    """K slots of ``env_id``: its numba port when one exists (``backend="auto"``), else gymnasium env objects."""
    if resolve_backend(env_id, backend) == "numba":
        return PORTS[env_id](num_slots)
    return GymVecEnv(env_id, num_slots)
