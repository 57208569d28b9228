"""Samplers: which replay slots a batch is drawn from, and with what IS weights.

All samplers share one small interface so the trainer never knows which one
it holds:

    add(slot)                      a new transition was written at ring slot `slot`
    sample(batch, size, beta)      -> SampleBatch(indices, weights) over slots [0, size)
    update(slots, td_errors)       new raw TD errors for those slots
    stats()                        per-episode metrics (and resets the counters)
    state_dict() / load_state_dict(state)

Each sampler owns a seeded ``numpy.random.Generator``. Proportional
priorities are (|delta| + eps) ** alpha (`priorities.py`); the rank sampler
ranks slots by |delta|. Defined edge behaviour (tested):

- sampling before any `add` raises ValueError; a batch larger than the
  stored count draws with replacement (prioritized samplers always do);
- if every stored priority is zero, slots are drawn uniformly with weight 1;
  otherwise zero-priority slots are never drawn;
- a NaN/inf TD error (or a slot outside what was added) in `update` raises a
  ValueError naming its index and slot, and nothing is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from per_exp import contract as C
from per_exp.config import SAMPLERS, ConfigError, SamplerConfig
from per_exp.engine.priorities import check_priorities, importance_weights, priorities_from_td
from per_exp.engine.rankorder import RankOrder
from per_exp.engine.sumtree import SumTree


@dataclass
class SampleBatch:
    indices: np.ndarray  # int64 slots, shape (B,)
    weights: np.ndarray  # float32 IS weights, shape (B,); ones when IS weights are off


def _check_capacity(capacity: int) -> int:
    if int(capacity) < 1:
        raise ValueError(f"sampler capacity must be an integer >= 1, got {capacity!r}")
    return int(capacity)


def _check_sample_args(batch_size: int, size: int, capacity: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if size <= 0:
        raise ValueError("cannot sample from an empty replay buffer (size=0): add transitions first")
    if size > capacity:
        raise ValueError(f"size={size} exceeds the sampler capacity {capacity}")


def _slots_and_td(slots, td_errors) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous int64 slots and float64 TD errors of the same length, as the kernels need."""
    slots = np.ascontiguousarray(slots, dtype=np.int64).reshape(-1)
    td = np.ascontiguousarray(td_errors, dtype=np.float64).reshape(-1)
    if slots.shape != td.shape:
        raise ValueError(f"update got {slots.size} slots but {td.size} TD errors")
    return slots, td


class UniformSampler:
    """Uniform replay without replacement (the seed's random.sample)."""

    name = "uniform"

    def __init__(self, capacity: int, seed: int):
        self.capacity = _check_capacity(capacity)
        self.rng = np.random.default_rng(seed)
        self._t_sample = 0.0

    def add(self, slot: int) -> None:
        pass

    def sample(self, batch_size: int, size: int, beta: float = 1.0) -> SampleBatch:
        _check_sample_args(batch_size, size, self.capacity)
        t0 = time.perf_counter()
        replace = batch_size > size  # only when the buffer holds fewer than a batch
        idx = self.rng.choice(size, batch_size, replace=replace).astype(np.int64)
        self._t_sample += time.perf_counter() - t0
        return SampleBatch(idx, np.ones(batch_size, dtype=np.float32))

    def update(self, slots: np.ndarray, td_errors: np.ndarray) -> None:
        pass

    def stats(self) -> dict[str, float]:
        out = {C.SAMPLER_SAMPLE_SECONDS: self._t_sample, C.SAMPLER_UPDATE_SECONDS: 0.0}
        self._t_sample = 0.0
        return out

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


