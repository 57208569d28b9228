"""analysis.stats and analysis.axes against values computed by hand."""

import numpy as np
import pandas as pd
import pytest

from analysis import stats
from analysis.axes import find_axes, group_labels, group_order

# ---------------------------------------------------------------- aggregates


def test_iqm_of_known_vector():
    # 8 values: drop the 2 lowest and 2 highest, mean of 3, 4, 5, 6
    assert stats.iqm([7, 1, 100, 3, 4, 5, 6, 2]) == pytest.approx(4.5)
    # 4 values: drop 1 each side
    assert stats.iqm([0, 10, 20, 1000]) == pytest.approx(15.0)
    # the outlier does not move it; the mean would be 16.0
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)


def test_bootstrap_ci_contains_truth_at_fixed_seed():
    rng = np.random.default_rng(123)
    x = rng.normal(10.0, 2.0, size=200)
    table = stats.aggregate_table({"g": x}, reps=2000, seed=0)
    for agg in ("IQM", "mean", "median"):
        r = table[table["aggregate"] == agg].iloc[0]
        assert r["lo"] < 10.0 < r["hi"], agg  # symmetric: IQM = mean = median = 10
        assert r["lo"] <= r["point"] <= r["hi"]
        assert r["hi"] - r["lo"] < 1.5  # about 4 * 2 / sqrt(200) = 0.57 for the mean


def test_bootstrap_ci_coverage_is_near_nominal():
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(60):
        x = rng.exponential(1.0, size=30)  # skewed; true mean 1
        lo, hi = stats.bootstrap_ci((x,), lambda a, axis=-1: np.mean(a, axis=axis), reps=500, seed=1)
        hits += lo <= 1.0 <= hi
    assert 0.8 <= hits / 60 <= 1.0


def test_single_run_group_has_no_ci_and_constant_group_zero_width():
    t = stats.aggregate_table({"one": [5.0], "flat": [3.0] * 5}, reps=200)
    one = t[t["group"] == "one"]
    assert one["lo"].isna().all() and one["hi"].isna().all() and (one["interval"] == stats.NO_INTERVAL).all()
    assert (one["point"] == 5.0).all()
    flat = t[t["group"] == "flat"]
    assert (flat["lo"] == 3.0).all() and (flat["hi"] == 3.0).all() and (flat["interval"] == stats.CI).all()


def test_with_three_seeds_the_bootstrap_95_interval_is_the_range_so_the_table_says_range():
    """Why fewer than 5 seeds get no CI: the percentile bootstrap returns the min-max range."""
    x = np.array([80.0, 97.0, 120.0])
    for agg in ("IQM", "mean", "median"):
        lo, hi = stats.bootstrap_ci((x,), stats.AGGREGATES[agg][1], reps=2000, seed=0)
        assert (lo, hi) == (80.0, 120.0), agg  # 1/27 of resamples are all-minimum: above 2.5%
    t = stats.aggregate_table({"three": x, "four": [1.0, 2, 3, 10], "five": [1.0, 2, 3, 4, 10]}, reps=500)
    three, four, five = (t[t["group"] == g] for g in ("three", "four", "five"))
    assert (three["interval"] == stats.RANGE).all() and (three["lo"] == 80.0).all() and (three["hi"] == 120.0).all()
    assert (four["interval"] == stats.RANGE).all() and (four["hi"] == 10.0).all()
    assert (five["interval"] == stats.CI).all()
    # a comparison with a 3-seed group has no CI and no SE, only its point estimate
    c = stats.compare(x, [50.0, 60, 70, 80, 90], higher_is_better=False, reps=300)
    assert c.p == pytest.approx(1.5 / 15)  # 80 beats 90 and ties 80
    assert not c.has_ci and np.isnan(c.intervals[stats.CONFIDENCE][0])


def test_missing_scores_are_dropped_before_aggregating():
    t = stats.aggregate_table({"g": [1.0, np.nan, 3.0, 5.0, 7.0, 9.0]}, reps=200)
    assert (t["n"] == 5).all() and t.set_index("aggregate").loc["mean", "point"] == 5.0


# ---------------------------------------------------------------- comparisons


