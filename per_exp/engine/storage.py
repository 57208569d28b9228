"""Transition storage with a slot axis: K ring buffers in preallocated arrays, written in one call per step.

Slot k's ring is row k of every array: ``states[k, i]``, ``actions[k, i]`` ...
``pos[k]`` is the next ring index to write and ``size[k]`` how many are
valid; the ring fills upward from 0 and then overwrites the oldest entry,
so ``add`` returns where each transition went and a sampler can give that
index its priority (which replaces the overwritten one's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

FIELDS = ("states", "next_states", "actions", "rewards", "dones")


@njit(cache=True, nogil=True)
def add_rows(
    states, next_states, actions, rewards, dones, pos, size, obs, action, reward, next_obs, done, mask, written
):  # pragma: no cover - compiled
    """Write one transition per slot k with mask[k]; written[k] receives its ring index (-1 elsewhere)."""
    cap = states.shape[1]
    for k in range(states.shape[0]):
        if not mask[k]:
            written[k] = -1
            continue
        i = pos[k]
        for c in range(states.shape[2]):
            states[k, i, c] = obs[k, c]
            next_states[k, i, c] = next_obs[k, c]
        actions[k, i] = action[k]
        rewards[k, i] = reward[k]
        dones[k, i] = done[k]
        written[k] = i
        pos[k] = i + 1 if i + 1 < cap else 0
        if size[k] < cap:
            size[k] += 1


class Storage:
    """K rings of ``capacity`` transitions with observations of ``obs_dim`` floats."""

    def __init__(self, num_slots: int, capacity: int, obs_dim: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.num_slots, self.capacity, self.obs_dim = int(num_slots), int(capacity), int(obs_dim)
        self.states = np.zeros((num_slots, capacity, obs_dim), dtype=np.float32)
        self.next_states = np.zeros((num_slots, capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((num_slots, capacity), dtype=np.int64)
        self.rewards = np.zeros((num_slots, capacity), dtype=np.float32)
        self.dones = np.zeros((num_slots, capacity), dtype=np.float32)  # 1: next state terminal (no bootstrap)
        self.pos = np.zeros(num_slots, dtype=np.int64)
        self.size = np.zeros(num_slots, dtype=np.int64)

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        done: np.ndarray,
        mask: np.ndarray,
        written: np.ndarray,
    ) -> None:
        """One transition into every slot where ``mask``; ``written[k]`` gets its ring index (-1 where not)."""
        add_rows(
            self.states,
            self.next_states,
            self.actions,
            self.rewards,
            self.dones,
            self.pos,
            self.size,
            obs,
            action,
            reward,
            next_obs,
            done,
            mask,
            written,
        )

    def clear(self, k: int) -> None:
        self.pos[k] = self.size[k] = 0

    # -- one slot's state: plain arrays and ints, the same whatever K is -------------------
    def state_dict(self, k: int) -> dict[str, Any]:
        n = int(self.size[k])
        out: dict[str, Any] = {f: getattr(self, f)[k, :n].copy() for f in FIELDS}
        out.update(pos=int(self.pos[k]), size=n, capacity=self.capacity)
        return out

    def load_state_dict(self, k: int, s: dict[str, Any]) -> None:
        n = int(s["size"])
        if int(s.get("capacity", self.capacity)) != self.capacity or n > self.capacity:
            raise ValueError(
                f"replay state holds capacity {s.get('capacity')} (size {n}), this storage {self.capacity}"
            )
        for f in FIELDS:
            arr = np.asarray(s[f])
            want = (n, self.obs_dim) if f in ("states", "next_states") else (n,)
            if arr.shape != want:
                raise ValueError(f"replay state {f!r} has shape {arr.shape}, expected {want}")
            getattr(self, f)[k, :n] = arr
        self.pos[k], self.size[k] = int(s["pos"]), n
