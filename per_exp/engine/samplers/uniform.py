"""Uniform replay without replacement: the seed's ``random.sample``, as ``Generator.choice(n, B, replace=False)``."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numba import njit

from per_exp import contract as C
from per_exp.config import SamplerConfig
from per_exp.engine import pcg
from per_exp.engine.samplers._slots import SlotClock, check_capacity


@njit(cache=True, nogil=True)
def draw(rng, size, mask, out_idx, out_w, hash_set):  # pragma: no cover - compiled
    """B distinct indices of [0, size[k]) per slot in mask (with replacement only if B > size[k]); weights 1."""
    b = out_idx.shape[1]
    for k in range(rng.shape[0]):
        if not mask[k]:
            continue
        n = size[k]
        if b > n:  # only while the buffer holds fewer than a batch
            for i in range(b):
                out_idx[k, i] = pcg.bounded(rng[k], n - 1)
        else:
            pcg.choice(rng[k], n, b, out_idx[k], hash_set)
        for i in range(b):
            out_w[k, i] = 1.0


class UniformSampler:
    name: ClassVar[str] = "uniform"
    prioritized: ClassVar[bool] = False

    def __init__(self, cfg: SamplerConfig, num_slots: int, capacity: int):
        self.cfg = cfg
        self.capacity = check_capacity(capacity)
        self.rng = np.zeros((num_slots, pcg.STATE_WORDS), np.uint64)
        self.clock = SlotClock(num_slots)
        self._hash_sets: dict[int, np.ndarray] = {}

    @classmethod
    def problems(cls, cfg: SamplerConfig) -> list[tuple[str, Any, str]]:
        return []  # every priority switch is ignored (kept so params line up with prioritized runs)

    def start(self, k: int, seed: int, cfg: SamplerConfig) -> None:
        pcg.from_state(np.random.PCG64(seed).state, out=self.rng[k])
        self.clock.take(k)

    def add(self, written: np.ndarray, mask: np.ndarray) -> None:
        pass

    def sample(
        self, size: np.ndarray, beta: np.ndarray, mask: np.ndarray, out_idx: np.ndarray, out_w: np.ndarray
    ) -> None:
        t0 = self.clock.now()
        b = out_idx.shape[1]
        hs = self._hash_sets.get(b)
        if hs is None:
            hs = self._hash_sets[b] = np.empty(pcg.hash_set_size(b), np.uint64)
        draw(self.rng, size, mask, out_idx, out_w, hs)
        self.clock.charge(self.clock.sample, t0, mask)

    def update(self, idx: np.ndarray, td: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.full(idx.shape[0], -1, np.int64)

    def update_slot(self, k: int, idx: np.ndarray, td: np.ndarray) -> None:
        pass

    def stats(self, k: int) -> dict[str, float]:
        t_sample, _ = self.clock.take(k)
        return {C.SAMPLER_SAMPLE_SECONDS: t_sample, C.SAMPLER_UPDATE_SECONDS: 0.0}

    def state_dict(self, k: int) -> dict[str, Any]:
        return {"rng": pcg.to_state(self.rng[k])}

    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        pcg.from_state(state["rng"], out=self.rng[k])


SAMPLER = UniformSampler
