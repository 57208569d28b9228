"""Replay of K runs: transition storage + a sampler + the policies around them, per slot.

The policies that used to live in the training loop belong here:

- warm-up: a prioritized run draws uniformly (from its own uniform stream)
  while its episode < ``warmup_episodes`` (the seed: 30);
- refresh: after each update the drawn transitions get their new TD errors
  (``sampled``, the paper), or every stored transition is recomputed at the
  end of each episode (``full_episode``, the seed);
- the new transition's priority is the sampler's (``new_priority``).

The engine only says "store", "draw", "learned these TD errors", "episode
ended": it never looks at which sampler it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from per_exp.config import Config
from per_exp.engine import samplers
from per_exp.engine.storage import Storage


@njit(cache=True, nogil=True)
def _beta_into(updates, beta0, horizon, out):  # pragma: no cover - compiled
    """priorities.beta_at per slot, the same float64 operations."""
    for k in range(updates.shape[0]):
        frac = min(max(updates[k], 0) / horizon[k], 1.0)
        out[k] = beta0[k] + frac * (1.0 - beta0[k])


@njit(cache=True, nogil=True)
def _split_warmup(mask, episode, warmup_episodes, main, warm):  # pragma: no cover - compiled
    """Slots of mask still warming up (uniform draws) and the others; their counts."""
    n_main = 0
    n_warm = 0
    for k in range(mask.shape[0]):
        w = mask[k] and episode[k] < warmup_episodes[k]
        warm[k] = w
        main[k] = mask[k] and not w
        n_warm += w
        n_main += mask[k] and not w
    return n_main, n_warm


def sampler_seeds(seed: int) -> tuple[int, int]:
    """The prioritized and the warm-up uniform sampler's seeds of a run: streams 1 and 2 of its seed."""
    _, sampler_ss, uniform_ss = np.random.SeedSequence(seed).spawn(3)
    return int(sampler_ss.generate_state(1)[0]), int(uniform_ss.generate_state(1)[0])


class Replay:
    def __init__(self, cfg: Config, num_slots: int, obs_dim: int):
        self.num_slots = int(num_slots)
        self.storage = Storage(num_slots, cfg.capacity, obs_dim)
        cls = samplers.get(cfg.sampler.name)
        self.sampler = cls(cfg.sampler, num_slots, cfg.capacity)
        self.warmup = samplers.get("uniform")(cfg.sampler, num_slots, cfg.capacity) if cls.prioritized else None
        self.refresh_sampled = cls.prioritized and cfg.sampler.refresh == "sampled"
        self.refresh_full = cls.prioritized and cfg.sampler.refresh == "full_episode"
        self.warmup_episodes = np.zeros(num_slots, np.int64)
        self.beta0 = np.zeros(num_slots)
        self.beta_horizon = np.ones(num_slots)
        self._written = np.empty(num_slots, np.int64)
        self._beta = np.empty(num_slots)
        self._main = np.zeros(num_slots, bool)
        self._warm = np.zeros(num_slots, bool)

    def start(self, k: int, cfg: Config) -> None:
        """A new run enters slot k: empty storage, samplers seeded from the run's seed."""
        s_seed, u_seed = sampler_seeds(cfg.seed)
        self.storage.clear(k)
        self.sampler.start(k, s_seed, cfg.sampler)
        if self.warmup is not None:
            self.warmup.start(k, u_seed, cfg.sampler)
        self._set_scalars(k, cfg)

    def _set_scalars(self, k: int, cfg: Config) -> None:
        self.warmup_episodes[k] = cfg.warmup_episodes
        self.beta0[k] = cfg.sampler.beta0
        self.beta_horizon[k] = float(cfg.sampler.beta_horizon)

    # -- per step --------------------------------------------------------------------------
    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        done: np.ndarray,
        mask: np.ndarray,
    ) -> None:
        self.storage.add(obs, action, reward, next_obs, done, mask, self._written)
        self.sampler.add(self._written, mask)

    def beta(self, updates: np.ndarray) -> np.ndarray:
        """IS exponent per slot: beta0 -> 1 linearly over beta_horizon updates, then 1 (priorities.beta_at)."""
        frac = np.minimum(np.maximum(updates, 0) / self.beta_horizon, 1.0)
        np.add(self.beta0, frac * (1.0 - self.beta0), out=self._beta)
        return self._beta

    def sample(
        self, mask: np.ndarray, episode: np.ndarray, updates: np.ndarray, out_idx: np.ndarray, out_w: np.ndarray
    ) -> None:
        beta = self.beta(updates)
        if self.warmup is None:
            self.sampler.sample(self.storage.size, beta, mask, out_idx, out_w)
            return
        warm = mask & (episode < self.warmup_episodes)
        main = mask & ~warm
        if main.any():
            self.sampler.sample(self.storage.size, beta, main, out_idx, out_w)
        if warm.any():
            self.warmup.sample(self.storage.size, beta, warm, out_idx, out_w)

    def learned(self, idx: np.ndarray, td: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        """The TD errors of the drawn batches; per slot the first bad entry (-1: fine), or None if none was checked."""
        if not self.refresh_sampled:
            return None
        return self.sampler.update(idx, td, mask)

    def end_episode(self, k: int, td_errors: Callable[[int], np.ndarray]) -> None:
        """Slot k finished an episode: with the full refresh, every stored transition gets its current TD error."""
        n = int(self.storage.size[k])
        if self.refresh_full and n:
            self.sampler.update_slot(k, np.arange(n), td_errors(k))

    def stats(self, k: int) -> dict[str, float]:
        return self.sampler.stats(k)

    # -- one slot's state ------------------------------------------------------------------
    def state_dict(self, k: int) -> dict[str, Any]:
        return {
            "storage": self.storage.state_dict(k),
            "sampler": self.sampler.state_dict(k),
            "warmup_sampler": self.warmup.state_dict(k) if self.warmup is not None else None,
        }

    def load_state_dict(self, k: int, s: dict[str, Any], cfg: Config) -> None:
        self.start(k, cfg)
        self.storage.load_state_dict(k, s["storage"])
        self.sampler.load_state_dict(k, s["sampler"])
        if self.warmup is not None:
            self.warmup.load_state_dict(k, s["warmup_sampler"])
