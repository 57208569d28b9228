"""Samplers: which stored transitions a batch is drawn from, and with what importance weights.

One registry: every module in this package (names starting with ``_``
excepted) is a sampler, named after the module, exporting its class as
``SAMPLER``. Config validation, the engine and the benchmarks all read
``names()``/``get()``, so adding a sampler is one module here, one YAML in
``conf/sampler/`` and its tests.

A sampler object serves K runs at once ("slots"): every array argument has
the slot axis first and a ``mask`` says which slots take part in a call.
Slot k samples over ring indices ``[0, size[k])`` of its own storage and
draws from its own random stream, so what a run draws never depends on
which runs share the object.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Protocol

import numpy as np

from per_exp.config import SamplerConfig


class Sampler(Protocol):
    name: ClassVar[str]
    capacity: int
    # Keeps priorities: the replay then applies the new-transition priority, the
    # refresh policy and the uniform warm-up; a plain sampler needs none of them.
    prioritized: ClassVar[bool]

    def __init__(self, cfg: SamplerConfig, num_slots: int, capacity: int) -> None: ...

    @classmethod
    def problems(cls, cfg: SamplerConfig) -> list[tuple[str, Any, str]]:
        """(key, value, allowed) for each switch of cfg this sampler cannot honour."""
        ...

    def start(self, k: int, seed: int, cfg: SamplerConfig) -> None:
        """A new run enters slot k: empty, its stream seeded with ``seed``, its scalars (alpha, eps) from cfg."""
        ...

    def add(self, written: np.ndarray, mask: np.ndarray) -> None:
        """Each slot in mask stored one transition at ring index written[k]: give it its first priority."""
        ...

    def sample(
        self, size: np.ndarray, beta: np.ndarray, mask: np.ndarray, out_idx: np.ndarray, out_w: np.ndarray
    ) -> None:
        """Draw out_idx[k] (B ring indices) and their float32 IS weights out_w[k] for each slot in mask."""
        ...

    def update(self, idx: np.ndarray, td: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """New TD errors for the drawn indices of each slot in mask.

        Returns per slot the position of the first bad entry (NaN/inf TD error or an
        index not yet added), or -1; a slot with a bad entry is left untouched.
        """
        ...

    def update_slot(self, k: int, idx: np.ndarray, td: np.ndarray) -> None:
        """New TD errors for any indices of slot k; a ValueError naming the bad entry, nothing written."""
        ...

    def stats(self, k: int) -> dict[str, float]:
        """Slot k's per-episode metrics (and reset its counters)."""
        ...

    def state_dict(self, k: int) -> dict[str, Any]: ...

    def load_state_dict(self, k: int, state: dict[str, Any]) -> None: ...


@cache
def names() -> tuple[str, ...]:
    """Every sampler's name: the modules of this package."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def get(name: str) -> type[Sampler]:
    if name not in names():
        from per_exp.config import ConfigError

        raise ConfigError("sampler.name", name, "one of " + ", ".join(names()))
    cls: type[Sampler] = importlib.import_module(f"{__name__}.{name}").SAMPLER
    return cls


@dataclass
class SampleBatch:
    indices: np.ndarray  # int64 ring indices, shape (B,)
    weights: np.ndarray  # float32 IS weights, shape (B,); ones when IS weights are off


class SingleRun:
    """One run's sampler with a scalar API: the K = 1 case of its slot sampler (tests, benchmarks, tools).

    Defined edge behaviour (tested): sampling before any ``add`` raises a
    ValueError; a batch larger than the stored count draws with replacement
    (prioritized samplers always do); if every stored priority is zero, slots
    are drawn uniformly with weight 1, otherwise a zero-priority slot is never
    drawn; a NaN/inf TD error (or a slot outside what was added) in ``update``
    raises a ValueError naming its index and slot, and nothing is written.
    """

    def __init__(self, cfg: SamplerConfig, capacity: int, seed: int):
        self.cfg = cfg
        self.slots: Any = get(cfg.name)(cfg, 1, capacity)  # the slot sampler itself, for inspection
        self.slots.start(0, seed, cfg)
        self.capacity = self.slots.capacity
        self._mask = np.ones(1, dtype=bool)
        self._written = np.zeros(1, dtype=np.int64)

    @property
    def name(self) -> str:
        return self.slots.name

    @property
    def size(self) -> int:
        """How many ring slots [0, size) were added (prioritized samplers)."""
        return int(self.slots.added[0])

    @property
    def max_priority(self) -> float:
        return float(self.slots.max_priority[0])

    def add(self, slot: int | np.ndarray) -> None:
        slots = np.atleast_1d(np.asarray(slot, dtype=np.int64))
        bad = np.flatnonzero((slots < 0) | (slots >= self.capacity))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"slot at index {i} is {int(slots[i])}; slots must be in [0, {self.capacity})")
        for s in slots:
            self._written[0] = s
            self.slots.add(self._written, self._mask)

    def sample(self, batch_size: int, size: int, beta: float = 1.0) -> SampleBatch:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if size <= 0:
            raise ValueError("cannot sample from an empty replay buffer (size=0): add transitions first")
        if size > self.capacity:
            raise ValueError(f"size={size} exceeds the sampler capacity {self.capacity}")
        if self.slots.prioritized and size != self.size:
            raise ValueError(
                f"sample(size={size}) but {self.size} slots were added to this {self.name} sampler; "
                "call add(slot) for every transition written to the buffer"
            )
        idx = np.empty((1, batch_size), dtype=np.int64)
        w = np.empty((1, batch_size), dtype=np.float32)
        self.slots.sample(np.array([size], dtype=np.int64), np.array([float(beta)]), self._mask, idx, w)
        return SampleBatch(idx[0], w[0])

    def update(self, slots: np.ndarray, td_errors: np.ndarray) -> None:
        self.slots.update_slot(0, slots, td_errors)

    def draw(self, u: np.ndarray, size: int) -> Any:
        """(indices, P(index)) for uniforms u without IS weights (prioritized samplers)."""
        return self.slots.draw(0, u, size)

    def stats(self) -> dict[str, float]:
        return self.slots.stats(0)

    def state_dict(self) -> dict[str, Any]:
        return self.slots.state_dict(0)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.slots.load_state_dict(0, state)


def make_sampler(cfg: SamplerConfig, capacity: int, seed: int) -> SingleRun:
    """One run's sampler, seeded with ``seed`` (a group of one)."""
    return SingleRun(cfg, capacity, seed)
