"""Slots kept sorted by priority key, for rank-based PER (Schaul et al. 2016, sec. 3.3).

``order[:n]`` lists the stored slots from the largest key (rank 1) to the
smallest, ``skey[:n]``/``sstamp[:n]`` their keys and write stamps;
``key[slot]``/``stamp[slot]`` are a slot's own (key -1: not stored). Ties go
to the most recently written slot first, so a new transition given the
current maximum key lands at rank 1, as the paper intends.

Sampling does not depend on the keys at all, only on ranks:
P(rank r) = r^-alpha / sum_{j<=n} j^-alpha. ``cdf[r-1] = sum_{j<=r} j^-alpha``
is the same prefix for every n, so it is computed once for the capacity;
"k segments of equal probability" are then k equal slices of [0, cdf[n-1]),
each inverted exactly (searchsorted), which gives exactly P(i) rather than
the paper's piecewise-uniform approximation within a segment.

An update removes the written slots and merges them back in one pass:
O(n + B log B) per batch, instead of the paper's heap that is only
re-sorted now and then (and so samples from stale ranks).

The kernels (``write``, ``draw``, ``locate``, ``positions``) are the public
fast path, called by the rank sampler on rows of K orders; ``RankOrder``
wraps one order with checked methods.
"""

from __future__ import annotations

import numba
import numpy as np

from per_exp.engine.sumtree import validated_writes


