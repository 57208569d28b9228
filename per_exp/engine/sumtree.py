"""Array-backed sum tree (with an optional min tree), batched update and find.

Layout: ``tree[1]`` is the root; node i has children 2i and 2i+1; the
``n_leaves`` leaves (n_leaves = next power of two >= capacity) live at
``tree[n_leaves:2*n_leaves]``, leaf k at ``tree[n_leaves + k]``. ``tree[0]`` is unused.
With capacity 1 the root *is* the only leaf.

Invariant (checked by property tests): every internal node is recomputed
as ``left + right`` from its children (never patched by a delta), so it
equals the sum of its children bit for bit and ``tree[1]`` is the sum of
all leaves up to float round-off. Leaves past ``capacity`` stay 0 and are
never found.

The min tree holds, per node, the smallest *positive* leaf below it (inf
when there is none): zero-priority leaves are never drawn, so they must not
set the largest importance weight of the buffer.

The loops are numba kernels: NumPy needs a handful of array calls per tree
level (~1 us each), which alone costs more than cpprb's whole operation at
N = 10,000 (profile in the README, "Replay and samplers"). The kernels are
this module's public fast path, allocation-free (callers pass ``out`` and
scratch arrays): the samplers call them on rows of K trees from their own
kernels. ``SumTree`` wraps one tree with checked, allocating methods.
"""

from __future__ import annotations

import numba
import numpy as np

_INF = np.inf


@numba.njit(cache=True, nogil=True)
def first_bad(leaves, values, capacity):  # pragma: no cover - compiled
    """Index of the first out-of-range leaf or NaN/inf/negative value, else -1."""
    for k in range(leaves.size):
        v = values[k]
        if leaves[k] < 0 or leaves[k] >= capacity or not (v >= 0.0) or v == _INF:
            return k
    return -1


