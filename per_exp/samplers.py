"""Samplers: which replay slots a batch is drawn from, and with what IS weights.

All samplers share one small interface so the trainer never knows which one
it holds:

    add(slot)                      a new transition was written at ring slot `slot`
    sample(batch, size, beta)      -> SampleBatch(indices, weights) over slots [0, size)
    update(slots, td_errors)       new raw TD errors for those slots
    stats()                        per-episode metrics (and resets the timers)
    state_dict() / load_state_dict(state)

Each sampler owns a seeded ``numpy.random.Generator``; priorities are
(|delta| + eps) ** alpha, computed in `priorities.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from per_exp.config import SamplerConfig
from per_exp.priorities import check_priorities, is_weights, priorities_from_td
from per_exp.sumtree import SumTree


@dataclass
class SampleBatch:
    indices: np.ndarray  # int64 slots, shape (B,)
    weights: np.ndarray  # float32 IS weights, shape (B,); ones when IS weights are off


class UniformSampler:
    """Uniform replay without replacement (the seed's random.sample)."""

    def __init__(self, capacity: int, seed: int):
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)
        self._t_sample = 0.0

    def add(self, slot: int) -> None:
        pass

    def sample(self, batch_size: int, size: int, beta: float = 1.0) -> SampleBatch:
        if size <= 0:
            raise ValueError("cannot sample from an empty replay buffer (size=0)")
        t0 = time.perf_counter()
        replace = batch_size > size  # only when the buffer holds fewer than a batch
        idx = self.rng.choice(size, batch_size, replace=replace).astype(np.int64)
        self._t_sample += time.perf_counter() - t0
        return SampleBatch(idx, np.ones(batch_size, dtype=np.float32))

    def update(self, slots: np.ndarray, td_errors: np.ndarray) -> None:
        pass

    def stats(self) -> dict[str, float]:
        out = {"sampler/sample_seconds": self._t_sample}
        self._t_sample = 0.0
        return out

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