def test_probability_of_improvement_known_samples():
    x, y = [3, 4], [1, 2, 3]
    # pairs: 3>1, 3>2, 3=3 (1/2), 4>1, 4>2, 4>3 -> 5.5 / 6
    assert stats.probability_of_improvement(x, y) == pytest.approx(5.5 / 6)
    assert stats.probability_of_improvement(y, x) == pytest.approx(0.5 / 6)
    # lower is better: X better when smaller; only the tie counts (1/2)
    assert stats.probability_of_improvement(x, y, higher_is_better=False) == pytest.approx(0.5 / 6)
    assert stats.probability_of_improvement([1, 2, 3], [2, 2]) == pytest.approx(0.5)  # (2 + 0.5*2) / 6
    assert stats.probability_of_improvement([5, 5], [5, 5]) == 0.5
    # the bootstrap's two statistics (pairs and ranks) agree with rliable's
    no = np.zeros(3, bool)
    assert stats.censored_p_better([3.0, 4.0], no[:2], [1.0, 2.0, 3.0], no) == pytest.approx(5.5 / 6)
    assert stats.rank_p_better(np.array([3.0, 4.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(5.5 / 6)
    rng = np.random.default_rng(4)
    for _ in range(20):  # ties and infinities (unsolved runs) included
        a = np.where(rng.random(9) < 0.2, np.inf, rng.integers(0, 6, 9)).astype(float)
        b = np.where(rng.random(7) < 0.2, np.inf, rng.integers(0, 6, 7)).astype(float)
        for hib in (True, False):
            want = stats.probability_of_improvement(a, b, hib)
            assert stats.rank_p_better(a, b, hib) == pytest.approx(want)
            assert stats.censored_p_better(a, np.zeros(9, bool), b, np.zeros(7, bool), hib) == pytest.approx(want)


def test_improvement_matrix_direction_and_ci():
    scores = {"fast": np.array([10.0, 12, 14, 11, 13]), "slow": np.array([50.0, 60, 55, 58, 52])}
    m = stats.improvement_matrix(scores, higher_is_better=False, reps=300).set_index(["x", "y"])
    assert m.loc[("fast", "slow"), "p"] == 1.0
    assert m.loc[("slow", "fast"), "p"] == 0.0
    assert m.loc[("fast", "slow"), "lo"] == 1.0  # every resample: fast beats slow
    assert m.loc[("slow", "fast"), "hi"] == 0.0
    assert len(m) == 2
    few = stats.improvement_matrix({"a": [1.0, 2, 3], "b": [4.0, 5, 6, 7, 8]}, reps=300)
    assert few["lo"].isna().all() and few["hi"].isna().all()  # 3 seeds: no CI


def test_censored_comparison_by_hand():
    # lower is better; x: solved at 10, unsolved under a cap of 50; y: solved at 30 and at 80
    x, xc = [10.0, 50.0], [False, True]
    y, yc = [30.0, 80.0], [False, False]
    # (10,30) x wins; (10,80) x wins; (50+,30) y wins; (50+,80) unknown: 1/2  -> 2.5 / 4
    assert stats.censored_p_better(x, xc, y, yc, higher_is_better=False) == pytest.approx(2.5 / 4)
    # without censoring the cap would count as a finish at 50, beating 80: 3 / 4
    assert stats.probability_of_improvement(x, y, higher_is_better=False) == pytest.approx(3 / 4)
    # with one cap for everyone, censoring at the cap is rliable's answer with unsolved runs at the cap
    rng = np.random.default_rng(2)
    a = rng.integers(0, 120, 15).astype(float)
    b = rng.integers(0, 120, 11).astype(float)
    ac, bc = a >= 100, b >= 100
    a[ac], b[bc] = 100.0, 100.0
    assert stats.censored_p_better(a, ac, b, bc, False) == pytest.approx(stats.probability_of_improvement(a, b, False))


def test_compare_bootstrap_se_matches_delong_and_levels_nest():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 40), rng.normal(0.6, 1, 40)
    c = stats.compare(x, y, higher_is_better=False, levels=(0.95, 0.975), reps=2000)
    assert c.p == pytest.approx(stats.probability_of_improvement(x, y, False))
    delong = np.sqrt(c.var_x / 40 + c.var_y / 40)
    assert c.se == pytest.approx(delong, rel=0.15)
    (lo95, hi95), (lo975, hi975) = c.intervals[0.95], c.intervals[0.975]
    assert lo975 <= lo95 < c.p < hi95 <= hi975


# ---------------------------------------------------------------- profiles


def test_profile_points_both_directions():
    x = [1, 3, 5]
    assert stats.profile_points(x, [0, 1, 3, 5], higher_is_better=False).tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert stats.profile_points(x, [0, 1, 3, 5], higher_is_better=True).tolist() == pytest.approx([1, 2 / 3, 1 / 3, 0])


def test_performance_profile_stops_where_a_group_is_censored():
    prof = stats.performance_profile(
        {"a": [1, 3, 9], "b": [2, 5, 5]}, np.arange(8), False, reps=200, known_below={"a": 5}
    )
    a = prof[prof["group"] == "a"].set_index("tau")
    assert a.loc[4, "fraction"] == pytest.approx(2 / 3) and np.isnan(a.loc[5:, ["fraction", "lo", "hi"]]).all().all()
    assert not prof[prof["group"] == "b"]["fraction"].isna().any()


def test_performance_profile_band_contains_point():
    prof = stats.performance_profile({"a": [1, 3, 5, 7], "b": [2, 2, 9, 9]}, np.arange(10), False, reps=300)
    assert set(prof.columns) == {"group", "tau", "fraction", "lo", "hi"}
    assert len(prof) == 20
    assert (prof["lo"] <= prof["fraction"] + 1e-12).all() and (prof["fraction"] <= prof["hi"] + 1e-12).all()
    a = prof[prof["group"] == "a"].set_index("tau")["fraction"]
    assert a[0] == 0 and a[3] == 0.5 and a[9] == 1.0


# ---------------------------------------------------------------- curves


def test_resample_curve_solved_carries_final_rolling_level():
    out = stats.resample_curve([0, 1, 2], [10, 20, 30], grid_len=5, solved=True, window=2)
    assert out.tolist() == pytest.approx([10, 20, 30, 25, 25])


def test_resample_curve_unsolved_is_nan_after_its_end_and_gaps_interpolate():
    out = stats.resample_curve([0, 1, 2], [10, 20, 30], grid_len=5, solved=False)
    assert out[:3].tolist() == [10, 20, 30] and np.isnan(out[3:]).all()
    gap = stats.resample_curve([2, 0], [30, 10], grid_len=3, solved=False)  # unsorted, episode 1 missing
    assert gap.tolist() == pytest.approx([10, 20, 30])
    short = stats.resample_curve([0, 1, 2, 3], [1, 2, 3, 4], grid_len=2, solved=True)
    assert short.tolist() == [1, 2]


def test_rolling_and_final_rolling():
    assert stats.final_rolling([1, 2, 3, 4, 5], window=2) == 4.5
    assert stats.final_rolling([4], window=10) == 4.0
    r = stats.rolling(np.array([[2.0, 4, 6, 8]]), window=2)
    assert r.tolist() == [[2, 3, 5, 7]]


def test_curve_band_shapes_and_order():
    m = np.array([[1.0, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]])
    point, lo, hi = stats.curve_band(m, "mean", reps=300)
    assert point.tolist() == pytest.approx([2.5, 3.5, 4.5])
    assert (lo <= point).all() and (point <= hi).all()
    m[0, 2] = np.nan  # a run missing at the last grid point uses the others
    point, lo, hi = stats.curve_band(m, "mean", reps=300)
    assert point[2] == pytest.approx(5.0)


# ---------------------------------------------------------------- axes


def test_find_axes_excludes_seed_and_folds_aliases():
    runs = pd.DataFrame(
        {
            "params.seed": ["0", "1", "0", "1", "0", "1", "0", "1"],
            "params.sampler.name": ["uniform"] * 4 + ["sumtree"] * 4,
            "params.sampler.alpha": ["0.0"] * 4 + ["0.6"] * 4,  # follows the sampler choice
            "params.warmup_episodes": ["0", "0", "30", "30"] * 2,
            "params.lr": ["0.0001"] * 8,
            "params.log_every_episodes": ["1", "2", "3", "4", "5", "6", "7", "8"],
        }
    )
    ax = find_axes(runs)
    assert ax.axes == ["sampler.name", "warmup_episodes"]
    assert ax.aliases == {"sampler.alpha": "sampler.name"}
    assert ax.constant["lr"] == "0.0001"
    labels = group_labels(runs, ax)
    assert labels.iloc[0] == "sampler=uniform, warmup_episodes=0"
    assert labels.nunique() == 4
    # numeric values sort numerically: 30 after 0 (and 100 after 30)
    assert group_order(runs, ax) == [
        "sampler=sumtree, warmup_episodes=0",
        "sampler=sumtree, warmup_episodes=30",
        "sampler=uniform, warmup_episodes=0",
        "sampler=uniform, warmup_episodes=30",
    ]


def test_find_axes_nothing_varies_and_numeric_order():
    runs = pd.DataFrame({"params.seed": ["0", "1"], "params.lr": ["1e-4", "1e-4"]})
    ax = find_axes(runs)
    assert ax.axes == [] and group_labels(runs, ax).tolist() == ["all", "all"]
    runs = pd.DataFrame({"params.target_sync.every": ["100", "2", "30"], "params.seed": ["0", "0", "0"]})
    ax = find_axes(runs)
    assert group_order(runs, ax) == ["target_sync.every=2", "target_sync.every=30", "target_sync.every=100"]
