"""Rank-based PER per slot: P(i) proportional to rank(i) ** -alpha, ranking stored transitions by |delta|.

Slot k's order is row k of the ``RankOrder`` arrays (``per_exp.engine.rankorder``
has the invariants and the kernels). ``eps`` plays no part (adding it does
not change a ranking); "stratified" draws one item from each of B
equal-probability segments of the CDF.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from per_exp import contract as C
from per_exp.config import SamplerConfig
from per_exp.engine import pcg
from per_exp.engine import rankorder as ro
from per_exp.engine.samplers._prioritized import Prioritized, importance_weights_into


@njit(cache=True, nogil=True, error_model="numpy")
def sample_slots(
    key,
    stamp,
    skey,
    sstamp,
    order,
    n,
    cdf,
    alpha,
    rng,
    size,
    beta,
    mask,
    stratified,
    weight_mode,
    u,
    probs,
    out_idx,
    out_w,
    w_sum,
    w_max,
    w_n,
):  # pragma: no cover - compiled
    b = out_idx.shape[1]
    for k in range(key.shape[0]):
        if not mask[k]:
            continue
        for i in range(b):
            u[i] = pcg.next_double(rng[k])
        ro.draw(cdf[k], order[k], n[k], u, stratified, alpha[k], out_idx[k], probs)
        if weight_mode == 0:
            for i in range(b):
                out_w[k, i] = 1.0
            s, m = float(b), 1.0
        else:
            mp = (n[k] ** (-alpha[k])) / cdf[k, n[k] - 1] if weight_mode == 2 else -1.0
            s, m = importance_weights_into(probs, size[k], beta[k], mp, out_w[k])
        w_sum[k] += s
        if m > w_max[k]:
            w_max[k] = m
        w_n[k] += b


@njit(cache=True, nogil=True, error_model="numpy")
def write_row(key, stamp, skey, sstamp, order, n, clock, idx, td, limit):  # pragma: no cover - compiled
    """Keys |td| at idx, validated first (all or nothing); (bad position or -1, new n, max written)."""
    m = idx.shape[0]
    vals = np.empty(m)
    p_max = 0.0
    for i in range(m):
        p = abs(td[i])
        if idx[i] < 0 or idx[i] >= limit or not (p >= 0.0) or p == np.inf:
            return i, n, 0.0
        vals[i] = p
        if p > p_max:
            p_max = p
    return -1, ro.write(key, stamp, skey, sstamp, order, n, clock, idx, vals), p_max


@njit(cache=True, nogil=True, error_model="numpy")
def update_slots(
    key, stamp, skey, sstamp, order, n, clock, idx, td, mask, added, max_priority, bad
):  # pragma: no cover - compiled
    for k in range(key.shape[0]):
        bad[k] = -1
        if mask[k]:
            b_k, n_k, p_max = write_row(
                key[k], stamp[k], skey[k], sstamp[k], order[k], n[k], clock[k], idx[k], td[k], added[k]
            )
            bad[k] = b_k
            if b_k < 0:
                n[k] = n_k
                clock[k] += idx.shape[1]
                if p_max > max_priority[k]:
                    max_priority[k] = p_max


@njit(cache=True, nogil=True)
def add_slots(key, stamp, skey, sstamp, order, n, clock, written, mask, first, added):  # pragma: no cover
    one = np.empty(1, np.int64)
    val = np.empty(1)
    for k in range(key.shape[0]):
        if mask[k]:
            one[0] = written[k]
            val[0] = first[k]
            n[k] = ro.write(key[k], stamp[k], skey[k], sstamp[k], order[k], n[k], clock[k], one, val)
            clock[k] += 1
            if written[k] + 1 > added[k]:
                added[k] = written[k] + 1


class RankSampler(Prioritized):
    name = "rank"
    max_priority_metric = C.SAMPLER_RANK_KEY_MAX  # |delta|, not a proportional priority

    def __init__(self, cfg: SamplerConfig, num_slots: int, capacity: int):
        super().__init__(cfg, num_slots, capacity)
        shape = (num_slots, self.capacity)
        self.key = np.full(shape, -1.0)  # -1: slot not stored
        self.stamp = np.zeros(shape, np.int64)
        self.skey = np.zeros(shape)
        self.sstamp = np.zeros(shape, np.int64)
        self.order_ = np.full(shape, -1, np.int64)
        self.n = np.zeros(num_slots, np.int64)
        self.write_clock = np.zeros(num_slots, np.int64)  # write stamps: later writes rank first among equal keys
        self.cdf = np.zeros(shape)
        self._bad = np.empty(num_slots, np.int64)

    def _zero_priority(self, k: int) -> float:
        return 0.0

    def _priority_of(self, k: int, td: float) -> float:
        return abs(float(td))

    def _clear(self, k: int) -> None:
        self.key[k] = -1.0
        self.stamp[k] = self.sstamp[k] = 0
        self.skey[k] = 0.0
        self.order_[k] = -1
        self.n[k] = self.write_clock[k] = 0
        # the same prefix for every n: computed once per run (alpha may differ between slots)
        self.cdf[k] = np.cumsum(np.arange(1, self.capacity + 1, dtype=np.float64) ** (-self.alpha[k]))

    def order(self, k: int) -> ro.RankOrder:
        """Slot k's order, a copy (ranks, keys, probabilities for tests and inspection)."""
        o = ro.RankOrder(self.capacity, float(self.alpha[k]))
        o.load_state_dict(self._order_state(k))
        return o

    def _order_state(self, k: int) -> dict[str, Any]:
        return {
            "key": self.key[k].copy(),
            "stamp": self.stamp[k].copy(),
            "skey": self.skey[k].copy(),
            "sstamp": self.sstamp[k].copy(),
            "order": self.order_[k].copy(),
            "n": int(self.n[k]),
            "clock": int(self.write_clock[k]),
        }

    def add(self, written: np.ndarray, mask: np.ndarray) -> None:
        t0 = self.clock.now()
        add_slots(
            self.key,
            self.stamp,
            self.skey,
            self.sstamp,
            self.order_,
            self.n,
            self.write_clock,
            written,
            mask,
            self.first_priority(),
            self.added,
        )
        self.clock.charge(self.clock.update, t0, mask)

    def draw(self, k: int, u: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        return self.order(k).draw(u, self.cfg.stratified)

    def sample(
        self, size: np.ndarray, beta: np.ndarray, mask: np.ndarray, out_idx: np.ndarray, out_w: np.ndarray
    ) -> None:
        t0 = self.clock.now()
        u, probs = self._uv(out_idx.shape[1])
        sample_slots(
            self.key,
            self.stamp,
            self.skey,
            self.sstamp,
            self.order_,
            self.n,
            self.cdf,
            self.alpha,
            self.rng,
            size,
            beta,
            mask,
            self.cfg.stratified,
            self.weight_mode,
            u,
            probs,
            out_idx,
            out_w,
            self.w_sum,
            self.w_max,
            self.w_n,
        )
        self.clock.charge(self.clock.sample, t0, mask)

    def update(self, idx: np.ndarray, td: np.ndarray, mask: np.ndarray) -> np.ndarray:
        t0 = self.clock.now()
        update_slots(
            self.key,
            self.stamp,
            self.skey,
            self.sstamp,
            self.order_,
            self.n,
            self.write_clock,
            idx,
            td,
            mask,
            self.added,
            self.max_priority,
            self._bad,
        )
        self.clock.charge(self.clock.update, t0, mask)
        return self._bad

    def _write_td(self, k: int, idx: np.ndarray, td: np.ndarray, limit: int) -> tuple[int, float]:
        bad, n, p_max = write_row(
            self.key[k],
            self.stamp[k],
            self.skey[k],
            self.sstamp[k],
            self.order_[k],
            int(self.n[k]),
            int(self.write_clock[k]),
            idx,
            td,
            limit,
        )
        if bad < 0:
            self.n[k] = n
            self.write_clock[k] += idx.size
        return int(bad), float(p_max)

    def state_dict(self, k: int) -> dict[str, Any]:
        return {**super().state_dict(k), "order": self._order_state(k)}

    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        super().load_state_dict(k, state)
        self._clear(k)
        o = self.order(k)
        o.load_state_dict(state["order"])  # shape checks
        s = state["order"]
        self.key[k], self.stamp[k], self.skey[k] = s["key"], s["stamp"], s["skey"]
        self.sstamp[k], self.order_[k] = s["sstamp"], s["order"]
        self.n[k], self.write_clock[k] = int(s["n"]), int(s["clock"])


SAMPLER = RankSampler
