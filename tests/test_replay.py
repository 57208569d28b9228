"""Transition storage with a slot axis (preallocated rings, wrap-around, one slot's state) and the Replay's policies."""

from __future__ import annotations

import numpy as np
import pytest

from per_exp.engine.replay import Replay
from per_exp.engine.storage import Storage
from tests.support.cli import compose


def _fill(st: Storage, k: int, n: int) -> list[int]:
    """n transitions into slot k alone (the other slots masked out); the ring index of each."""
    mask = np.zeros(st.num_slots, bool)
    mask[k] = True
    written = np.zeros(st.num_slots, np.int64)
    out = []
    for i in range(n):
        obs = np.full((st.num_slots, st.obs_dim), i, np.float32)
        st.add(
            obs,
            np.full(st.num_slots, i % 2),
            np.full(st.num_slots, float(i), np.float32),
            obs + 0.5,
            np.full(st.num_slots, float(i % 5 == 4), np.float32),
            mask,
            written,
        )
        out.append(int(written[k]))
        assert (written[~mask] == -1).all()
    return out


def test_storage_is_preallocated_arrays():
    st = Storage(2, 8, 3)
    arrays = (st.states, st.next_states, st.actions, st.rewards, st.dones)
    assert [a.shape[:2] for a in arrays] == [(2, 8)] * 5
    ids = [id(a) for a in arrays]
    _fill(st, 1, 20)
    assert [id(a) for a in (st.states, st.next_states, st.actions, st.rewards, st.dones)] == ids


def test_ring_wraps_and_overwrites_the_oldest_slot_of_its_own_row_only():
    st = Storage(3, 4, 3)
    assert _fill(st, 1, 6) == [0, 1, 2, 3, 0, 1]
    assert st.size.tolist() == [0, 4, 0] and st.pos.tolist() == [0, 2, 0]
    # slots 0 and 1 now hold transitions 4 and 5; 2 and 3 still 2 and 3
    np.testing.assert_array_equal(st.rewards[1], [4.0, 5.0, 2.0, 3.0])
    np.testing.assert_array_equal(st.next_states[1, :, 0], [4.5, 5.5, 2.5, 3.5])
    assert not st.rewards[0].any() and not st.rewards[2].any()


def test_capacity_one_keeps_only_the_latest():
    st = Storage(1, 1, 3)
    assert _fill(st, 0, 3) == [0, 0, 0]
    assert st.size[0] == 1 and st.rewards[0, 0] == 2.0


def test_one_slots_state_round_trips_into_another_slot():
    a = Storage(2, 5, 3)
    _fill(a, 0, 7)
    b = Storage(4, 5, 3)
    b.load_state_dict(3, a.state_dict(0))
    assert (b.pos[3], b.size[3]) == (a.pos[0], a.size[0])
    np.testing.assert_array_equal(b.states[3], a.states[0])
    assert _fill(b, 3, 1) == _fill(a, 0, 1)


def test_bad_capacity_and_state_of_another_shape_are_refused():
    with pytest.raises(ValueError, match="capacity"):
        Storage(1, 0, 3)
    a = Storage(1, 5, 3)
    _fill(a, 0, 5)
    with pytest.raises(ValueError, match="capacity 5"):
        Storage(1, 6, 3).load_state_dict(0, a.state_dict(0))
    with pytest.raises(ValueError, match=r"'states' has shape \(5, 3\), expected \(5, 4\)"):
        Storage(1, 5, 4).load_state_dict(0, a.state_dict(0))


def test_replay_warm_up_draws_uniformly_per_slot_then_by_priority():
    cfg = compose(["sampler=sumtree", "warmup_episodes=2", "capacity=16", "tracking.enabled=false"])
    r = Replay(cfg, 2, 4)
    for k in range(2):
        r.start(k, cfg)
    mask = np.ones(2, bool)
    for i in range(16):
        obs = np.full((2, 4), i, np.float32)
        r.add(obs, np.zeros(2, np.int64), np.zeros(2, np.float32), obs, np.zeros(2, np.float32), mask)
    # slot 0 is still warming up, slot 1 is past it: each draws from its own sampler
    r.sampler.update_slot(0, np.arange(16), np.r_[np.zeros(15), 1e6])
    r.sampler.update_slot(1, np.arange(16), np.r_[np.zeros(15), 1e6])
    idx, w = np.zeros((2, 64), np.int64), np.zeros((2, 64), np.float32)
    r.sample(mask, np.array([1, 2]), np.zeros(2, np.int64), idx, w)
    assert len(set(idx[0].tolist())) > 8 and (w[0] == 1).all()  # uniform
    assert (idx[1] == 15).mean() > 0.95  # by priority: nearly all on the one large TD error


def test_replay_refresh_policies():
    sampled = Replay(compose(["sampler=sumtree", "tracking.enabled=false"]), 1, 4)
    full = Replay(compose(["sampler=sumtree", "sampler.refresh=full_episode", "tracking.enabled=false"]), 1, 4)
    uniform = Replay(compose(["sampler=uniform", "tracking.enabled=false"]), 1, 4)
    assert (sampled.refresh_sampled, sampled.refresh_full) == (True, False)
    assert (full.refresh_sampled, full.refresh_full) == (False, True)
    assert (uniform.refresh_sampled, uniform.refresh_full, uniform.warmup) == (False, False, None)
