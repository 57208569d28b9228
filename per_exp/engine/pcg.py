"""NumPy's PCG64 streams as rows of an array, drawn inside numba kernels: one stream per slot.

Why: every slot draws from its own generators at every step (exploration,
replay sampling). A ``numpy.random.Generator`` per slot means a Python call
per slot per draw, which at K = 32 costs more than the update. A row of
``STATE_WORDS`` uint64 holds exactly what ``PCG64.state`` holds (128-bit
state and increment, the buffered 32-bit half), and the functions below
are NumPy's own algorithms on it, so a slot's draws are bit for bit those
of ``np.random.default_rng(seed_sequence)`` (tests/test_engine_pcg.py):

- ``next_double``: ``Generator.random()``
- ``bounded``: ``Generator.integers(0, n)`` (Lemire's method on 32-bit draws)
- ``choice``: ``Generator.choice(n, size, replace=False)`` (Floyd's algorithm then a shuffle, or
  NumPy's tail shuffle for a large sample of a population over 10,000)

A stream moves between a row and a ``bit_generator.state`` dict with
``to_state``/``from_state``: that dict is what checkpoints hold, so a
checkpoint does not depend on this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numba import njit

STATE_WORDS = 6  # state_hi, state_lo, inc_hi, inc_lo, has_uint32, uinteger
_MULT_HI = np.uint64(0x2360ED051FC65DA4)
_MULT_LO = np.uint64(0x4385DF649FCCF645)
_M32 = np.uint64(0xFFFFFFFF)
_U1 = np.uint64(1)
_U0 = np.uint64(0)
_MASK64 = (1 << 64) - 1


@njit(cache=True, nogil=True, inline="always")
def _mulhi(a, b):  # pragma: no cover - compiled
    """High 64 bits of the 128-bit product a * b (uint64)."""
    a_lo = a & _M32
    a_hi = a >> np.uint64(32)
    b_lo = b & _M32
    b_hi = b >> np.uint64(32)
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    hi_hi = a_hi * b_hi
    cross = (lo_lo >> np.uint64(32)) + (hi_lo & _M32) + lo_hi
    return hi_hi + (hi_lo >> np.uint64(32)) + (cross >> np.uint64(32))


@njit(cache=True, nogil=True)
def next_uint64(s):  # pragma: no cover - compiled
    """PCG64 (XSL-RR 128/64): advance the LCG, then output from the new state. s is one stream row."""
    hi = s[0]
    lo = s[1]
    new_lo = lo * _MULT_LO
    new_hi = _mulhi(lo, _MULT_LO) + lo * _MULT_HI + hi * _MULT_LO
    inc_lo = s[3]
    sum_lo = new_lo + inc_lo
    carry = _U1 if sum_lo < new_lo else _U0
    new_hi = new_hi + s[2] + carry
    s[0] = new_hi
    s[1] = sum_lo
    value = new_hi ^ sum_lo
    rot = new_hi >> np.uint64(58)
    return (value >> rot) | (value << ((np.uint64(64) - rot) & np.uint64(63)))


@njit(cache=True, nogil=True)
def next_uint32(s):  # pragma: no cover - compiled
    """The low half of a 64-bit draw now, the high half on the next call (NumPy's buffering)."""
    if s[4] != _U0:
        s[4] = _U0
        return s[5]
    v = next_uint64(s)
    s[4] = _U1
    s[5] = v >> np.uint64(32)
    return v & _M32


@njit(cache=True, nogil=True)
def next_double(s):  # pragma: no cover - compiled
    """Uniform in [0, 1) from the top 53 bits: Generator.random()."""
    return np.float64(next_uint64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def bounded(s, high):  # pragma: no cover - compiled
    """Uniform integer in [0, high]: NumPy's random_bounded_uint64 for ranges below 2**32 - 1 (Lemire)."""
    rng = np.uint64(high)
    if rng == _U0:
        return np.int64(0)
    rng_excl = rng + _U1
    m = next_uint32(s) * rng_excl
    leftover = m & _M32
    if leftover < rng_excl:
        threshold = (_M32 - rng) % rng_excl
        while leftover < threshold:
            m = next_uint32(s) * rng_excl
            leftover = m & _M32
    return np.int64(m >> np.uint64(32))


@njit(cache=True, nogil=True)
def choice(s, pop_size, size, out, hash_set):  # pragma: no cover - compiled
    """out[:size] = Generator.choice(pop_size, size, replace=False), consuming the stream as NumPy does.

    Floyd's algorithm with NumPy's open-addressing hash set (``hash_set``:
    uint64 scratch of ``hash_set_size(size)``), then a Fisher-Yates shuffle of
    the result; NumPy's tail shuffle of the whole population instead when it
    would take it (population over 10,000 and a sample over 1/50 of it).
    """
    if pop_size > 10_000 and size > pop_size // 50:
        pool = np.arange(pop_size)
        for i in range(pop_size - 1, max(pop_size - size, 1) - 1, -1):
            j = bounded(s, i)
            tmp = pool[j]
            pool[j] = pool[i]
            pool[i] = tmp
        for i in range(size):
            out[i] = pool[pop_size - size + i]
        return
    set_size = np.uint64(1.2 * size)
    mask = set_size
    # NumPy's _gen_mask: the smallest all-ones mask covering set_size
    mask |= mask >> np.uint64(1)
    mask |= mask >> np.uint64(2)
    mask |= mask >> np.uint64(4)
    mask |= mask >> np.uint64(8)
    mask |= mask >> np.uint64(16)
    mask |= mask >> np.uint64(32)
    empty = np.uint64(0xFFFFFFFFFFFFFFFF)
    for h in range(np.int64(mask) + 1):
        hash_set[h] = empty
    for j in range(pop_size - size, pop_size):
        val = np.uint64(bounded(s, j))
        loc = val & mask
        while hash_set[loc] != empty and hash_set[loc] != val:
            loc = (loc + _U1) & mask
        if hash_set[loc] == empty:
            hash_set[loc] = val
            out[j - pop_size + size] = np.int64(val)
        else:
            loc = np.uint64(j) & mask
            while hash_set[loc] != empty:
                loc = (loc + _U1) & mask
            hash_set[loc] = np.uint64(j)
            out[j - pop_size + size] = j
    for i in range(size - 1, 0, -1):
        j = bounded(s, i)
        tmp = out[j]
        out[j] = out[i]
        out[i] = tmp


def hash_set_size(batch: int) -> int:
    """Length of the scratch ``choice`` needs for draws of ``batch`` items."""
    mask = int(1.2 * batch)
    for shift in (1, 2, 4, 8, 16, 32):
        mask |= mask >> shift
    return mask + 1


def from_state(state: Mapping[str, Any], out: np.ndarray | None = None) -> np.ndarray:
    """A stream row from a ``PCG64().state`` dict (what ``Generator.bit_generator.state`` returns)."""
    if state.get("bit_generator") != "PCG64":
        raise ValueError(f"expected a PCG64 state, got bit_generator={state.get('bit_generator')!r}")
    row = np.empty(STATE_WORDS, dtype=np.uint64) if out is None else out
    st, inc = int(state["state"]["state"]), int(state["state"]["inc"])
    row[0], row[1] = st >> 64, st & _MASK64
    row[2], row[3] = inc >> 64, inc & _MASK64
    row[4], row[5] = int(state["has_uint32"]), int(state["uinteger"])
    return row


def to_state(row: np.ndarray) -> dict[str, Any]:
    """The ``PCG64().state`` dict of a stream row (plain ints: no pickled objects)."""
    return {
        "bit_generator": "PCG64",
        "state": {"state": (int(row[0]) << 64) | int(row[1]), "inc": (int(row[2]) << 64) | int(row[3])},
        "has_uint32": int(row[4]),
        "uinteger": int(row[5]),
    }


def stream(seed: Any) -> np.ndarray:
    """The row of ``np.random.default_rng(seed)``: seed an int or a SeedSequence."""
    return from_state(np.random.PCG64(seed).state)
