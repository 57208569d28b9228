"""Samplers: exact distributions, IS weights, priority policy, edge cases, state, and the real trainer."""

from __future__ import annotations

import importlib.util
import math
import pickle
from dataclasses import fields, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from per_exp import codec
from per_exp import contract as C
from per_exp.config import ConfigError, SamplerConfig, validate
from per_exp.engine.priorities import importance_weights, priorities_from_td
from per_exp.engine.rankorder import RankOrder
from per_exp.engine.samplers import make_sampler
from tests.support.cli import ROOT, compose

PRIORITIZED = ["linear_scan", "sumtree", "rank"]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_samplers", ROOT / "scripts" / "bench_samplers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make(name: str, capacity: int = 20, seed: int = 0, **switches):
    return make_sampler(replace(SamplerConfig(name=name), **switches), capacity, seed)


def filled(name: str, td: np.ndarray, capacity: int | None = None, **switches):
    s = make(name, capacity or len(td), **switches)
    s.add(np.arange(len(td)))
    s.update(np.arange(len(td)), td)
    return s


TD = np.array([0.0, 3.0, 0.5, 1.0, 0.0, 7.0, 0.25, 2.0, 0.1, 4.0, 1.5, 0.0, 0.75, 5.0, 0.3, 6.0])


def exact_probs(name: str, td: np.ndarray, cfg: SamplerConfig) -> np.ndarray:
    """P(i) from the paper's formulas, computed independently of the samplers."""
    if name == "rank":
        # rank 1 = largest |delta|; ties: the later slot (written later) first
        order = sorted(range(len(td)), key=lambda i: (-abs(td[i]), -i))
        ranks = np.empty(len(td))
        ranks[order] = np.arange(1, len(td) + 1)
        p = ranks**-cfg.alpha
        return p / p.sum()
    p = priorities_from_td(td, cfg.alpha, cfg.eps)
    p = p / p.sum()
    if cfg.scan_off_by_one:  # slot j is returned for slot j-1's interval; the clamp adds the last slot's own
        shifted = np.zeros_like(p)
        shifted[1:] = p[:-1]
        shifted[-1] += p[-1]
        return shifted
    return p


def counts(s, n_slots: int, batches: int = 400, batch: int = 500) -> np.ndarray:
    c = np.zeros(n_slots)
    for _ in range(batches):
        np.add.at(c, s.sample(batch, n_slots, 1.0).indices, 1)
    return c


CASES = [
    ("sumtree", {"eps": 0.0}),
    ("linear_scan", {"eps": 0.0}),
    ("rank", {"alpha": 0.7}),
    ("linear_scan", {"alpha": 1.0, "eps": 1e-4, "scan_off_by_one": True}),
]


@pytest.mark.parametrize("stratified", [True, False], ids=["stratified", "iid"])
@pytest.mark.parametrize(
    "name, switches", CASES, ids=[c[0] + ("_off_by_one" if "scan_off_by_one" in c[1] else "") for c in CASES]
)
def test_empirical_frequencies_match_the_exact_distribution(name, switches, stratified):
    s = filled(name, TD, seed=1, stratified=stratified, **switches)
    p = exact_probs(name, TD, s.cfg)
    c = counts(s, len(TD))
    assert c[p == 0].sum() == 0  # zero-priority slots (and slot 0 of the seed's scan) are never drawn
    keep = p > 0
    assert chisquare(c[keep], c.sum() * p[keep]).pvalue > 1e-3
    # The test has power: the same counts reject a nearby wrong distribution.
    wrong = p[keep] * (1 + 0.1 * np.sign(np.arange(keep.sum()) % 2 - 0.5))
    assert chisquare(c[keep], c.sum() * wrong / wrong.sum()).pvalue < 1e-6


