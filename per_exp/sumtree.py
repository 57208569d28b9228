"""Array-backed sum tree with batched update and find.

Layout: ``tree[1]`` is the root; node i has children 2i and 2i+1; the
``cap`` leaves (cap = next power of two >= capacity) live at
``tree[cap:2*cap]``, leaf k at ``tree[cap + k]``. ``tree[0]`` is unused.

Invariant (checked by property tests): every internal node equals the sum of
its two children, so ``tree[1]`` is the sum of all leaves. Leaves past
``capacity`` stay 0 and are therefore never found.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.cap = 1 << max(0, (capacity - 1).bit_length())
        self.depth = self.cap.bit_length() - 1
        self.tree = np.zeros(2 * self.cap, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1]) if self.cap > 1 else float(self.tree[1])

    def get(self, leaves: np.ndarray) -> np.ndarray:
        return self.tree[self.cap + np.asarray(leaves, dtype=np.int64)]

    def update(self, leaves: np.ndarray, values: np.ndarray) -> None:
        """Set leaves to values (last write wins on duplicates), then fix parents."""
        leaves = np.asarray(leaves, dtype=np.int64)
        nodes = leaves + self.cap
        self.tree[nodes] = values  # numpy fancy assignment: last duplicate wins
        nodes = np.unique(nodes >> 1)
        while nodes.size and nodes[0] >= 1:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes >> 1)

    def find(self, values: np.ndarray) -> np.ndarray:
        """Leaf index whose prefix-sum interval [c_{k-1}, c_k) holds each value."""
        v = np.asarray(values, dtype=np.float64).copy()
        idx = np.ones(v.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = self.tree[2 * idx]
            go_right = v >= left
            v -= left * go_right
            idx = 2 * idx + go_right
        return idx - self.cap

    def state_dict(self) -> dict:
        return {"tree": self.tree.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.tree[:] = state["tree"]
