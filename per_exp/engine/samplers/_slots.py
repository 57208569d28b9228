"""What every sampler does per slot besides drawing: clocks, batch-weight metrics, argument checks."""

from __future__ import annotations

import time

import numpy as np


class SlotClock:
    """Seconds spent in sampling and priority updates, per slot: a call's time is shared by its slots."""

    def __init__(self, num_slots: int):
        self.sample = np.zeros(num_slots)
        self.update = np.zeros(num_slots)

    @staticmethod
    def now() -> float:
        return time.perf_counter()

    def charge(self, into: np.ndarray, t0: float, mask: np.ndarray) -> None:
        dt = time.perf_counter() - t0
        if into.shape[0] == 1:  # a group of one: no mask arithmetic
            if mask[0]:
                into[0] += dt
            return
        n = int(np.count_nonzero(mask))
        if n:
            into[mask] += dt / n

    def take(self, k: int) -> tuple[float, float]:
        out = (float(self.sample[k]), float(self.update[k]))
        self.sample[k] = self.update[k] = 0.0
        return out


def check_sample_args(batch_size: int, size: int, capacity: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if size <= 0:
        raise ValueError("cannot sample from an empty replay buffer (size=0): add transitions first")
    if size > capacity:
        raise ValueError(f"size={size} exceeds the sampler capacity {capacity}")


def check_capacity(capacity: int) -> int:
    if int(capacity) < 1:
        raise ValueError(f"sampler capacity must be an integer >= 1, got {capacity!r}")
    return int(capacity)