def test_linear_scan_with_the_seed_switches_returns_the_seed_scans_indices():
    seed_scan = _bench_module().seed_scan_indices
    rng = np.random.default_rng(3)
    td = rng.normal(size=300) * (rng.random(300) < 0.7)  # the seed pushes zeros
    s = filled("linear_scan", td, alpha=1.0, eps=1e-4, stratified=False, scan_off_by_one=True, new_priority="zero")
    memory = td.tolist()
    exact = exact_probs("linear_scan", td, s.cfg)
    for _ in range(50):
        u = rng.random(32)
        ours, probs = s.draw(u, len(td))
        assert sorted(ours.tolist()) == seed_scan(memory, 32, rng, u=u)
        np.testing.assert_allclose(probs, exact[ours], rtol=1e-12)  # what IS weights would use


@pytest.mark.parametrize("weight_norm", ["batch", "buffer"])
@pytest.mark.parametrize("name", PRIORITIZED)
def test_is_weights_equal_the_formula(name, weight_norm):
    s = filled(name, TD, weight_norm=weight_norm, eps=1e-3)
    p = exact_probs(name, TD, s.cfg)
    for beta in (0.4, 0.7, 1.0):
        b = s.sample(8, len(TD), beta)
        expected = importance_weights(p[b.indices], len(TD), beta, p.min() if weight_norm == "buffer" else None)
        np.testing.assert_allclose(b.weights, expected, rtol=1e-5)
        assert b.weights.dtype == np.float32
        if weight_norm == "batch":
            assert b.weights.max() == pytest.approx(1.0)
        else:
            assert b.weights.max() <= 1.0 + 1e-6


@pytest.mark.parametrize("name", PRIORITIZED)
def test_is_weights_off_gives_ones(name):
    s = filled(name, TD, is_weights=False)
    np.testing.assert_array_equal(s.sample(16, len(TD), 0.4).weights, np.ones(16, np.float32))


@pytest.mark.parametrize("name", ["linear_scan", "sumtree"])
def test_new_transitions_get_the_max_priority_or_the_zero_td_one(name):
    def prio(s, slot):
        return (
            float(s.slots.prios[0, slot]) if name == "linear_scan" else float(s.slots.tree(0).get(np.array([slot]))[0])
        )

    s = make(name, 10)
    s.add(0)
    assert prio(s, 0) == 1.0  # paper: p_1 = 1
    s.add(1)
    s.update(np.array([0, 1]), np.array([5.0, 0.1]))
    s.add(2)
    assert prio(s, 2) == pytest.approx((5.0 + 1e-6) ** 0.6) == s.max_priority
    s.update(np.array([0]), np.array([0.0]))  # the max is the largest ever seen, not the current one
    s.add(3)
    assert prio(s, 3) == pytest.approx((5.0 + 1e-6) ** 0.6)
    z = make(name, 10, new_priority="zero", alpha=1.0, eps=1e-4)
    z.add(0)
    assert prio(z, 0) == pytest.approx(1e-4)  # the seed's memorize_td_error(0)


def test_rank_new_transitions_go_to_rank_one_or_last():
    s = make("rank", 10)
    s.add(np.arange(4))
    s.update(np.arange(4), np.array([3.0, 1.0, 2.0, 9.0]))
    s.add(4)
    assert s.slots.order(0).ranks(np.array([4, 3, 0, 2, 1])).tolist() == [1, 2, 3, 4, 5]
    z = make("rank", 10, new_priority="zero")
    z.add(np.arange(3))
    z.update(np.arange(3), np.array([3.0, 1.0, 2.0]))
    z.add(3)
    assert z.slots.order(0).ranks(np.array([3]))[0] == 4