class _Prioritized:
    """What every proportional sampler shares: priority policy, weights, metrics."""

    def __init__(self, cfg: SamplerConfig, capacity: int, seed: int):
        self.cfg = cfg
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)
        self.max_priority = 1.0  # paper: p_1 = 1
        self._t_sample = 0.0
        self._t_update = 0.0
        self._w_sum = 0.0
        self._w_max = 0.0
        self._w_n = 0

    # -- subclass hooks ---------------------------------------------------
    def _set(self, slots: np.ndarray, prios: np.ndarray) -> None:
        raise NotImplementedError

    def _draw(self, batch_size: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (slots, P(slot)) for a batch."""
        raise NotImplementedError

    def _min_prob(self, size: int) -> float:
        raise NotImplementedError

    # -- interface --------------------------------------------------------
    def add(self, slot: int) -> None:
        if self.cfg.new_priority == "max":
            p = self.max_priority
        else:  # the seed pushes TD error 0
            p = float(priorities_from_td(np.zeros(1), self.cfg.alpha, self.cfg.eps)[0])
        self._set(np.array([slot], dtype=np.int64), np.array([p]))

    def _uniform_points(self, batch_size: int, total: float) -> np.ndarray:
        if self.cfg.stratified:
            edges = np.arange(batch_size, dtype=np.float64) * (total / batch_size)
            return edges + self.rng.random(batch_size) * (total / batch_size)
        return self.rng.random(batch_size) * total

    def sample(self, batch_size: int, size: int, beta: float) -> SampleBatch:
        if size <= 0:
            raise ValueError("cannot sample from an empty replay buffer (size=0)")
        t0 = time.perf_counter()
        idx, probs = self._draw(batch_size, size)
        if self.cfg.is_weights:
            norm = None
            if self.cfg.weight_norm == "buffer":
                norm = float((size * self._min_prob(size)) ** (-beta))
            w = is_weights(probs, size, beta, norm)
        else:
            w = np.ones(batch_size, dtype=np.float32)
        self._t_sample += time.perf_counter() - t0
        self._w_sum += float(w.sum())
        self._w_max = max(self._w_max, float(w.max()))
        self._w_n += batch_size
        return SampleBatch(idx, w)

    def update(self, slots: np.ndarray, td_errors: np.ndarray) -> None:
        t0 = time.perf_counter()
        prios = priorities_from_td(td_errors, self.cfg.alpha, self.cfg.eps)
        check_priorities(prios)
        self._set(np.asarray(slots, dtype=np.int64), prios)
        if prios.size:
            self.max_priority = max(self.max_priority, float(prios.max()))
        self._t_update += time.perf_counter() - t0

    def stats(self) -> dict[str, float]:
        out = {
            "sampler/sample_seconds": self._t_sample,
            "sampler/update_seconds": self._t_update,
            "sampler/priority_max": self.max_priority,
        }
        if self._w_n:
            out["sampler/is_weight_mean"] = self._w_sum / self._w_n
            out["sampler/is_weight_max"] = self._w_max
        self._t_sample = self._t_update = self._w_sum = self._w_max = 0.0
        self._w_n = 0
        return out

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "max_priority": self.max_priority}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.max_priority = state["max_priority"]


class LinearScanSampler(_Prioritized):
    """The seed's O(N) cumulative scan, vectorised with searchsorted.

    With `scan_off_by_one` it reproduces the notebook's bug: its loop
    increments the index after adding, so it returns the successor of the
    slot whose interval holds the random number (slot 0 is never drawn).
    """

    def __init__(self, cfg: SamplerConfig, capacity: int, seed: int):
        super().__init__(cfg, capacity, seed)
        self.prios = np.zeros(capacity, dtype=np.float64)

    def _set(self, slots: np.ndarray, prios: np.ndarray) -> None:
        self.prios[slots] = prios

    def _draw(self, batch_size: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.prios[:size]
        cum = np.cumsum(p)
        total = cum[-1]
        if total <= 0:  # nothing has priority: every slot equally likely
            idx = self.rng.integers(0, size, batch_size)
            return idx.astype(np.int64), np.full(batch_size, 1.0 / size)
        r = self._uniform_points(batch_size, total)
        if self.cfg.scan_off_by_one:
            idx = np.minimum(np.searchsorted(cum, r, side="left") + 1, size - 1)
        else:
            idx = np.minimum(np.searchsorted(cum, r, side="right"), size - 1)
        return idx.astype(np.int64), p[idx] / total

    def _min_prob(self, size: int) -> float:
        p = self.prios[:size]
        return float(p.min() / p.sum())

    def state_dict(self) -> dict:
        return {**super().state_dict(), "prios": self.prios.copy()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.prios[:] = state["prios"]


class SumTreeSampler(_Prioritized):
    """Proportional PER with an array-backed sum tree: O(log N) sample and update."""

    def __init__(self, cfg: SamplerConfig, capacity: int, seed: int):
        super().__init__(cfg, capacity, seed)
        self.tree = SumTree(capacity)

    def _set(self, slots: np.ndarray, prios: np.ndarray) -> None:
        self.tree.update(slots, prios)

    def _draw(self, batch_size: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        total = self.tree.total
        if total <= 0:
            idx = self.rng.integers(0, size, batch_size)
            return idx.astype(np.int64), np.full(batch_size, 1.0 / size)
        r = self._uniform_points(batch_size, total)
        idx = np.minimum(self.tree.find(r), size - 1)
        return idx, self.tree.get(idx) / total

    def _min_prob(self, size: int) -> float:
        leaves = self.tree.get(np.arange(size))
        return float(leaves.min() / self.tree.total)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "tree": self.tree.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tree.load_state_dict(state["tree"])


def make_sampler(cfg: SamplerConfig, capacity: int, seed: int):
    if cfg.name == "uniform":
        return UniformSampler(capacity, seed)
    if cfg.name == "linear_scan":
        return LinearScanSampler(cfg, capacity, seed)
    if cfg.name == "sumtree":
        return SumTreeSampler(cfg, capacity, seed)
    raise ValueError(f"invalid config: sampler.name={cfg.name!r}; allowed: uniform, linear_scan, sumtree")
