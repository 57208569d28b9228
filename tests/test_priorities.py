"""PER formulas against hand-computed values."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from per_exp.engine.priorities import beta_at, check_priorities, importance_weights, priorities_from_td


def test_priorities_are_abs_td_plus_eps_to_the_alpha():
    p = priorities_from_td(np.array([0.0, -1.0, 2.0]), alpha=0.5, eps=0.0)
    np.testing.assert_allclose(p, [0.0, 1.0, math.sqrt(2.0)])
    p = priorities_from_td(np.array([-3.0, 0.0]), alpha=1.0, eps=1e-4)  # the seed's |delta| + 1e-4
    np.testing.assert_allclose(p, [3.0001, 1e-4])
    assert priorities_from_td(np.array([5.0]), alpha=0.0, eps=0.0)[0] == 1.0  # alpha 0: uniform


def test_beta_anneals_linearly_to_one_at_the_horizon_and_stays():
    assert beta_at(0, 0.4, 1000) == 0.4
    assert beta_at(500, 0.4, 1000) == pytest.approx(0.7)
    assert beta_at(1000, 0.4, 1000) == 1.0
    assert beta_at(10**6, 0.4, 1000) == 1.0
    assert beta_at(-5, 0.4, 1000) == 0.4
    betas = [beta_at(u, 0.5, 100) for u in range(0, 300)]
    assert all(b1 <= b2 for b1, b2 in pairwise(betas)) and betas[100:] == [1.0] * 200


def test_is_weights_batch_normaliser():
    probs = np.array([0.5, 0.25, 0.125])
    w = importance_weights(probs, size=4, beta=1.0)
    # (4 P)^-1 = [0.5, 1, 2]; divided by the batch max 2
    np.testing.assert_allclose(w, [0.25, 0.5, 1.0])
    assert w.dtype == np.float32
    np.testing.assert_allclose(importance_weights(probs, 4, beta=0.0), [1, 1, 1])


def test_is_weights_buffer_normaliser_uses_the_smallest_probability_in_the_buffer():
    probs = np.array([0.5, 0.25])
    w = importance_weights(probs, size=4, beta=0.5, min_prob=0.0625)
    # (4 P)^-0.5 = [1/sqrt2, 1]; buffer max (4 * 0.0625)^-0.5 = 2
    np.testing.assert_allclose(w, [1 / (2 * math.sqrt(2)), 0.5], rtol=1e-6)
    assert w.max() < 1.0  # not rescaled to the batch


@pytest.mark.parametrize("bad, i", [(np.nan, 1), (np.inf, 2), (-0.5, 0)])
def test_check_priorities_names_the_first_bad_index_and_slot(bad, i):
    v = np.array([1.0, 2.0, 3.0])
    v[i] = bad
    with pytest.raises(ValueError, match=rf"index {i} \(slot {10 + i}\)"):
        check_priorities(v, slots=np.array([10, 11, 12]))
    check_priorities(np.array([0.0, 1.0]))  # zeros are allowed