class _Prioritized:
    """What every prioritized sampler shares: new-priority policy, IS weights, metrics.

    Subclasses store priorities and draw; `max_priority` is the largest
    priority ever written (the paper's max_{i<t} p_i), in the subclass's
    units: (|delta| + eps) ** alpha for proportional, |delta| for rank;
    it is logged under a metric key of its own for each unit.
    """

    name = ""
    max_priority_metric = C.SAMPLER_PRIORITY_MAX
    # per-episode counters, reset by stats()
    _t_sample: float
    _t_update: float
    _w_sum: float
    _w_max: float
    _w_n: int

    def __init__(self, cfg: SamplerConfig, capacity: int, seed: int):
        self.cfg = cfg
        self.capacity = _check_capacity(capacity)
        self.rng = np.random.default_rng(seed)
        self.max_priority = 1.0  # paper: p_1 = 1
        self.size = 0  # slots [0, size) have been added (the ring fills upward from 0)
        self._slot1 = np.zeros(1, dtype=np.int64)
        self._reset_counters()

    # -- subclass hooks ---------------------------------------------------
    def _priorities(self, td: np.ndarray) -> np.ndarray:
        return priorities_from_td(td, self.cfg.alpha, self.cfg.eps)

    def _zero_priority(self) -> float:
        """Priority of a transition whose TD error is 0 (the seed's new transitions)."""
        return float((0.0 + self.cfg.eps) ** self.cfg.alpha)

    def _write(self, slots: np.ndarray, prios: np.ndarray, limit: int) -> None:
        """Validate (slots in [0, limit), priorities finite and >= 0) then store; all or nothing."""
        raise NotImplementedError

    def _draw(self, u: np.ndarray, size: int):
        """(slots, P(slot)) for uniforms u, or None when every priority is zero."""
        raise NotImplementedError

    def _min_prob(self, size: int) -> float:
        """Smallest nonzero P over the stored slots (its weight is the buffer's largest)."""
        raise NotImplementedError

    # -- interface --------------------------------------------------------
    def add(self, slot) -> None:
        """Give the transition just written at `slot` (an int, or an array of slots) its first priority."""
        t0 = time.perf_counter()
        p = self.max_priority if self.cfg.new_priority == "max" else self._zero_priority()
        if np.ndim(slot) == 0:
            self._slot1[0] = int(slot)
            slots = self._slot1
        else:
            slots = np.ascontiguousarray(slot, dtype=np.int64).reshape(-1)
        if slots.size:
            self._write(slots, np.full(slots.size, p), self.capacity)
            self.size = max(self.size, int(slots.max()) + 1)
        self._t_update += time.perf_counter() - t0

    def sample(self, batch_size: int, size: int, beta: float) -> SampleBatch:
        _check_sample_args(batch_size, size, self.capacity)
        if size != self.size:
            raise ValueError(
                f"sample(size={size}) but {self.size} slots were added to this {self.name} sampler; "
                "call add(slot) for every transition written to the buffer"
            )
        t0 = time.perf_counter()
        u = self.rng.random(batch_size)
        drawn = self._draw(u, size)
        if drawn is None:  # every priority is zero: nothing to prefer, draw uniformly
            idx = np.minimum((u * size).astype(np.int64), size - 1)
            w = np.ones(batch_size, dtype=np.float32)
        else:
            idx, probs = drawn
            if self.cfg.is_weights:
                min_prob = self._min_prob(size) if self.cfg.weight_norm == "buffer" else None
                w = importance_weights(probs, size, beta, min_prob)
            else:
                w = np.ones(batch_size, dtype=np.float32)
        self._record_batch(t0, float(w.sum()), float(w.max()), batch_size)
        return SampleBatch(idx, w)

    def update(self, slots: np.ndarray, td_errors: np.ndarray) -> None:
        t0 = time.perf_counter()
        slots, td = _slots_and_td(slots, td_errors)
        if slots.size:
            prios = self._priorities(td)
            self._write(slots, prios, self.size)
            self.max_priority = max(self.max_priority, float(prios.max()))
        self._t_update += time.perf_counter() - t0

    def _record_batch(self, t0: float, w_sum: float, w_max: float, n: int) -> None:
        """Per-episode metrics of one drawn batch (time since t0, IS weight sum and max)."""
        self._t_sample += time.perf_counter() - t0
        self._w_sum += w_sum
        if w_max > self._w_max:
            self._w_max = w_max
        self._w_n += n

    def _reset_counters(self) -> None:
        self._t_sample = self._t_update = self._w_sum = self._w_max = 0.0
        self._w_n = 0

    def stats(self) -> dict[str, float]:
        out = {
            C.SAMPLER_SAMPLE_SECONDS: self._t_sample,
            C.SAMPLER_UPDATE_SECONDS: self._t_update,
            self.max_priority_metric: self.max_priority,
        }
        if self._w_n:
            out[C.SAMPLER_IS_WEIGHT_MEAN] = self._w_sum / self._w_n
            out[C.SAMPLER_IS_WEIGHT_MAX] = self._w_max
        self._reset_counters()
        return out

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "max_priority": self.max_priority, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.max_priority = float(state["max_priority"])
        self.size = int(state["size"])


