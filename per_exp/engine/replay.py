"""Ring buffer of transitions in preallocated NumPy arrays.

No per-transition Python objects: `add` writes one row in place and
`gather` pulls a whole batch by index in one fancy-indexing call per field.
The slot written by `add` is returned so a sampler can give it a priority;
when the ring wraps, the oldest slot (and so its priority) is overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Batch:
    states: np.ndarray  # float32 (B, obs_dim)
    actions: np.ndarray  # int64 (B,)
    rewards: np.ndarray  # float32 (B,)
    next_states: np.ndarray  # float32 (B, obs_dim)
    dones: np.ndarray  # float32 (B,): 1 where the next state is terminal (no bootstrap)


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.states = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_states = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.pos = 0  # next slot to write
        self.size = 0  # number of valid slots

    def __len__(self) -> int:
        return self.size

    def add(self, state, action: int, reward: float, next_state, done: bool) -> int:
        i = self.pos
        self.states[i] = state
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_states[i] = next_state
        self.dones[i] = float(done)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def gather(self, idx: np.ndarray) -> Batch:
        return Batch(self.states[idx], self.actions[idx], self.rewards[idx], self.next_states[idx], self.dones[idx])

    def all(self) -> Batch:
        n = self.size
        return Batch(self.states[:n], self.actions[:n], self.rewards[:n], self.next_states[:n], self.dones[:n])

    def state_dict(self) -> dict:
        return {
            "states": self.states.copy(),
            "next_states": self.next_states.copy(),
            "actions": self.actions.copy(),
            "rewards": self.rewards.copy(),
            "dones": self.dones.copy(),
            "pos": self.pos,
            "size": self.size,
        }

    def load_state_dict(self, s: dict) -> None:
        for k in ("states", "next_states", "actions", "rewards", "dones"):
            have, got = getattr(self, k).shape, np.shape(s[k])
            if have != got:
                raise ValueError(f"replay state {k!r} has shape {got}, this buffer holds {have} (capacity, obs_dim)")
            getattr(self, k)[:] = s[k]
        self.pos, self.size = int(s["pos"]), int(s["size"])
