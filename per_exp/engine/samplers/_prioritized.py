"""What every prioritized sampler shares, per slot: streams, the new-priority policy, max priority, metrics.

A subclass stores priorities and draws, in kernels over slots; this base
holds the per-slot bookkeeping and turns a kernel's per-slot error code
into a ValueError naming the bad entry. Priorities are (|delta| + eps) **
alpha for the proportional samplers and |delta| for rank (its keys);
``max_priority`` is the largest ever written (the paper's max_{i<t} p_i),
in those units, logged under a metric key of its own for each unit
(``max_priority_metric``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numba import njit

from per_exp import contract as C
from per_exp.config import SamplerConfig
from per_exp.engine import pcg
from per_exp.engine.samplers._slots import SlotClock, check_capacity


@njit(cache=True, nogil=True, error_model="numpy")
def importance_weights_into(probs, size, beta, min_prob, out_w):  # pragma: no cover - compiled
    """out_w = (N P_i)^-beta / max w, as float32 (priorities.importance_weights); max over the buffer if min_prob > 0.

    Returns (sum, max) of the stored weights, for the episode metrics.
    """
    b = probs.shape[0]
    denom = 0.0
    if min_prob > 0.0:
        denom = (size * min_prob) ** (-beta)
    else:
        for i in range(b):
            w = (size * probs[i]) ** (-beta)
            if w > denom:
                denom = w
    w_sum = 0.0
    w_max = 0.0
    for i in range(b):
        w = np.float32(((size * probs[i]) ** (-beta)) / denom)
        out_w[i] = w
        w_sum += w
        if w > w_max:
            w_max = w
    return w_sum, w_max


class Prioritized:
    name: ClassVar[str] = ""
    prioritized: ClassVar[bool] = True
    max_priority_metric: ClassVar[str] = C.SAMPLER_PRIORITY_MAX

    def __init__(self, cfg: SamplerConfig, num_slots: int, capacity: int):
        self.cfg = cfg
        self.num_slots = int(num_slots)
        self.capacity = check_capacity(capacity)
        self.rng = np.zeros((num_slots, pcg.STATE_WORDS), np.uint64)
        self.alpha = np.zeros(num_slots)
        self.eps = np.zeros(num_slots)
        self.max_priority = np.ones(num_slots)  # paper: p_1 = 1
        self.added = np.zeros(num_slots, np.int64)  # slots [0, added) hold a transition (the ring fills from 0)
        self.w_sum = np.zeros(num_slots)
        self.w_max = np.zeros(num_slots)
        self.w_n = np.zeros(num_slots, np.int64)
        self.clock = SlotClock(num_slots)
        self.new_max = cfg.new_priority == "max"
        self.weight_mode = 0 if not cfg.is_weights else (2 if cfg.weight_norm == "buffer" else 1)
        self._u: np.ndarray = np.empty(0)
        self._v: np.ndarray = np.empty(0)

    @classmethod
    def problems(cls, cfg: SamplerConfig) -> list[tuple[str, Any, str]]:
        if cfg.scan_off_by_one:
            return [
                (
                    "sampler.scan_off_by_one",
                    True,
                    f"false unless sampler.name is linear_scan (got sampler.name={cls.name}; "
                    "add sampler.scan_off_by_one=false)",
                )
            ]
        return []

    # -- subclass hooks ----------------------------------------------------------------------
    def _clear(self, k: int) -> None:
        raise NotImplementedError

    def _zero_priority(self, k: int) -> float:
        """Priority of a transition whose TD error is 0 (the seed's new transitions)."""
        return float((0.0 + self.eps[k]) ** self.alpha[k])

    def _write_td(self, k: int, idx: np.ndarray, td: np.ndarray, limit: int) -> tuple[int, float]:
        """Validate and write slot k's priorities from TD errors; (first bad position or -1, max written)."""
        raise NotImplementedError

    def _priority_of(self, k: int, td: float) -> float:
        return float((abs(td) + self.eps[k]) ** self.alpha[k])

    # -- the Sampler protocol ----------------------------------------------------------------
    def start(self, k: int, seed: int, cfg: SamplerConfig) -> None:
        pcg.from_state(np.random.PCG64(seed).state, out=self.rng[k])
        self.alpha[k], self.eps[k] = cfg.alpha, cfg.eps
        self.max_priority[k] = 1.0
        self.added[k] = 0
        self.w_sum[k] = self.w_max[k] = 0.0
        self.w_n[k] = 0
        self.clock.take(k)
        self._clear(k)

    def _uv(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Scratch for B uniforms and B tree-search values."""
        if self._u.shape[0] != b:
            self._u = np.empty(b)
            self._v = np.empty(b)
        return self._u, self._v

    def first_priority(self) -> np.ndarray:
        """Per slot, the priority a new transition gets (the max so far, or that of TD error 0)."""
        if self.new_max:
            return self.max_priority
        return np.array([self._zero_priority(k) for k in range(self.num_slots)])

    def update_slot(self, k: int, idx: np.ndarray, td: np.ndarray) -> None:
        t0 = self.clock.now()
        idx = np.ascontiguousarray(idx, dtype=np.int64).reshape(-1)
        td = np.ascontiguousarray(td, dtype=np.float64).reshape(-1)
        if idx.shape != td.shape:
            raise ValueError(f"update got {idx.size} slots but {td.size} TD errors")
        if idx.size:
            limit = int(self.added[k])
            bad, p_max = self._write_td(k, idx, td, limit)
            if bad >= 0:
                raise self.bad_entry(k, idx, td, bad)
            if p_max > self.max_priority[k]:
                self.max_priority[k] = p_max
        self.clock.update[k] += self.clock.now() - t0

    def bad_entry(self, k: int, idx: np.ndarray, td: np.ndarray, bad: int) -> ValueError:
        slot, limit = int(idx[bad]), int(self.added[k])
        if not 0 <= slot < limit:
            return ValueError(f"slot at index {bad} is {slot}; slots must be in [0, {limit})")
        return ValueError(
            f"TD error at index {bad} (slot {slot}) is {float(td[bad])!r}, priority {self._priority_of(k, td[bad])!r}; "
            "priorities must be finite and >= 0 (nothing was written)"
        )

    def stats(self, k: int) -> dict[str, float]:
        t_sample, t_update = self.clock.take(k)
        out = {
            C.SAMPLER_SAMPLE_SECONDS: t_sample,
            C.SAMPLER_UPDATE_SECONDS: t_update,
            self.max_priority_metric: float(self.max_priority[k]),
        }
        if self.w_n[k]:
            out[C.SAMPLER_IS_WEIGHT_MEAN] = float(self.w_sum[k] / self.w_n[k])
            out[C.SAMPLER_IS_WEIGHT_MAX] = float(self.w_max[k])
        self.w_sum[k] = self.w_max[k] = 0.0
        self.w_n[k] = 0
        return out

    def state_dict(self, k: int) -> dict[str, Any]:
        return {
            "rng": pcg.to_state(self.rng[k]),
            "max_priority": float(self.max_priority[k]),
            "size": int(self.added[k]),
            "alpha": float(self.alpha[k]),
            "eps": float(self.eps[k]),
        }

    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        pcg.from_state(state["rng"], out=self.rng[k])
        self.max_priority[k] = float(state["max_priority"])
        self.added[k] = int(state["size"])
        self.alpha[k] = float(state.get("alpha", self.alpha[k]))
        self.eps[k] = float(state.get("eps", self.eps[k]))
