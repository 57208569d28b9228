"""Environments as array code: K copies of one env stepped together (the engine's slot axis).

Work in progress: docstring with solve rules follows.
"""

from per_exp.engine.vecenv.acrobot import AcrobotVecEnv
from per_exp.engine.vecenv.cartpole import CartPoleVecEnv
from per_exp.engine.vecenv.gym_adapter import GymVecEnv
from per_exp.engine.vecenv.mountaincar import MountainCarVecEnv
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
    "VecEnv",
    "make_vecenv",
    "resolve_backend",
]
