"""Environments as array code: K copies of one env stepped together (the engine's slot axis).

Work in progress: CartPole is in; the registry, the gymnasium adapter,
Acrobot and MountainCar follow.
"""

from per_exp.engine.vecenv.cartpole import CartPoleVecEnv
from per_exp.engine.vecenv.protocol import VecEnv

__all__ = ["CartPoleVecEnv", "VecEnv"]
