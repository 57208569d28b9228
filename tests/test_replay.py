"""The ring buffer: preallocated arrays, wrap-around, batch gathering, state."""

from __future__ import annotations

import numpy as np
import pytest

from per_exp.engine.replay import ReplayBuffer


def _fill(buf: ReplayBuffer, n: int) -> list[int]:
    return [buf.add(np.full(3, i, np.float32), i % 2, float(i), np.full(3, i + 0.5), i % 5 == 4) for i in range(n)]


def test_storage_is_preallocated_arrays():
    buf = ReplayBuffer(8, 3)
    arrays = (buf.states, buf.next_states, buf.actions, buf.rewards, buf.dones)
    assert [a.shape[0] for a in arrays] == [8] * 5
    ids = [id(a) for a in arrays]
    _fill(buf, 20)
    assert [id(a) for a in (buf.states, buf.next_states, buf.actions, buf.rewards, buf.dones)] == ids


def test_ring_wraps_and_overwrites_the_oldest_slot():
    buf = ReplayBuffer(4, 3)
    slots = _fill(buf, 6)
    assert slots == [0, 1, 2, 3, 0, 1]
    assert len(buf) == 4 and buf.pos == 2
    # slots 0 and 1 now hold transitions 4 and 5; 2 and 3 still 2 and 3
    np.testing.assert_array_equal(buf.rewards, [4.0, 5.0, 2.0, 3.0])


def test_gather_pulls_a_batch_by_index_with_duplicates():
    buf = ReplayBuffer(10, 3)
    _fill(buf, 10)
    b = buf.gather(np.array([7, 2, 7]))
    np.testing.assert_array_equal(b.rewards, [7.0, 2.0, 7.0])
    np.testing.assert_array_equal(b.states[:, 0], [7.0, 2.0, 7.0])
    np.testing.assert_array_equal(b.next_states[:, 0], [7.5, 2.5, 7.5])
    np.testing.assert_array_equal(b.actions, [1, 0, 1])
    np.testing.assert_array_equal(b.dones, [0.0, 0.0, 0.0])
    assert b.states.dtype == np.float32 and b.actions.dtype == np.int64
    assert buf.all().rewards.shape == (10,)


def test_capacity_one_keeps_only_the_latest():
    buf = ReplayBuffer(1, 3)
    assert _fill(buf, 3) == [0, 0, 0]
    assert len(buf) == 1 and buf.rewards[0] == 2.0


def test_state_round_trip():
    a = ReplayBuffer(5, 3)
    _fill(a, 7)
    b = ReplayBuffer(5, 3)
    b.load_state_dict(a.state_dict())
    assert (b.pos, b.size) == (a.pos, a.size)
    np.testing.assert_array_equal(b.all().states, a.all().states)
    assert b.add(np.zeros(3), 0, 0.0, np.zeros(3), False) == a.add(np.zeros(3), 0, 0.0, np.zeros(3), False)


def test_bad_capacity_is_rejected():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, 3)


def test_state_of_another_shape_is_refused():
    a = ReplayBuffer(5, 3)
    with pytest.raises(ValueError, match="'states' has shape \\(5, 3\\), this buffer holds \\(6, 3\\)"):
        ReplayBuffer(6, 3).load_state_dict(a.state_dict())
