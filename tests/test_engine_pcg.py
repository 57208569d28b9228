"""Per-slot PCG64 streams draw exactly what NumPy's Generator draws from the same state."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from per_exp.engine import pcg


@njit(cache=True)
def _doubles(s, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = pcg.next_double(s)
    return out


@njit(cache=True)
def _ints(s, high, n):
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = pcg.bounded(s, high)
    return out


@njit(cache=True)
def _mixed(s, n):
    """The agent's pattern: a uniform, and an action index only when exploring."""
    out = np.empty(n)
    for i in range(n):
        u = pcg.next_double(s)
        out[i] = u if u > 0.5 else -1.0 - pcg.bounded(s, 1)
    return out


@pytest.mark.parametrize("seed", [0, 3, 12345])
def test_doubles_equal_generator_random(seed):
    ss = np.random.SeedSequence(seed).spawn(3)[1]
    s = pcg.stream(ss)
    np.testing.assert_array_equal(_doubles(s, 1000), np.random.default_rng(ss).random(1000))


@pytest.mark.parametrize("high", [1, 2, 6, 31, 9999, 2**31 + 5])
def test_bounded_equals_generator_integers(high):
    rng = np.random.default_rng(7)
    s = pcg.from_state(rng.bit_generator.state)
    expected = [rng.integers(high + 1) for _ in range(500)]  # scalar draws, as the agent makes them
    np.testing.assert_array_equal(_ints(s, high, 500), expected)
    assert pcg.to_state(s) == rng.bit_generator.state  # the 32-bit buffer included


def test_interleaved_draws_keep_the_same_stream():
    rng = np.random.default_rng(11)
    s = pcg.from_state(rng.bit_generator.state)
    expected = []
    for _ in range(2000):
        u = rng.random()
        expected.append(u if u > 0.5 else -1.0 - rng.integers(2))
    np.testing.assert_array_equal(_mixed(s, 2000), expected)
    assert pcg.to_state(s) == rng.bit_generator.state


@pytest.mark.parametrize(
    "pop, size",
    [
        (32, 32),
        (33, 32),
        (100, 32),
        (10_000, 32),
        (10_000, 64),
        (50, 7),
        (1, 1),
        (20_000, 32),
        (20_000, 401),
        (12_000, 11_999),
    ],
)
def test_choice_equals_generator_choice_without_replacement(pop, size):
    rng = np.random.default_rng(5)
    s = pcg.from_state(rng.bit_generator.state)
    out = np.empty(size, np.int64)
    scratch = np.empty(pcg.hash_set_size(size), np.uint64)
    for _ in range(50):
        pcg.choice(s, pop, size, out, scratch)
        np.testing.assert_array_equal(out, rng.choice(pop, size, replace=False))
    assert pcg.to_state(s) == rng.bit_generator.state


def test_state_round_trip_and_refusal():
    rng = np.random.default_rng(np.random.SeedSequence(9))
    rng.integers(5)  # leaves half a 64-bit draw buffered
    state = rng.bit_generator.state
    assert state["has_uint32"] == 1
    assert pcg.to_state(pcg.from_state(state)) == state
    with pytest.raises(ValueError, match="expected a PCG64 state"):
        pcg.from_state(np.random.MT19937(0).state)


@njit(cache=True)
def _with_replacement(s, pop, n):
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = pcg.bounded(s, pop - 1)
    return out


def test_draws_with_replacement_equal_generator_choice_with_replacement():
    rng = np.random.default_rng(2)
    s = pcg.from_state(rng.bit_generator.state)
    for pop in (1, 5, 31, 10_000):
        np.testing.assert_array_equal(_with_replacement(s, pop, 64), rng.choice(pop, 64, replace=True))
    assert pcg.to_state(s) == rng.bit_generator.state
