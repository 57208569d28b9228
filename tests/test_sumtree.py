"""The sum tree: invariants under batched updates, search at the edges, validation, fused kernels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from per_exp.engine.priorities import importance_weights, priorities_from_td
from per_exp.engine.sumtree import SumTree


def _check_invariants(t: SumTree, model: dict[int, float]) -> None:
    n_leaves = t.n_leaves
    internal = np.arange(1, n_leaves)
    # Recomputed from children (never patched by deltas): equal bit for bit.
    np.testing.assert_array_equal(t.tree[internal], t.tree[2 * internal] + t.tree[2 * internal + 1])
    leaves = np.zeros(n_leaves)
    for k, v in model.items():
        leaves[k] = v
    np.testing.assert_array_equal(t.tree[n_leaves:], leaves)
    assert t.total == pytest.approx(leaves.sum(), rel=1e-12, abs=1e-300)
    if t.track_min:
        np.testing.assert_array_equal(t.mins[internal], np.minimum(t.mins[2 * internal], t.mins[2 * internal + 1]))
        positive = leaves[leaves > 0]
        assert t.min_positive == (positive.min() if positive.size else np.inf)


prio = st.one_of(st.just(0.0), st.floats(min_value=1e-12, max_value=1e6, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 70),
    batches=st.lists(st.lists(st.tuples(st.integers(0, 69), prio), min_size=0, max_size=90), max_size=6),
)
def test_batched_updates_keep_every_node_the_sum_of_its_children(capacity, batches):
    t = SumTree(capacity, track_min=True)
    model: dict[int, float] = {}
    for batch in batches:
        batch = [(k % capacity, v) for k, v in batch]
        t.update(np.array([k for k, _ in batch], dtype=np.int64), np.array([v for _, v in batch]))
        for k, v in batch:  # duplicates: the last write wins
            model[k] = v
        _check_invariants(t, model)


def test_duplicates_in_one_update_count_once_last_write_wins():
    t = SumTree(8)
    t.update(np.array([3, 3, 5, 3]), np.array([1.0, 2.0, 4.0, 7.0]))
    assert t.get(np.array([3, 5])).tolist() == [7.0, 4.0]
    assert t.total == 11.0


def test_bulk_update_rebuilds_the_same_tree_as_path_updates():
    rng = np.random.default_rng(0)
    vals = rng.random(1000)
    bulk, one_by_one = SumTree(1000, track_min=True), SumTree(1000, track_min=True)
    bulk.update(np.arange(1000), vals)  # takes the rebuild branch
    for k in range(1000):
        one_by_one.update(np.array([k]), vals[k : k + 1])  # takes the path branch
    np.testing.assert_array_equal(bulk.tree, one_by_one.tree)
    np.testing.assert_array_equal(bulk.mins, one_by_one.mins)


def test_find_maps_each_prefix_interval_to_its_leaf():
    p = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 3.0])
    t = SumTree(len(p))
    t.update(np.arange(len(p)), p)
    c = np.cumsum(p)
    lo = np.concatenate([[0.0], c[:-1]])
    for k in np.flatnonzero(p > 0):
        assert t.find(np.array([lo[k], np.nextafter(c[k], 0), (lo[k] + c[k]) / 2])).tolist() == [k, k, k]


@pytest.mark.parametrize("capacity", [3, 5, 8, 13, 1000])
def test_values_at_or_past_the_total_never_land_on_zero_priority_leaves(capacity):
    # Zeros to the right of the last positive leaf (a zero-priority right
    # subtree): a naive descent goes right on v >= left and ends on a zero leaf.
    p = np.zeros(capacity)
    p[: max(1, capacity // 2)] = 0.1  # 0.1 does not add up exactly in binary
    t = SumTree(capacity)
    t.update(np.arange(capacity), p)
    last = int(np.flatnonzero(p)[-1])
    assert t.find(np.array([t.total, np.nextafter(t.total, np.inf), t.total * 1.5])).tolist() == [last] * 3


@settings(max_examples=100, deadline=None)
@given(
    p=st.lists(st.one_of(st.just(0.0), st.floats(1e-9, 1e3)), min_size=1, max_size=40).filter(lambda x: sum(x) > 0),
    u=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20),
)
def test_every_found_leaf_has_positive_priority(p, u):
    t = SumTree(len(p))
    t.update(np.arange(len(p)), np.array(p))
    found = t.find(np.array(u) * t.total)
    assert (t.get(found) > 0).all()
    assert ((found >= 0) & (found < len(p))).all()


def test_capacity_one_is_its_own_root():
    t = SumTree(1, track_min=True)
    assert (t.n_leaves, t.depth) == (1, 0)
    t.update(np.array([0]), np.array([2.5]))
    assert t.total == 2.5 and t.min_positive == 2.5
    assert t.find(np.array([0.0, 2.4, 2.5])).tolist() == [0, 0, 0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_bad_priority_names_its_index_and_leaves_the_tree_unchanged(bad):
    t = SumTree(10, track_min=True)
    t.update(np.arange(10), np.arange(1.0, 11.0))
    before = t.state_dict()
    with pytest.raises(ValueError, match=r"index 2 \(leaf 7\)"):
        t.update(np.array([1, 4, 7, 8]), np.array([5.0, 5.0, bad, 5.0]))
    np.testing.assert_array_equal(t.tree, before["tree"])
    np.testing.assert_array_equal(t.mins, before["mins"])


@pytest.mark.parametrize("leaf", [-1, 10, 99])
def test_out_of_range_leaf_is_rejected_before_anything_is_written(leaf):
    t = SumTree(10)
    before = t.tree.copy()
    with pytest.raises(ValueError, match=rf"index 1 is {leaf}; leaves must be in \[0, 10\)"):
        t.update(np.array([0, leaf]), np.array([1.0, 1.0]))
    np.testing.assert_array_equal(t.tree, before)


def test_update_from_td_equals_the_reference_formula_and_rejects_nan():
    rng = np.random.default_rng(1)
    td = rng.normal(size=50) * 3
    fused, ref = SumTree(50, track_min=True), SumTree(50, track_min=True)
    p_max = fused.update_from_td(np.arange(50), td, 0.6, 1e-6, 50)
    prios = priorities_from_td(td, 0.6, 1e-6)
    ref.update(np.arange(50), prios)
    np.testing.assert_allclose(fused.tree, ref.tree, rtol=1e-14)
    assert p_max == pytest.approx(prios.max(), rel=1e-14)
    before = fused.tree.copy()
    with pytest.raises(ValueError, match=r"TD error at index 1 \(slot 9\) is nan"):
        fused.update_from_td(np.array([3, 9]), np.array([0.5, np.nan]), 0.6, 1e-6, 50)
    with pytest.raises(ValueError, match=r"slot at index 0 is 40; slots must be in \[0, 40\)"):
        fused.update_from_td(np.array([40]), np.array([0.5]), 0.6, 1e-6, 40)
    np.testing.assert_array_equal(fused.tree, before)


@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("stratified", [True, False])
def test_fused_sampling_equals_draw_plus_reference_weights(mode, stratified):
    rng = np.random.default_rng(2)
    n = 300
    p = rng.random(n) ** 3
    p[::7] = 0.0
    t = SumTree(n, track_min=True)
    t.update(np.arange(n), p)
    u = rng.random(64)
    idx_ref, prob = t.draw(u, stratified)
    idx, w, w_sum, w_max = t.sample_weighted(u, stratified, 0.7, mode)
    assert w.dtype == np.float32
    np.testing.assert_array_equal(idx, idx_ref)
    if mode == 0:
        expected = np.ones(64)
    else:
        min_prob = p[p > 0].min() / t.total if mode == 2 else None
        expected = importance_weights(prob, n, 0.7, min_prob)
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert w_sum == pytest.approx(w.sum()) and w_max == pytest.approx(w.max())


def test_drawing_from_an_empty_tree_is_a_clear_error():
    t = SumTree(4)
    with pytest.raises(ValueError, match="total priority is 0"):
        t.draw(np.array([0.5]), True)
    with pytest.raises(ValueError, match="total priority is 0"):
        t.sample_weighted(np.array([0.5]), True, 0.5, 1)


def test_state_round_trip_and_shape_check():
    t = SumTree(20, track_min=True)
    t.update(np.arange(20), np.linspace(0, 1, 20))
    u = SumTree(20, track_min=True)
    u.load_state_dict(t.state_dict())
    np.testing.assert_array_equal(u.tree, t.tree)
    with pytest.raises(ValueError, match="shape"):
        SumTree(40, track_min=True).load_state_dict(t.state_dict())