@pytest.mark.parametrize("new_priority", ["max", "zero"])
@pytest.mark.parametrize("name", PRIORITIZED)
def test_ring_wrap_overwrites_the_oldest_slots_priority(name, new_priority):
    s = make(name, 4, new_priority=new_priority)
    for slot in range(4):
        s.add(slot)
    s.update(np.arange(4), np.array([0.5, 8.0, 0.2, 0.3]))
    s.add(0)  # the ring wrapped: slot 0 now holds a new transition
    assert s.size == 4
    if name == "rank":
        assert s.slots.order(0).ranks(np.array([0]))[0] == (1 if new_priority == "max" else 4)
        assert s.slots.order(0).key[0] == (s.max_priority if new_priority == "max" else 0.0)
    else:
        got = s.slots.prios[0, 0] if name == "linear_scan" else s.slots.tree(0).get(np.array([0]))[0]
        assert got == pytest.approx(s.max_priority if new_priority == "max" else (1e-6) ** 0.6)


@pytest.mark.parametrize("name", PRIORITIZED + ["uniform"])
def test_sampling_before_any_data_is_a_clear_error(name):
    with pytest.raises(ValueError, match="empty replay buffer"):
        make(name).sample(4, 0, 0.4)


@pytest.mark.parametrize("name", PRIORITIZED + ["uniform"])
def test_batch_larger_than_the_stored_count_draws_with_replacement(name):
    s = make(name, 20)
    s.add(np.arange(3)) if name != "uniform" else None
    b = s.sample(10, 3, 0.4)
    assert b.indices.shape == (10,) and set(b.indices.tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("name", PRIORITIZED + ["uniform"])
def test_capacity_one(name):
    s = make(name, 1)
    s.add(0)
    s.update(np.array([0]), np.array([2.0]))
    b = s.sample(4, 1, 0.4)
    assert b.indices.tolist() == [0, 0, 0, 0] and b.weights.tolist() == [1.0] * 4
    s.add(0)  # wrap onto itself
    assert s.sample(2, 1, 0.4).indices.tolist() == [0, 0]


@pytest.mark.parametrize("name", ["linear_scan", "sumtree"])
def test_all_zero_priorities_fall_back_to_uniform_with_unit_weights(name):
    s = make(name, 8, eps=0.0, new_priority="zero")
    s.add(np.arange(8))
    c = np.zeros(8)
    for _ in range(200):
        b = s.sample(40, 8, 0.4)
        np.testing.assert_array_equal(b.weights, np.ones(40, np.float32))
        np.add.at(c, b.indices, 1)
    assert chisquare(c).pvalue > 1e-3


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", PRIORITIZED)
def test_bad_td_errors_are_rejected_naming_index_and_slot_and_nothing_changes(name, bad):
    s = filled(name, TD)
    before = pickle.dumps(s.state_dict())
    with pytest.raises(ValueError, match=r"index 2 \(slot 11\)"):
        s.update(np.array([3, 5, 11, 7]), np.array([1.0, 2.0, bad, 3.0]))
    assert pickle.dumps(s.state_dict()) == before
    with pytest.raises(ValueError, match=r"slot at index 1 is 16"):
        s.update(np.array([3, 16]), np.array([1.0, 1.0]))  # never added
    assert pickle.dumps(s.state_dict()) == before


@pytest.mark.parametrize("name", PRIORITIZED)
def test_duplicates_in_one_update_last_write_wins(name):
    s = filled(name, TD)
    s.update(np.array([4, 9, 4, 4]), np.array([100.0, 1.0, 0.01, 50.0]))
    dup = filled(name, TD)
    dup.update(np.array([9, 4]), np.array([1.0, 50.0]))
    np.testing.assert_array_equal(s.sample(64, len(TD), 0.5).indices, dup.sample(64, len(TD), 0.5).indices)
    if name != "rank":
        expected = (50.0 + 1e-6) ** 0.6
        got = s.slots.prios[0, 4] if name == "linear_scan" else s.slots.tree(0).get(np.array([4]))[0]
        assert got == pytest.approx(expected)
    else:
        assert s.slots.order(0).key[4] == 50.0


@pytest.mark.parametrize("name", PRIORITIZED + ["uniform"])
def test_restored_state_draws_the_identical_next_batch(name):
    a = make(name, 40, seed=7, weight_norm="buffer")
    a.add(np.arange(30)) if name != "uniform" else None
    a.update(np.arange(30), np.linspace(-3, 3, 30))
    a.sample(8, 30, 0.5)
    state = codec.loads(codec.dumps(a.state_dict()))  # through the checkpoint format
    b = make(name, 40, seed=99, weight_norm="buffer")
    b.load_state_dict(state)
    for _ in range(3):
        x, y = a.sample(8, 30, 0.6), b.sample(8, 30, 0.6)
        np.testing.assert_array_equal(x.indices, y.indices)
        np.testing.assert_array_equal(x.weights, y.weights)
        td = np.cos(x.indices.astype(float))
        a.update(x.indices, td)
        b.update(y.indices, td)


@pytest.mark.parametrize("name", PRIORITIZED)
def test_size_must_match_what_was_added(name):
    s = make(name, 20)
    s.add(np.arange(5))
    with pytest.raises(ValueError, match="sample\\(size=7\\) but 5 slots were added"):
        s.sample(4, 7, 0.4)


@pytest.mark.parametrize("name", PRIORITIZED)
def test_stats_report_weights_priority_and_time_then_reset(name):
    s = filled(name, TD)
    s.stats()
    for _ in range(5):
        b = s.sample(8, len(TD), 0.5)
        s.update(b.indices, np.full(8, 9.0))
    m = s.stats()
    assert m[C.SAMPLER_SAMPLE_SECONDS] > 0 and m[C.SAMPLER_UPDATE_SECONDS] > 0
    assert 0 < m[C.SAMPLER_IS_WEIGHT_MEAN] <= m[C.SAMPLER_IS_WEIGHT_MAX] <= 1.0 + 1e-6
    # the max priority, under the key that names its unit (rank: |delta|)
    key = C.SAMPLER_RANK_KEY_MAX if name == "rank" else C.SAMPLER_PRIORITY_MAX
    assert m[key] == s.max_priority
    m2 = s.stats()
    assert m2[C.SAMPLER_SAMPLE_SECONDS] == 0.0 and C.SAMPLER_IS_WEIGHT_MEAN not in m2


def test_bench_runs_and_writes_the_records(tmp_path):
    """A smoke run of the benchmark at a tiny size (the speed claims live in its output, not here)."""
    out = tmp_path / "bench.json"
    assert _bench_module().main(["--quick", "--sizes", "512:8", "--json", str(out)]) == 0
    import json

    rows = json.loads(out.read_text())
    assert {r["sampler"] for r in rows} >= {"uniform", "linear_scan", "sumtree", "rank", "seed_scan"}
    for r in rows:
        assert set(r) >= {"sampler", "N", "B", "us_per_op", "ratio_to_cpprb"} and (r["N"], r["B"]) == (512, 8)
        assert r["us_per_op"] > 0


def test_unknown_sampler_name_names_key_value_and_choices():
    with pytest.raises(ConfigError, match=r"sampler\.name='heap'; allowed: one of") as e:
        make("heap")
    assert all(n in str(e.value) for n in ("uniform", "linear_scan", "sumtree", "rank"))


def test_rank_cdf_is_prefix_independent_of_capacity():
    small, big = RankOrder(10, 0.7), RankOrder(1000, 0.7)
    np.testing.assert_allclose(small.cdf, big.cdf[:10])
    assert small.cdf[-1] == pytest.approx(sum(r**-0.7 for r in range(1, 11)))


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 14), st.sampled_from([0.0, 1.0, 2.0, 0.5, 3.25])), max_size=20), max_size=8
    )
)
def test_rank_order_is_key_descending_newest_first_among_ties(batches):
    r = RankOrder(15, 0.7)
    model: dict[int, tuple[float, int]] = {}
    clock = 0
    for batch in batches:
        if not batch:
            continue
        r.set(np.array([s for s, _ in batch]), np.array([k for _, k in batch]))
        for s, k in batch:
            clock += 1
            model[s] = (k, clock)
        expected = sorted(model, key=lambda s: (-model[s][0], -model[s][1]))
        assert r.order[: r.n].tolist() == expected
        np.testing.assert_array_equal(r.skey[: r.n], [model[s][0] for s in expected])
        assert r.ranks(np.array(expected)).tolist() == list(range(1, len(expected) + 1))


