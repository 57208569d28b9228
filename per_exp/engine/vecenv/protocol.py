"""The array interface every environment of the engine implements: K copies of one env."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VecEnv(Protocol):
    """K copies ("slots") of one environment, stepped together as arrays.

    Contract (agreed with the engine):
    - ``obs`` (K, obs_dim) float32, ``reward`` (K,) float64 and ``terminated``
      (K,) bool are owned by the env and overwritten in place: copy ``obs``
      before ``step`` if the previous observation is still needed.
    - ``reset(slot, rng)`` draws slot's start state from ``rng`` exactly as
      gymnasium's ``reset`` draws from ``env.np_random``: with
      ``rng = gymnasium.utils.seeding.np_random(seed)[0]`` the first reset equals
      ``env.reset(seed=seed)`` and later resets with the same ``rng`` object
      equal ``env.reset()``. It sets ``reward[slot] = 0`` and
      ``terminated[slot] = False``.
    - ``step(actions, active)`` advances the slots where ``active`` is true by
      ``actions`` (integers in ``[0, n_actions)``); entries of inactive slots are
      left untouched. ``terminated`` is the env's own terminal only: time limits
      are the engine's job (no env here truncates).
    """

    obs_dim: int
    n_actions: int
    num_slots: int
    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray

    def reset(self, slot: int, rng: np.random.Generator) -> None: ...

    def step(self, actions: np.ndarray, active: np.ndarray) -> None: ...
