"""Proportional PER with an array-backed sum tree per slot: O(log N) sample and update.

Slot k's tree is row k of ``trees`` (and of ``mins``, the min tree kept only
when weights are normalised by the buffer); the kernels of
``per_exp.engine.sumtree`` do the work on each row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from per_exp.config import SamplerConfig
from per_exp.engine import pcg
from per_exp.engine import sumtree as st
from per_exp.engine.samplers._prioritized import Prioritized


@njit(cache=True, nogil=True)
def add_slots(trees, mins, n_leaves, track_min, written, mask, first, added):  # pragma: no cover - compiled
    for k in range(trees.shape[0]):
        if mask[k]:
            i = written[k]
            st.write_one(trees[k], mins[k], n_leaves, i, first[k], track_min)
            if i + 1 > added[k]:
                added[k] = i + 1


@njit(cache=True, nogil=True, error_model="numpy")
def sample_slots(
    trees, mins, n_leaves, rng, size, beta, mask, stratified, weight_mode, u, v, out_idx, out_w, w_sum, w_max, w_n
):  # pragma: no cover - compiled
    b = out_idx.shape[1]
    for k in range(trees.shape[0]):
        if not mask[k]:
            continue
        for i in range(b):
            u[i] = pcg.next_double(rng[k])
        if trees[k, 1] > 0.0:
            s, m = st.draw_weighted(
                trees[k], mins[k], n_leaves, u, stratified, beta[k], weight_mode, v, out_idx[k], out_w[k]
            )
        else:  # every priority is zero: nothing to prefer, draw uniformly with weight 1
            n = size[k]
            for i in range(b):
                out_idx[k, i] = min(np.int64(u[i] * n), n - 1)
                out_w[k, i] = 1.0
            s, m = float(b), 1.0
        w_sum[k] += s
        if m > w_max[k]:
            w_max[k] = m
        w_n[k] += b


@njit(cache=True, nogil=True, error_model="numpy")
def update_slots(
    trees, mins, n_leaves, track_min, idx, td, mask, alpha, eps, added, max_priority, scratch, nodes, bad
):  # pragma: no cover - compiled
    for k in range(trees.shape[0]):
        bad[k] = -1
        if mask[k]:
            b_k, p_max = st.write_from_td(
                trees[k], mins[k], n_leaves, track_min, idx[k], td[k], alpha[k], eps[k], added[k], scratch, nodes
            )
            bad[k] = b_k
            if b_k < 0 and p_max > max_priority[k]:
                max_priority[k] = p_max


class SumTreeSampler(Prioritized):
    name = "sumtree"

    def __init__(self, cfg: SamplerConfig, num_slots: int, capacity: int):
        super().__init__(cfg, num_slots, capacity)
        # The min tree only pays for itself when weights are normalised by the buffer.
        self.track_min = cfg.weight_norm == "buffer"
        self.n_leaves = st.leaf_count(self.capacity)
        self.trees = np.zeros((num_slots, 2 * self.n_leaves))
        self.mins = np.full((num_slots, 2 * self.n_leaves if self.track_min else 1), np.inf)
        self._scratch = np.empty(max(self.capacity, 1))
        self._nodes = np.empty(max(self.capacity, 1) + 1, np.int64)
        self._bad = np.empty(num_slots, np.int64)

    def tree(self, k: int) -> st.SumTree:
        """Slot k's tree (a view: reading it reads the sampler)."""
        return st.SumTree(self.capacity, self.track_min, tree=self.trees[k], mins=self.mins[k])

    def draw(self, k: int, u: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(indices, P(index)) for uniforms u, or None when every priority is zero."""
        if not self.trees[k, 1] > 0:
            return None
        return self.tree(k).draw(u, self.cfg.stratified)

    def _clear(self, k: int) -> None:
        self.trees[k] = 0.0
        self.mins[k] = np.inf

    def add(self, written: np.ndarray, mask: np.ndarray) -> None:
        t0 = self.clock.now()
        add_slots(
            self.trees, self.mins, self.n_leaves, self.track_min, written, mask, self.first_priority(), self.added
        )
        self.clock.charge(self.clock.update, t0, mask)

    def sample(
        self, size: np.ndarray, beta: np.ndarray, mask: np.ndarray, out_idx: np.ndarray, out_w: np.ndarray
    ) -> None:
        t0 = self.clock.now()
        u, v = self._uv(out_idx.shape[1])
        sample_slots(
            self.trees,
            self.mins,
            self.n_leaves,
            self.rng,
            size,
            beta,
            mask,
            self.cfg.stratified,
            self.weight_mode,
            u,
            v,
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
            self.trees,
            self.mins,
            self.n_leaves,
            self.track_min,
            idx,
            td,
            mask,
            self.alpha,
            self.eps,
            self.added,
            self.max_priority,
            self._scratch,
            self._nodes,
            self._bad,
        )
        self.clock.charge(self.clock.update, t0, mask)
        return self._bad

    def _write_td(self, k: int, idx: np.ndarray, td: np.ndarray, limit: int) -> tuple[int, float]:
        if idx.size > self._scratch.size:
            self._scratch = np.empty(idx.size)
            self._nodes = np.empty(idx.size, np.int64)
        bad, p_max = st.write_from_td(
            self.trees[k],
            self.mins[k],
            self.n_leaves,
            self.track_min,
            idx,
            td,
            float(self.alpha[k]),
            float(self.eps[k]),
            limit,
            self._scratch,
            self._nodes,
        )
        return int(bad), float(p_max)

    def state_dict(self, k: int) -> dict[str, Any]:
        return {**super().state_dict(k), "tree": self.trees[k].copy(), "mins": self.mins[k].copy()}

    def load_state_dict(self, k: int, state: dict[str, Any]) -> None:
        super().load_state_dict(k, state)
        self.tree(k).load_state_dict({"tree": state["tree"], "mins": state["mins"]})


SAMPLER = SumTreeSampler