def test_scan_off_by_one_is_refused_outside_linear_scan():
    cfg = compose(["sampler=sumtree", "sampler.scan_off_by_one=true"])
    with pytest.raises(ConfigError, match=r"sampler\.scan_off_by_one"):
        validate(cfg)


def test_every_sampler_switch_is_a_logged_param():
    from per_exp.config import science_params
    from tests.support.cli import compose_resolved

    params = science_params(compose_resolved([]))  # exactly the params a run logs
    for f in fields(SamplerConfig):
        assert f"sampler.{f.name}" in params


def test_rank_preset_has_the_papers_rank_hyperparameters():
    s = compose(["sampler=rank"]).sampler
    assert (s.name, s.alpha, s.beta0) == ("rank", 0.7, 0.5)


# -- the real trainer with every sampler and every switch --------------------


TRAINER_CASES = [
    ["sampler=uniform"],
    ["sampler=linear_scan"],
    ["sampler=sumtree"],
    ["sampler=rank"],
    ["sampler=sumtree", "sampler.is_weights=false"],
    ["sampler=sumtree", "sampler.weight_norm=buffer"],
    ["sampler=sumtree", "sampler.stratified=false"],
    ["sampler=sumtree", "sampler.new_priority=zero", "sampler.eps=0"],
    ["sampler=sumtree", "sampler.refresh=full_episode"],
    ["sampler=sumtree", "sampler.alpha=0", "sampler.beta0=1", "sampler.beta_horizon=1"],
    ["sampler=sumtree", "warmup_episodes=2"],
    ["sampler=rank", "sampler.weight_norm=buffer", "sampler.stratified=false", "sampler.refresh=full_episode"],
    ["sampler=rank", "sampler.new_priority=zero"],
    ["sampler=linear_scan", "sampler.scan_off_by_one=true", "sampler.weight_norm=buffer"],
    ["experiment=seed_notebook", "warmup_episodes=2"],
]


