"""Storage shared by the numba ports: one float64 physics state row per slot."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


def checked_num_slots(num_slots: int) -> int:
    if isinstance(num_slots, bool) or not isinstance(num_slots, (int, np.integer)) or num_slots < 1:
        raise ValueError(f"num_slots={num_slots!r} is not allowed: a positive integer is required")
    return int(num_slots)


class PortedVecEnv(ABC):
    """The arrays of the VecEnv protocol plus ``state``, the exact float64 physics state.

    ``state`` is public so the engine can checkpoint a slot mid-episode and tests
    can start a port and a gymnasium env from the same state; writing it does
    not update ``obs``.
    """

    obs_dim: int
    n_actions: int
    state_dim: int

    def __init__(self, num_slots: int) -> None:
        self.num_slots = checked_num_slots(num_slots)
        self.state = np.zeros((self.num_slots, self.state_dim), dtype=np.float64)
        self.obs = np.zeros((self.num_slots, self.obs_dim), dtype=np.float32)
        self.reward = np.zeros(self.num_slots, dtype=np.float64)
        self.terminated = np.zeros(self.num_slots, dtype=np.bool_)

    def _started(self, slot: int) -> None:
        self.reward[slot] = 0.0
        self.terminated[slot] = False

    @abstractmethod
    def reset(self, slot: int, rng: np.random.Generator) -> None: ...

    @abstractmethod
    def step(self, actions: np.ndarray, active: np.ndarray) -> None: ...