class LinearScanSampler(_Prioritized):
    """The seed's O(N) cumulative scan, vectorised with searchsorted.

    With `scan_off_by_one` it reproduces the notebook's bug: its loop
    increments the index after adding, so it returns the successor of the
    slot whose interval holds the random number (slot 0 is never drawn, and
    the last slot also takes its predecessor's mass through the clamp).
    """

    name = "linear_scan"

    def __init__(self, cfg: SamplerConfig, capacity: int, seed: int):
        super().__init__(cfg, capacity, seed)
        self.prios = np.zeros(self.capacity, dtype=np.float64)

    def _write(self, slots: np.ndarray, prios: np.ndarray, limit: int) -> None:
        out = (slots < 0) | (slots >= limit)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise ValueError(f"slot at index {i} is {int(slots[i])}; slots must be in [0, {limit})")
        check_priorities(prios, slots)
        if slots.size > 1:  # NumPy does not promise which duplicate wins; make it the last
            rev_unique, rev_first = np.unique(slots[::-1], return_index=True)
            slots, prios = rev_unique, prios[::-1][rev_first]
        self.prios[slots] = prios

    def _draw(self, u: np.ndarray, size: int):
        p = self.prios[:size]
        cum = np.cumsum(p)
        total = cum[-1]
        if total <= 0:
            return None
        b = u.size
        r = (np.arange(b) + u) * (total / b) if self.cfg.stratified else u * total
        # r == total by round-off would run off the end; the largest float below it
        # lands on the last positive slot.
        r = np.minimum(r, np.nextafter(total, 0.0))
        if not self.cfg.scan_off_by_one:
            idx = np.searchsorted(cum, r, side="right")
            return idx, p[idx] / total
        idx = np.minimum(np.searchsorted(cum, r, side="left") + 1, size - 1)
        if size == 1:
            return idx, np.ones(b)
        # Slot j is returned for its predecessor's interval; the clamp adds the last slot's own.
        mass = p[idx - 1] + np.where(idx == size - 1, p[size - 1], 0.0)
        return idx, mass / total

    def _min_prob(self, size: int) -> float:
        p = self.prios[:size]
        if self.cfg.scan_off_by_one and size > 1:
            # Returned slot j carries p[j-1] (the last also p[size-1]); slot 0 never.
            p = np.concatenate([p[:-2], [p[-2] + p[-1]]])
        pos = p[p > 0]
        return float(pos.min() / self.prios[:size].sum())

    def state_dict(self) -> dict:
        return {**super().state_dict(), "prios": self.prios.copy()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.prios[:] = state["prios"]


class SumTreeSampler(_Prioritized):
    """Proportional PER with an array-backed sum tree: O(log N) sample and update."""

    name = "sumtree"

    def __init__(self, cfg: SamplerConfig, capacity: int, seed: int):
        super().__init__(cfg, capacity, seed)
        # The min tree only pays for itself when weights are normalised by the buffer.
        self.tree = SumTree(self.capacity, track_min=cfg.weight_norm == "buffer")
        self._weight_mode = 0 if not cfg.is_weights else (2 if cfg.weight_norm == "buffer" else 1)
        self._u = np.empty(0, dtype=np.float64)

    def _write(self, slots: np.ndarray, prios: np.ndarray, limit: int) -> None:
        self.tree.update(slots, prios, limit)

    # sample() and update() below are the generic ones with the NumPy steps fused into
    # one numba call each (SumTree.sample_weighted, SumTree.update_from_td): at B = 32
    # the glue (IS weights, metrics, priorities, validation) cost more than the tree walk.
    def sample(self, batch_size: int, size: int, beta: float) -> SampleBatch:
        tree = self.tree
        if tree.tree[1] <= 0 or size != self.size or batch_size < 1:
            return super().sample(batch_size, size, beta)  # edge cases and their errors
        t0 = time.perf_counter()
        if self._u.size != batch_size:
            self._u = np.empty(batch_size, dtype=np.float64)
        u = self.rng.random(out=self._u)  # same stream as rng.random(batch_size)
        idx, w, w_sum, w_max = tree.sample_weighted(u, self.cfg.stratified, beta, self._weight_mode)
        self._record_batch(t0, w_sum, w_max, batch_size)
        return SampleBatch(idx, w)

    def update(self, slots: np.ndarray, td_errors: np.ndarray) -> None:
        t0 = time.perf_counter()
        slots, td = _slots_and_td(slots, td_errors)
        p_max = self.tree.update_from_td(slots, td, self.cfg.alpha, self.cfg.eps, self.size)
        if p_max > self.max_priority:
            self.max_priority = p_max
        self._t_update += time.perf_counter() - t0

    def _draw(self, u: np.ndarray, size: int):
        if self.tree.total <= 0:
            return None
        return self.tree.draw(u, self.cfg.stratified)

    def _min_prob(self, size: int) -> float:
        return self.tree.min_positive / self.tree.total

    def state_dict(self) -> dict:
        return {**super().state_dict(), "tree": self.tree.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tree.load_state_dict(state["tree"])


class RankSampler(_Prioritized):
    """Rank-based PER: P(i) proportional to rank(i) ** -alpha, ranking slots by |delta|.

    `eps` plays no part (adding it does not change a ranking); "stratified"
    draws one item from each of B equal-probability segments of the CDF.
    """

    name = "rank"
    max_priority_metric = C.SAMPLER_RANK_KEY_MAX  # |delta|, not a proportional priority

    def __init__(self, cfg: SamplerConfig, capacity: int, seed: int):
        super().__init__(cfg, capacity, seed)
        self.order = RankOrder(self.capacity, cfg.alpha)

    def _priorities(self, td: np.ndarray) -> np.ndarray:
        return np.abs(td)

    def _zero_priority(self) -> float:
        return 0.0

    def _write(self, slots: np.ndarray, prios: np.ndarray, limit: int) -> None:
        self.order.set(slots, prios, limit)

    def _draw(self, u: np.ndarray, size: int):
        return self.order.draw(u, self.cfg.stratified)

    def _min_prob(self, size: int) -> float:
        return float(self.order.prob_of_rank(np.array([self.order.n]))[0])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "order": self.order.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.order.load_state_dict(state["order"])


_PRIORITIZED = {"linear_scan": LinearScanSampler, "sumtree": SumTreeSampler, "rank": RankSampler}


def make_sampler(cfg: SamplerConfig, capacity: int, seed: int):
    if cfg.name == "uniform":
        return UniformSampler(capacity, seed)
    if cfg.name in _PRIORITIZED:
        return _PRIORITIZED[cfg.name](cfg, capacity, seed)
    raise ConfigError("sampler.name", cfg.name, "one of " + ", ".join(SAMPLERS))
