"""analysis.stats and analysis.axes against values computed by hand."""

import numpy as np
import pandas as pd
import pytest

from analysis import stats
from analysis.axes import find_axes, group_labels, group_order
from per_exp import contract as C

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
    t = stats.aggregate_table({"one": [5.0], "flat": [3.0, 3.0, 3.0]}, reps=200)
    one = t[t["group"] == "one"]
    assert one["lo"].isna().all() and one["hi"].isna().all()
    assert (one["point"] == 5.0).all()
    flat = t[t["group"] == "flat"]
    assert (flat["lo"] == 3.0).all() and (flat["hi"] == 3.0).all()


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
    # the vectorised bootstrap statistic agrees with rliable's
    assert stats._p_greater(np.array([3.0, 4.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(5.5 / 6)


def test_improvement_matrix_direction_and_ci():
    scores = {"fast": np.array([10.0, 12, 14, 11]), "slow": np.array([50.0, 60, 55, 58])}
    m = stats.improvement_matrix(scores, higher_is_better=False, reps=300).set_index(["x", "y"])
    assert m.loc[("fast", "slow"), "p"] == 1.0
    assert m.loc[("slow", "fast"), "p"] == 0.0
    assert m.loc[("fast", "slow"), "lo"] == 1.0  # every resample: fast beats slow
    assert len(m) == 2


# ---------------------------------------------------------------- profiles


def test_profile_points_both_directions():
    x = [1, 3, 5]
    assert stats.profile_points(x, [0, 1, 3, 5], higher_is_better=False).tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert stats.profile_points(x, [0, 1, 3, 5], higher_is_better=True).tolist() == pytest.approx([1, 2 / 3, 1 / 3, 0])


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


# ---------------------------------------------------------------- per-run scores


def _toy_runs():
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "run_name": ["uniform-dueling-s0", "uniform-dueling-s1"],
            "params.seed": ["0", "1"],
            "params.max_episodes": ["6", "6"],
            f"metrics.{C.SOLVED}": [1.0, 0.0],
            f"metrics.{C.SOLVED_EPISODE}": [3.0, np.nan],
            f"metrics.{C.WALL_SECONDS}": [1.0, 2.0],
            f"metrics.{C.SPS}": [100.0, 200.0],
        }
    )
    eps = pd.DataFrame(
        {
            "run_id": ["a"] * 4 + ["b"] * 6,
            "episode": [0, 1, 2, 3] + [0, 1, 2, 3, 4, 5],
            "metric": C.EPISODE_STEPS,
            "value": [10.0, 20, 200, 200] + [10.0, 10, 10, 10, 10, 40],
        }
    )
    return runs, eps


def test_run_scores_by_hand():
    runs, eps = _toy_runs()
    scores, curves = stats.run_scores(runs, eps, pd.Series(["g", "g"]), window=2)
    a, b = scores.iloc[0], scores.iloc[1]
    assert a["solved"] and not b["solved"]
    assert a["episodes_to_solve"] == 3.0  # the logged solved_episode
    assert b["episodes_to_solve"] == 6.0  # never solved: the cap max_episodes
    # grid 0..5; a continues at mean(200, 200) = 200 after episode 3
    assert curves[0].tolist() == [10, 20, 200, 200, 200, 200]
    assert a["auc"] == pytest.approx((10 + 20 + 200 * 4) / 6)
    assert b["auc"] == pytest.approx(90 / 6)
    assert a["final_length"] == 200 and b["final_length"] == 25.0
    assert curves.shape == (2, 6)


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