@numba.njit(cache=True, nogil=True)
def locate(skey, sstamp, n, k, st):  # pragma: no cover - compiled
    """Position of the entry (k, st) in order[:n], sorted by (key, stamp) descending."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if skey[mid] > k or (skey[mid] == k and sstamp[mid] > st):
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def positions(skey, sstamp, key, stamp, n, slots, out):  # pragma: no cover - compiled
    for k in range(slots.size):
        s = slots[k]
        out[k] = locate(skey, sstamp, n, key[s], stamp[s]) if key[s] >= 0.0 else -1


@numba.njit(cache=True, nogil=True)
def write(key, stamp, skey, sstamp, order, n, clock, slots, vals):  # pragma: no cover - compiled
    """Write keys for slots (last duplicate wins); returns the new count n.

    Entries are ordered by (key, write stamp) descending, so every entry is
    unique: a slot is found by binary search even among many equal keys, and
    the newest of equal keys ranks first. Apart from those searches the
    arrays are walked in order (a streaming copy, not random access).
    """
    m = slots.size
    new_slots = np.empty(m, dtype=np.int64)
    new_keys = np.empty(m, dtype=np.float64)
    new_stamps = np.empty(m, dtype=np.int64)
    u = 0
    first_hole = n
    # Latest write first; key -2 marks "already taken by a later write".
    for k in range(m - 1, -1, -1):
        s = slots[k]
        if key[s] == -2.0:
            continue
        if key[s] >= 0.0:
            j = locate(skey, sstamp, n, key[s], stamp[s])
            order[j] = -1  # tombstone; skey/sstamp stay so later searches stay valid
            if j < first_hole:
                first_hole = j
        key[s] = -2.0
        new_slots[u] = s
        new_keys[u] = vals[k]
        new_stamps[u] = clock + k + 1  # later in the batch = newer
        u += 1
    new_slots = new_slots[:u]
    new_keys = new_keys[:u]
    new_stamps = new_stamps[:u]
    # Stable sort by key descending: equal keys stay latest-first (stamp descending).
    srt = np.argsort(-new_keys, kind="mergesort")
    new_slots = new_slots[srt]
    new_keys = new_keys[srt]
    new_stamps = new_stamps[srt]
    j = first_hole
    for i in range(first_hole, n):
        if order[i] != -1:
            order[j] = order[i]
            skey[j] = skey[i]
            sstamp[j] = sstamp[i]
            j += 1
    n_old = j
    # Merge from the back. New stamps exceed all old ones, so an old key equal
    # to a new one ranks after it.
    i = n_old - 1
    k = u - 1
    w = n_old + u - 1
    while k >= 0:
        if i >= 0 and skey[i] <= new_keys[k]:
            order[w] = order[i]
            skey[w] = skey[i]
            sstamp[w] = sstamp[i]
            i -= 1
        else:
            s = new_slots[k]
            order[w] = s
            skey[w] = new_keys[k]
            sstamp[w] = new_stamps[k]
            key[s] = new_keys[k]
            stamp[s] = new_stamps[k]
            k -= 1
        w -= 1
    return n_old + u


@numba.njit(cache=True, nogil=True)
def draw(cdf, order, n, u, stratified, alpha, out_idx, out_prob):  # pragma: no cover - compiled
    total = cdf[n - 1]
    b = u.size
    head = cdf[:n]
    for k in range(b):
        v = (k + u[k]) * (total / b) if stratified else u[k] * total
        r = np.searchsorted(head, v, side="right")
        if r > n - 1:  # v == total by round-off
            r = n - 1
        out_idx[k] = order[r]
        out_prob[k] = (r + 1.0) ** (-alpha) / total


class RankOrder:
    def __init__(self, capacity: int, alpha: float):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.alpha = float(alpha)
        self.key = np.full(self.capacity, -1.0, dtype=np.float64)  # -1: slot not stored
        self.stamp = np.zeros(self.capacity, dtype=np.int64)
        self.skey = np.zeros(self.capacity, dtype=np.float64)
        self.sstamp = np.zeros(self.capacity, dtype=np.int64)
        self.order = np.full(self.capacity, -1, dtype=np.int64)
        self.n = 0
        self.clock = 0  # write stamps: later writes rank first among equal keys
        self.cdf = np.cumsum(np.arange(1, self.capacity + 1, dtype=np.float64) ** (-self.alpha))

    def set(self, slots: np.ndarray, keys: np.ndarray, limit: int | None = None) -> None:
        """Give slots new keys (last duplicate wins); all or nothing, like SumTree.update."""
        slots, keys = validated_writes(slots, keys, self.capacity, limit, "slot", "slots")
        self.n = int(write(self.key, self.stamp, self.skey, self.sstamp, self.order, self.n, self.clock, slots, keys))
        self.clock += slots.size

    def ranks(self, slots: np.ndarray) -> np.ndarray:
        """1-based rank of each slot (0 for a slot not stored)."""
        slots = np.ascontiguousarray(slots, dtype=np.int64).reshape(-1)
        out = np.empty(slots.size, dtype=np.int64)
        positions(self.skey, self.sstamp, self.key, self.stamp, self.n, slots, out)
        return out + 1

    def prob_of_rank(self, ranks: np.ndarray) -> np.ndarray:
        return np.asarray(ranks, dtype=np.float64) ** (-self.alpha) / self.cdf[self.n - 1]

    def draw(self, u: np.ndarray, stratified: bool) -> tuple[np.ndarray, np.ndarray]:
        if self.n == 0:
            raise ValueError("cannot draw by rank from an empty order (no slot written yet)")
        u = np.ascontiguousarray(u, dtype=np.float64)
        idx = np.empty(u.size, dtype=np.int64)
        prob = np.empty(u.size, dtype=np.float64)
        draw(self.cdf, self.order, self.n, u, bool(stratified), self.alpha, idx, prob)
        return idx, prob

    def state_dict(self) -> dict:
        arrays = {k: getattr(self, k).copy() for k in self._ARRAYS}
        return {**arrays, "n": self.n, "clock": self.clock}

    _ARRAYS = ("key", "stamp", "skey", "sstamp", "order")

    def load_state_dict(self, state: dict) -> None:
        for k in self._ARRAYS:
            arr = np.asarray(state[k])
            if arr.shape != (self.capacity,):
                raise ValueError(f"RankOrder state {k!r} has shape {arr.shape}, expected ({self.capacity},)")
            getattr(self, k)[:] = arr
        self.n = int(state["n"])
        self.clock = int(state["clock"])
