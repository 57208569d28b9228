"""The seed's O(N) cumulative scan per slot: a prefix sum, then a binary search per draw.

With ``scan_off_by_one`` it reproduces the notebook's bug: its loop
increments the index after adding, so it returns the successor of the slot
whose interval holds the random number (slot 0 is never drawn, and the
last slot also takes its predecessor's mass through the clamp).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from per_exp.config import SamplerConfig
from per_exp.engine import pcg
from per_exp.engine.samplers._prioritized import Prioritized, importance_weights_into


@njit(cache=True, nogil=True)
def _search(cum, n, r, right):  # pragma: no cover - compiled
    """np.searchsorted(cum[:n], r, side="right" if right else "left")."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if cum[mid] < r or (right and cum[mid] == r):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, error_model="numpy")
def draw_row(prios, size, u, stratified, off_by_one, cum, out_idx, out_prob):  # pragma: no cover - compiled
    """(index, P(index)) per uniform u over prios[:size]; False (nothing written) when every priority is 0."""
    total = 0.0
    for i in range(size):
        total += prios[i]
        cum[i] = total
    if total <= 0.0:
        return False
    b = u.shape[0]
    # r == total by round-off would run off the end; the largest float below it lands on the last positive slot
    top = np.nextafter(total, 0.0)
    for i in range(b):
        r = (i + u[i]) * (total / b) if stratified else u[i] * total
        r = min(r, top)
        if not off_by_one:
            j = _search(cum, size, r, True)
            out_idx[i] = j
            out_prob[i] = prios[j] / total
        else:
            j = min(_search(cum, size, r, False) + 1, size - 1)
            out_idx[i] = j
            if size == 1:
                out_prob[i] = 1.0
            else:  # slot j is returned for its predecessor's interval; the clamp adds the last slot's own
                mass = prios[j - 1] + (prios[size - 1] if j == size - 1 else 0.0)
                out_prob[i] = mass / total
    return True


@njit(cache=True, nogil=True)
def min_prob_row(prios, size, off_by_one):  # pragma: no cover - compiled
    """Smallest nonzero P over what can be drawn (its weight is the buffer's largest)."""
    total = 0.0
    for i in range(size):
        total += prios[i]
    p_min = np.inf
    last = size - 1 if (off_by_one and size > 1) else size
    for i in range(last):
        # the seed's scan returns slot j with p[j-1]; the last also carries p[size-1]
        p = prios[i] if not (off_by_one and size > 1 and i == size - 2) else prios[i] + prios[size - 1]
        if p > 0.0 and p < p_min:
            p_min = p
    return p_min / total


@njit(cache=True, nogil=True, error_model="numpy")
def sample_slots(
    prios, rng, size, beta, mask, stratified, off_by_one, weight_mode, u, probs, cum, out_idx, out_w, w_sum, w_max, w_n
):  # pragma: no cover - compiled
    b = out_idx.shape[1]
    for k in range(prios.shape[0]):
        if not mask[k]:
            continue
        for i in range(b):
            u[i] = pcg.next_double(rng[k])
        n = size[k]
        if not draw_row(prios[k], n, u, stratified, off_by_one, cum, out_idx[k], probs):
            for i in range(b):  # every priority is zero: draw uniformly with weight 1
                out_idx[k, i] = min(np.int64(u[i] * n), n - 1)
                out_w[k, i] = 1.0
            s, m = float(b), 1.0
        elif weight_mode == 0:
            for i in range(b):
                out_w[k, i] = 1.0
            s, m = float(b), 1.0
        else:
            mp = min_prob_row(prios[k], n, off_by_one) if weight_mode == 2 else -1.0
            s, m = importance_weights_into(probs, n, beta[k], mp, out_w[k])
        w_sum[k] += s
        if m > w_max[k]:
            w_max[k] = m
        w_n[k] += b