@pytest.mark.parametrize("overrides", TRAINER_CASES, ids=[" ".join(o) for o in TRAINER_CASES])
def test_trainer_runs_with_every_sampler_and_switch(overrides):
    from per_exp.engine.trainer import Engine, RunSpec

    cfg = compose(
        overrides + ["max_episodes=6", "capacity=48", "batch_size=8", "learning_starts=8", "tracking.enabled=false"]
    )
    validate(cfg)
    episodes: list[dict] = []
    eng = Engine([RunSpec(cfg, on_episode=lambda ep, m: episodes.append(m))])
    summary = eng.run()[0].summary
    assert summary.episodes == 6 and summary.updates > 0
    assert summary.total_env_steps > cfg.capacity  # the ring wrapped
    last = episodes[-1]
    assert math.isfinite(last[C.TRAIN_LOSS])
    assert last[C.SAMPLER_SAMPLE_SECONDS] >= 0 and C.SAMPLER_UPDATE_SECONDS in last
    if cfg.sampler.name != "uniform":
        assert eng.replay.sampler.added[0] == cfg.capacity
        key = C.SAMPLER_RANK_KEY_MAX if cfg.sampler.name == "rank" else C.SAMPLER_PRIORITY_MAX
        assert math.isfinite(last[key]) and last[key] > 0
        w_mean, w_max = last[C.SAMPLER_IS_WEIGHT_MEAN], last[C.SAMPLER_IS_WEIGHT_MAX]
        assert 0 < w_mean <= w_max <= 1.0 + 1e-6
        if not cfg.sampler.is_weights:
            assert w_mean == w_max == 1.0