def validated_writes(
    indices: np.ndarray, values: np.ndarray, capacity: int, limit: int | None, noun: str, nouns: str
) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous (int64 indices, float64 values), or a ValueError naming the first bad position.

    Shared by every structure that writes priorities in a compiled kernel
    without bounds checks: nothing is written unless the whole batch is valid.
    """
    limit = capacity if limit is None else min(int(limit), capacity)
    indices = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
    values = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    if indices.shape != values.shape:
        raise ValueError(f"{indices.size} {noun} indices but {values.size} values")
    bad = first_bad(indices, values, limit)
    if bad >= 0:
        i = int(indices[bad])
        if not 0 <= i < limit:
            raise ValueError(f"{noun} at index {bad} is {i}; {nouns} must be in [0, {limit})")
        raise ValueError(f"priority at index {bad} ({noun} {i}) is {values[bad]!r}; priorities must be finite and >= 0")
    return indices, values


@numba.njit(cache=True, nogil=True)
def write(tree, mins, n_leaves, leaves, values, track_min, nodes):  # pragma: no cover - compiled
    """Write leaves in order (so the last duplicate wins), then fix ancestors; no checks.

    A few leaves: their ancestors are recomputed level by level, once per
    distinct node when the leaves come sorted (stratified draws do), so
    shared upper levels are not redone per leaf. A bulk write (more leaves
    than the tree has nodes per path) rebuilds every internal node once.
    ``nodes``: int64 scratch of at least len(leaves).
    """
    m = leaves.size
    depth = 0
    while (1 << depth) < n_leaves:
        depth += 1
    for k in range(m):
        node = n_leaves + leaves[k]
        tree[node] = values[k]
        if track_min:
            mins[node] = values[k] if values[k] > 0.0 else _INF
    if m * depth > n_leaves:
        for node in range(n_leaves - 1, 0, -1):
            tree[node] = tree[2 * node] + tree[2 * node + 1]
            if track_min:
                mins[node] = min(mins[2 * node], mins[2 * node + 1])
        return
    for k in range(m):
        nodes[k] = n_leaves + leaves[k]
    for _ in range(depth):
        prev = -1
        for k in range(m):
            node = nodes[k] >> 1
            nodes[k] = node
            if node == prev:
                continue
            prev = node
            tree[node] = tree[2 * node] + tree[2 * node + 1]
            if track_min:
                mins[node] = min(mins[2 * node], mins[2 * node + 1])


@numba.njit(cache=True, nogil=True)
def write_one(tree, mins, n_leaves, leaf, value, track_min):  # pragma: no cover - compiled
    """write() of a single leaf (a new transition's priority), without scratch."""
    node = n_leaves + leaf
    tree[node] = value
    if track_min:
        mins[node] = value if value > 0.0 else _INF
    node >>= 1
    while node >= 1:
        tree[node] = tree[2 * node] + tree[2 * node + 1]
        if track_min:
            mins[node] = min(mins[2 * node], mins[2 * node + 1])
        node >>= 1


@numba.njit(cache=True, nogil=True)
def descend(tree, n_leaves, v, out):  # pragma: no cover - compiled
    """For each v[k], the leaf whose interval [c_{j-1}, c_j) holds it; never a zero-priority one.

    Going right needs v >= left AND a positive right subtree: round-off
    (v - left a hair above the right sum, or v == total) then cannot walk
    into an empty subtree, so every found leaf has positive priority as
    long as the root does. All searches advance one level at a time, so the
    B loads of a level are independent and overlap in the memory system, and
    the step is branchless (a random left/right branch mispredicts half the
    time): 2.6x faster than path-by-path with a branch at N = 10,000, 2.7x
    at 2^20. `v` is consumed.
    """
    b = v.size
    for k in range(b):
        out[k] = 1
    level = 1
    while level < n_leaves:
        for k in range(b):
            i = out[k]
            left = tree[2 * i]
            go = (v[k] >= left) & (tree[2 * i + 1] > 0.0)
            v[k] -= left * go
            out[k] = 2 * i + go
        level *= 2
    for k in range(b):
        out[k] -= n_leaves


@numba.njit(cache=True, nogil=True)
def points(total, u, stratified, out):  # pragma: no cover - compiled
    """out = values in [0, total) for uniforms u: stratum k is [k, k+1) * total / B, or i.i.d."""
    b = u.size
    for k in range(b):
        out[k] = (k + u[k]) * (total / b) if stratified else u[k] * total


@numba.njit(cache=True, nogil=True)
def draw(tree, n_leaves, u, stratified, v, out_idx, out_prob):  # pragma: no cover - compiled
    """Proportional draws from uniforms u in [0, 1) (``v``: float64 scratch of len(u))."""
    total = tree[1]
    points(total, u, stratified, v)
    descend(tree, n_leaves, v, out_idx)
    for k in range(u.size):
        out_prob[k] = tree[n_leaves + out_idx[k]] / total


@numba.njit(cache=True, nogil=True)
def draw_weighted(tree, mins, n_leaves, u, stratified, beta, weight_mode, v, out_idx, out_w):  # pragma: no cover
    """Draw + IS weights in one call (``v``: float64 scratch of len(u)); the root must be > 0.

    weight_mode: 0 no weights (all 1), 1 divide by the batch max, 2 divide by
    the buffer max (the weight of the smallest positive leaf, from the min
    tree). Same formulas as priorities.is_weights, which the tests compare
    against; `out_w` is float32 like the weights the agent consumes.
    Returns (sum of weights, max weight) for the episode metrics.
    """
    b = u.size
    points(tree[1], u, stratified, v)
    descend(tree, n_leaves, v, out_idx)
    if weight_mode == 0:
        for k in range(b):
            out_w[k] = 1.0
        return float(b), 1.0
    p_min = np.inf
    if weight_mode == 2:
        p_min = mins[1]
    else:
        for k in range(b):
            p_min = min(p_min, tree[n_leaves + out_idx[k]])
    # (N P_i)^-beta / (N P_min)^-beta == (p_i / p_min)^-beta: N and the total cancel.
    w_sum = 0.0
    w_max = 0.0
    for k in range(b):
        w = (tree[n_leaves + out_idx[k]] / p_min) ** (-beta)
        out_w[k] = w
        w_sum += w
        if w > w_max:
            w_max = w
    return w_sum, w_max


@numba.njit(cache=True, nogil=True)
def write_from_td(tree, mins, n_leaves, track_min, leaves, td, alpha, eps, limit, scratch, nodes):  # pragma: no cover
    """Priorities (|td| + eps)^alpha, validated, then written; returns (bad index or -1, max priority).

    All or nothing: a leaf outside [0, limit) or a NaN/inf priority leaves the
    tree untouched. ``scratch``/``nodes``: float64/int64 scratch of len(leaves).
    """
    m = leaves.size
    p_max = 0.0
    for k in range(m):
        if leaves[k] < 0 or leaves[k] >= limit:
            return k, 0.0
        p = (abs(td[k]) + eps) ** alpha
        if not (p >= 0.0) or p == _INF:
            return k, 0.0
        scratch[k] = p
        if p > p_max:
            p_max = p
    write(tree, mins, n_leaves, leaves, scratch[:m], track_min, nodes)
    return -1, p_max


def leaf_count(capacity: int) -> int:
    """n_leaves: the power of two >= capacity that the leaves occupy (a tree array has 2 * n_leaves entries)."""
    return 1 << max(0, (int(capacity) - 1).bit_length())


class SumTree:
    """One tree; ``tree``/``mins`` may be given to view existing arrays (a row of K trees)."""

    def __init__(
        self, capacity: int, track_min: bool = False, tree: np.ndarray | None = None, mins: np.ndarray | None = None
    ):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.n_leaves = leaf_count(capacity)
        self.depth = self.n_leaves.bit_length() - 1
        self.track_min = bool(track_min)
        self.tree = np.zeros(2 * self.n_leaves, dtype=np.float64) if tree is None else tree
        # A 1-element dummy keeps the kernel signature fixed when min is off.
        self.mins = np.full(2 * self.n_leaves if track_min else 1, np.inf, dtype=np.float64) if mins is None else mins
        self._scratch = np.empty(256, dtype=np.float64)
        self._nodes = np.empty(256, dtype=np.int64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    @property
    def min_positive(self) -> float:
        """Smallest positive leaf (inf if none); needs track_min=True."""
        if not self.track_min:
            raise RuntimeError("SumTree(track_min=False) does not track the minimum leaf")
        return float(self.mins[1])

    def get(self, leaves: np.ndarray) -> np.ndarray:
        return self.tree[self.n_leaves + np.asarray(leaves, dtype=np.int64)]

    def update(self, leaves: np.ndarray, values: np.ndarray, limit: int | None = None) -> None:
        """Set leaves to values; on duplicates the last write wins.

        NaN, inf or negative values and leaves outside [0, limit) (default:
        the capacity) raise a ValueError naming the first offending position,
        before anything is written (the kernel does not bounds-check).
        """
        leaves, values = validated_writes(leaves, values, self.capacity, limit, "leaf", "leaves")
        write(self.tree, self.mins, self.n_leaves, leaves, values, self.track_min, self._nodes_for(leaves.size))

    def find(self, values: np.ndarray) -> np.ndarray:
        """Leaf index whose prefix-sum interval [c_{k-1}, c_k) holds each value."""
        values = np.array(values, dtype=np.float64).reshape(-1)  # a copy: descend consumes it
        out = np.empty(values.size, dtype=np.int64)
        descend(self.tree, self.n_leaves, values, out)
        return out

    def draw(self, u: np.ndarray, stratified: bool) -> tuple[np.ndarray, np.ndarray]:
        """(leaves, P(leaf)) for uniforms u in [0, 1); the root must be > 0."""
        if not self.tree[1] > 0:
            raise ValueError("cannot draw from a sum tree whose total priority is 0")
        u = np.ascontiguousarray(u, dtype=np.float64)
        idx = np.empty(u.size, dtype=np.int64)
        prob = np.empty(u.size, dtype=np.float64)
        draw(self.tree, self.n_leaves, u, bool(stratified), np.empty(u.size), idx, prob)
        return idx, prob

    def sample_weighted(self, u: np.ndarray, stratified: bool, beta: float, weight_mode: int):
        """(leaves, float32 weights, weight sum, weight max) for uniforms u; the root must be > 0."""
        if not self.tree[1] > 0:
            raise ValueError("cannot draw from a sum tree whose total priority is 0")
        if weight_mode == 2 and not self.track_min:
            raise RuntimeError("buffer-normalised weights need SumTree(track_min=True)")
        idx = np.empty(u.size, dtype=np.int64)
        w = np.empty(u.size, dtype=np.float32)
        w_sum, w_max = draw_weighted(
            self.tree, self.mins, self.n_leaves, u, stratified, beta, weight_mode, np.empty(u.size), idx, w
        )
        return idx, w, w_sum, w_max

    def update_from_td(self, leaves: np.ndarray, td: np.ndarray, alpha: float, eps: float, limit: int) -> float:
        """Write (|td| + eps)^alpha at leaves in [0, limit); all or nothing. Returns the max written."""
        if leaves.size > self._scratch.size:
            self._scratch = np.empty(leaves.size, dtype=np.float64)
        bad, p_max = write_from_td(
            self.tree,
            self.mins,
            self.n_leaves,
            self.track_min,
            leaves,
            td,
            alpha,
            eps,
            limit,
            self._scratch,
            self._nodes_for(leaves.size),
        )
        if bad >= 0:
            leaf = int(leaves[bad])
            if not 0 <= leaf < limit:
                raise ValueError(f"slot at index {bad} is {leaf}; slots must be in [0, {limit})")
            p = (abs(float(td[bad])) + eps) ** alpha
            raise ValueError(
                f"TD error at index {bad} (slot {leaf}) is {float(td[bad])!r}, priority {p!r}; "
                "priorities must be finite and >= 0 (nothing was written)"
            )
        return p_max

    def _nodes_for(self, m: int) -> np.ndarray:
        if m > self._nodes.size:
            self._nodes = np.empty(m, dtype=np.int64)
        return self._nodes

    def state_dict(self) -> dict:
        return {"tree": self.tree.copy(), "mins": self.mins.copy()}

    def load_state_dict(self, state: dict) -> None:
        for key in ("tree", "mins"):
            arr = np.asarray(state[key])
            if arr.shape != getattr(self, key).shape:
                raise ValueError(
                    f"SumTree state {key!r} has shape {arr.shape}, expected {getattr(self, key).shape} "
                    f"(capacity={self.capacity}, track_min={self.track_min})"
                )
            getattr(self, key)[:] = arr