@njit(cache=True, nogil=True, error_model="numpy")
def write_td_row(prios, idx, td, alpha, eps, limit):  # pragma: no cover - compiled
    """(|td| + eps)^alpha at idx, validated first (all or nothing); (bad position or -1, max written)."""
    m = idx.shape[0]
    p_max = 0.0
    for i in range(m):
        p = (abs(td[i]) + eps) ** alpha
        if idx[i] < 0 or idx[i] >= limit or not (p >= 0.0) or p == np.inf:
            return i, 0.0
    for i in range(m):  # in order, so the last duplicate wins
        p = (abs(td[i]) + eps) ** alpha
        prios[idx[i]] = p
        if p > p_max:
            p_max = p
    return -1, p_max


@njit(cache=True, nogil=True, error_model="numpy")
def update_slots(prios, idx, td, mask, alpha, eps, added, max_priority, bad):  # pragma: no cover - compiled
    for k in range(prios.shape[0]):
        bad[k] = -1
        if mask[k]:
            b_k, p_max = write_td_row(prios[k], idx[k], td[k], alpha[k], eps[k], added[k])
            bad[k] = b_k
            if b_k < 0 and p_max > max_priority[k]:
                max_priority[k] = p_max


@njit(cache=True, nogil=True)
def add_slots(prios, written, mask, first, added):  # pragma: no cover - compiled
    for k in range(prios.shape[0]):
        if mask[k]:
            i = written[k]
            prios[k, i] = first[k]
            if i + 1 > added[k]:
                added[k] = i + 1


class LinearScanSampler(Prioritized):
    name = "linear_scan"

    def __init__(self, cfg: SamplerConfig, num_slots: int, capacity: int):
        super().__init__(cfg, num_slots, capacity)
        self.prios = np.zeros((num_slots, self.capacity))
        self._cum = np.empty(self.capacity)
        self._bad = np.empty(num_slots, np.int64)

    @classmethod
    def problems(cls, cfg: SamplerConfig) -> list[tuple[str, Any, str]]:
        return []

    def _clear(self, k: int) -> None:
        self.prios[k] = 0.0

    def add(self, written: np.ndarray, mask: np.ndarray) -> None:
        t0 = self.clock.now()
        add_slots(self.prios, written, mask, self.first_priority(), self.added)
        self.clock.charge(self.clock.update, t0, mask)

    def draw(self, k: int, u: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(indices, P(index)) for uniforms u, or None when every priority is zero (what the scan returns)."""
        idx, prob = np.empty(u.size, np.int64), np.empty(u.size)
        ok = draw_row(
            self.prios[k],
            size,
            np.asarray(u, np.float64),
            self.cfg.stratified,
            self.cfg.scan_off_by_one,
            self._cum,
            idx,
            prob,
        )
        return (idx, prob) if ok else None

    def sample(
        self, size: np.ndarray, beta: np.ndarray, mask: np.ndarray, out_idx: np.ndarray, out_w: np.ndarray
    ) -> None:
        t0 = self.clock.now()
        u, probs = self._uv(out_idx.shape[1])
        sample_slots(
            self.prios,
            self.rng,
            size,
            beta,
            mask,
            self.cfg.stratified,
            self.cfg.scan_off_by_one,
            self.weight_mode,
            u,
            probs,
            self._cum,
            out_idx,
            out_w,
            self.w_sum,
            self.w_max,
            self.w_n,
        )
        self.clock.charge(self.clock.sample, t0, mask)

    def update(self, idx: np.ndarray, td: np.ndarray, mask: np.ndarray) -> np.ndarray:
        t0 = self.clock.now()
        update_slots(self.prios, idx, td, mask, self.alpha, self.eps, self.added, self.max_priority, self._bad)
        self.clock.charge(self.clock.update, t0, mask)
        return self._bad

    def _write_td(self, k: int, idx: np.ndarray, td: np.ndarray, limit: int) -> tuple[int, float]:
        bad, p_max = write_td_row(self.prios[k], idx, td, float(self.alpha[k]), float(self.eps[k]), limit)
        return int(bad), float(p_max)

    def state_dict(self, k: int) -> dict[str, Any]:
        n = int(self.added[k])
        return {**super().state_dict(k), "prios": self.prios[k, :n].copy()}

    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        super().load_state_dict(k, state)
        p = np.asarray(state["prios"], dtype=np.float64)
        self.prios[k] = 0.0
        self.prios[k, : p.size] = p


SAMPLER = LinearScanSampler
