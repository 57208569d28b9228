"""Statistics of a seed sweep, after Agarwal et al. (2021), "Deep RL at the Edge of
the Statistical Precipice": interquartile mean (IQM), mean and median with
stratified-bootstrap 95% confidence intervals, probability of improvement and
performance profiles.

Library choice. Point estimates use ``rliable.metrics`` (IQM is
``scipy.stats.trim_mean(x, 0.25)``; probability of improvement is the
Mann-Whitney U statistic over ``n*m``). Confidence intervals use
``scipy.stats.bootstrap`` (percentile method, as rliable), *not*
``rliable.library.get_interval_estimates``: that module imports ``arch``, and
the ``arch`` rliable 1.2 allows (``<8``, here 7.2) fails to import under
pandas 3 (``deprecate_kwarg() missing ... 'new_arg_name'``) while arch 8 breaks
rliable's ``StratifiedBootstrap`` (``random_state`` kwarg). With one task
(CartPole), rliable's stratified bootstrap resamples runs with replacement
within each algorithm; ``scipy.stats.bootstrap`` with one sample per group
(and two independent samples for a pairwise statistic) does exactly that.

Direction. Episodes-to-solve is better when *lower*; the other scores are
better when higher. Every function that compares takes ``higher_is_better``.

Few seeds. A percentile bootstrap over n values never leaves their range, and
for n <= 3 its 95% interval *is* the min-max range (all n draws land on the
minimum with probability n^-n >= 2.5%); below ``MIN_SEEDS_FOR_CI`` (5) seeds
per group no interval is called a CI here: aggregates carry the seeds' range
(``interval == "range"``) and comparisons none.

Censoring. When runs had different episode caps (allowed by the user), an
unsolved run's time to solve is only known to exceed what it used.
``censored_p_better`` is then P(X better than Y) by Gehan's generalised
Wilcoxon rule: a pair counts when its order is known despite the censoring;
a pair that censoring leaves unordered counts one half, as a tie does. With
one cap for every run it equals rliable's probability of improvement with
unsolved runs at the cap.

Everything here is a pure function of small NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats
from rliable import metrics as rly_metrics

CONFIDENCE = 0.95
REPS = 2000
ROLLING_WINDOW = 10  # episodes in the final rolling mean and the curves' smoothing
MIN_SEEDS_FOR_CI = 5  # fewer runs in a group: its interval is the seeds' range, not a CI
#: what an aggregate's (lo, hi) is
CI, RANGE, NO_INTERVAL = "95% CI", "range", "none"


# --------------------------------------------------------------------------- aggregates


def iqm(x) -> float:
    """Interquartile mean: mean of the middle 50% (25% trimmed each side)."""
    return float(rly_metrics.aggregate_iqm(np.asarray(x, dtype=float).reshape(-1, 1)))


def _iqm_axis(x, axis=-1):
    return scipy.stats.trim_mean(x, 0.25, axis=axis)


#: name -> (point estimate, vectorised statistic(x, axis) for the bootstrap)
AGGREGATES: dict = {
    "IQM": (iqm, _iqm_axis),
    "mean": (lambda x: float(np.mean(x)), lambda x, axis=-1: np.mean(x, axis=axis)),
    "median": (lambda x: float(np.median(x)), lambda x, axis=-1: np.median(x, axis=axis)),
}


def bootstrap_ci(
    samples: Sequence[np.ndarray],
    statistic: Callable,
    reps: int = REPS,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    axis: int = -1,
):
    """Percentile bootstrap CI; each sample is resampled on its own (stratified).

    ``statistic(*samples, axis=...)`` must be vectorised. Returns ``(low, high)``
    (arrays for a vector-valued statistic); NaN when a sample has < 2 values.
    """
    samples = tuple(np.asarray(s, dtype=float) for s in samples)
    if any(s.shape[axis] < 2 for s in samples):
        shape = np.shape(statistic(*samples, axis=axis))
        nan = np.full(shape, np.nan)
        return (nan, nan) if shape else (np.nan, np.nan)
    res = scipy.stats.bootstrap(
        samples,
        statistic,
        n_resamples=reps,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        paired=False,
        axis=axis,
        batch=200,
        random_state=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return lo, hi


def interval_kind(n: int, min_n: int = MIN_SEEDS_FOR_CI) -> str:
    """What a group of n runs gets: a bootstrap CI, the seeds' range, or nothing."""
    return CI if n >= min_n else (RANGE if n >= 2 else NO_INTERVAL)


def aggregate_table(
    scores: Mapping[str, Sequence[float]],
    reps: int = REPS,
    seed: int = 0,
    aggregates: Sequence[str] = ("IQM", "mean", "median"),
    min_n: int = MIN_SEEDS_FOR_CI,
) -> pd.DataFrame:
    """Per group and aggregate: point estimate and its interval.

    Columns ``group, n, aggregate, point, lo, hi, interval``: ``interval`` is
    ``CI`` (a 95% stratified-bootstrap CI, n >= min_n), ``RANGE`` (min and max
    of the runs, 2 <= n < min_n) or ``NO_INTERVAL`` (one run, lo = hi = NaN).
    Missing values (NaN: a run without that score) are dropped first.
    """
    rows = []
    for group, values in scores.items():
        x = np.asarray(values, dtype=float)
        x = x[~np.isnan(x)]
        kind = interval_kind(len(x), min_n)
        for name in aggregates:
            point_fn, vec_fn = AGGREGATES[name]
            if kind == CI:
                lo, hi = bootstrap_ci((x,), vec_fn, reps=reps, seed=seed)
            elif kind == RANGE:
                lo, hi = float(np.min(x)), float(np.max(x))
            else:
                lo = hi = np.nan
            point = point_fn(x) if len(x) else np.nan
            rows.append(
                {
                    "group": group,
                    "n": len(x),
                    "aggregate": name,
                    "point": point,
                    "lo": float(lo),
                    "hi": float(hi),
                    "interval": kind,
                }
            )
    return pd.DataFrame(rows, columns=["group", "n", "aggregate", "point", "lo", "hi", "interval"])


# --------------------------------------------------------------------------- comparisons


def probability_of_improvement(x, y, higher_is_better: bool = True) -> float:
    """P(X better than Y): a random run of X beats a random run of Y, ties count 1/2.

    For lower-is-better scores (episodes to solve) "better" means smaller.
    Uses ``rliable.metrics.probability_of_improvement`` (Mann-Whitney U / nm).
    """
    x = np.asarray(x, dtype=float).reshape(-1, 1)
    y = np.asarray(y, dtype=float).reshape(-1, 1)
    if not higher_is_better:
        x, y = -x, -y
    return float(rly_metrics.probability_of_improvement(x, y))


def pair_scores(x, xc, y, yc, higher_is_better: bool = True) -> np.ndarray:
    """Score of every pair (x_i, y_j) on trailing axes (..., n, m): 1 when x_i is better, 0 when y_j is,
    1/2 for a tie or a pair that censoring leaves unordered (Gehan).

    ``xc``/``yc``: True where the value is censored, i.e. the run's true score is only
    known to be *worse* than or equal to the value (an unsolved run: at least its cap).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc, yc = np.asarray(xc, bool), np.asarray(yc, bool)
    if higher_is_better:  # "better" = smaller from here on
        x, y = -x, -y
    a, b = x[..., :, None], y[..., None, :]
    win = ~xc[..., :, None] & (a < b)  # x observed and below what y is at least
    loss = ~yc[..., None, :] & (b < a)
    return win + 0.5 * (1.0 - win - loss)


def rank_p_better(x, y, higher_is_better: bool = True) -> np.ndarray:
    """P(X better than Y), ties 1/2, on the last axis of (..., n) and (..., m) arrays, from ranks.

    The Mann-Whitney U statistic over n*m, in O((n+m) log(n+m)) per row instead of
    the n*m pairs: what makes the bootstrap of a 1000-seed comparison affordable.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n, m = x.shape[-1], y.shape[-1]
    both = np.concatenate([x, y], axis=-1)
    if not higher_is_better:
        both = -both
    ranks = scipy.stats.rankdata(both, axis=-1)  # ties get their average rank
    u = ranks[..., :n].sum(axis=-1) - n * (n + 1) / 2.0
    return u / (n * m)


def censored_p_better(x, xc, y, yc, higher_is_better: bool = True) -> float:
    """P(X better than Y) with censored values (Gehan's rule); see :func:`pair_scores`."""
    return float(np.mean(pair_scores(x, xc, y, yc, higher_is_better)))


@dataclass(frozen=True)
class Comparison:
    """P(X better than Y) for one pair of groups, with what its bootstrap says."""

    p: float
    n_x: int
    n_y: int
    se: float  # bootstrap standard error of p (NaN without a bootstrap)
    intervals: dict  # confidence level -> (lo, hi), percentile bootstrap; NaN when a group has < min_n runs
    var_x: float  # DeLong's variance components: var(p) ~ var_x / n_x + var_y / n_y
    var_y: float

    @property
    def has_ci(self) -> bool:
        return not np.isnan(self.se)

    def excludes_half(self, level: float) -> bool:
        lo, hi = self.intervals[level]
        return bool(lo > 0.5 or hi < 0.5)


def compare(
    x,
    y,
    xc=None,
    yc=None,
    higher_is_better: bool = True,
    levels: Sequence[float] = (CONFIDENCE,),
    reps: int = REPS,
    seed: int = 0,
    min_n: int = MIN_SEEDS_FOR_CI,
) -> Comparison:
    """P(X better than Y), its stratified-bootstrap SE and percentile intervals at each of `levels`.

    Without censoring (``xc``/``yc`` None) the point estimate is rliable's
    probability of improvement; with it, Gehan's rule (:func:`pair_scores`).
    Groups of fewer than `min_n` runs get no interval and no SE.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    censored = xc is not None or yc is not None
    xc = np.zeros(len(x), bool) if xc is None else np.asarray(xc, bool)
    yc = np.zeros(len(y), bool) if yc is None else np.asarray(yc, bool)
    pairs = pair_scores(x, xc, y, yc, higher_is_better)
    p = float(pairs.mean()) if censored else probability_of_improvement(x, y, higher_is_better)
    var_x = float(np.var(pairs.mean(axis=1), ddof=1)) if len(x) > 1 else np.nan
    var_y = float(np.var(pairs.mean(axis=0), ddof=1)) if len(y) > 1 else np.nan
    nan = (np.nan, np.nan)
    if min(len(x), len(y)) < max(min_n, 2):
        return Comparison(p, len(x), len(y), np.nan, {lv: nan for lv in levels}, var_x, var_y)

    def stat(sx, sy, axis=-1):
        # each sample is (value, censored) stacked on axis 0; scipy resamples the last axis
        return np.mean(pair_scores(sx[0], sx[1] > 0.5, sy[0], sy[1] > 0.5, higher_is_better), axis=(-2, -1))

    def ranked(sx, sy, axis=-1):
        return rank_p_better(sx[0], sy[0], higher_is_better)

    res = scipy.stats.bootstrap(
        (np.vstack([x, xc]), np.vstack([y, yc])),
        stat if censored else ranked,
        n_resamples=reps,
        method="percentile",
        vectorized=True,
        paired=False,
        axis=-1,
        batch=max(1, min(200, 4_000_000 // (len(x) * len(y)))) if censored else 200,
        random_state=np.random.default_rng(seed),
    )
    dist = np.asarray(res.bootstrap_distribution)
    intervals = {
        lv: (float(np.percentile(dist, 50 * (1 - lv))), float(np.percentile(dist, 50 * (1 + lv)))) for lv in levels
    }
    return Comparison(p, len(x), len(y), float(np.std(dist, ddof=1)), intervals, var_x, var_y)


def improvement_matrix(
    scores: Mapping[str, Sequence[float]],
    higher_is_better: bool = True,
    reps: int = REPS,
    seed: int = 0,
    censored: Mapping[str, Sequence[bool]] | None = None,
    min_n: int = MIN_SEEDS_FOR_CI,
) -> pd.DataFrame:
    """All ordered pairs X != Y: P(X better than Y) with a 95% stratified-bootstrap CI.

    Columns ``x, y, p, lo, hi`` (lo, hi NaN when a group has fewer than `min_n`
    runs). ``censored[group]`` marks censored runs (Gehan's rule, see
    :func:`pair_scores`). Each unordered pair is bootstrapped once:
    P(Y better than X) = 1 - P(X better than Y).
    """
    groups = list(scores)
    rows = []
    for i, gx in enumerate(groups):
        for gy in groups[i + 1 :]:
            c = compare(
                scores[gx],
                scores[gy],
                None if censored is None else censored[gx],
                None if censored is None else censored[gy],
                higher_is_better,
                reps=reps,
                seed=seed,
                min_n=min_n,
            )
            lo, hi = c.intervals[CONFIDENCE]
            rows.append({"x": gx, "y": gy, "p": c.p, "lo": lo, "hi": hi})
            rows.append({"x": gy, "y": gx, "p": 1.0 - c.p, "lo": 1.0 - hi, "hi": 1.0 - lo})
    order = {g: k for k, g in enumerate(groups)}
    rows.sort(key=lambda r: (order[r["x"]], order[r["y"]]))
    return pd.DataFrame(rows, columns=["x", "y", "p", "lo", "hi"])


# --------------------------------------------------------------------------- profiles


def profile_points(x, taus, higher_is_better: bool = True) -> np.ndarray:
    """Fraction of runs with score > tau (higher better) or score <= tau (lower better)."""
    x = np.asarray(x, dtype=float)[:, None]
    taus = np.asarray(taus, dtype=float)[None, :]
    return np.mean(x > taus if higher_is_better else x <= taus, axis=0)


def performance_profile(
    scores: Mapping[str, Sequence[float]],
    taus,
    higher_is_better: bool = True,
    reps: int = REPS,
    seed: int = 0,
    known_below: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Run-score distribution per group with a pointwise 95% bootstrap band.

    Columns ``group, tau, fraction, lo, hi``. For episodes to solve (lower
    better) the profile at tau is the fraction of runs solved within tau
    episodes. ``known_below[group]``: the profile is only known for tau below
    it (the group's smallest cap when caps differ); NaN from there on.
    """
    taus = np.asarray(taus, dtype=float)

    def stat(x, axis=-1):
        x = np.moveaxis(x, axis, -1)[..., None, :]
        t = taus[:, None]
        frac = np.mean(x > t if higher_is_better else x <= t, axis=-1)  # (..., T)
        return np.moveaxis(frac, -1, 0)  # scipy wants the statistic's own axis first

    frames = []
    for g, values in scores.items():
        x = np.asarray(values, dtype=float)
        lo, hi = bootstrap_ci((x,), stat, reps=reps, seed=seed)
        frac = profile_points(x, taus, higher_is_better)
        if known_below is not None and g in known_below:
            unknown = taus >= known_below[g]
            frac, lo, hi = (np.where(unknown, np.nan, np.asarray(a, float)) for a in (frac, lo, hi))
        frames.append(pd.DataFrame({"group": g, "tau": taus, "fraction": frac, "lo": lo, "hi": hi}))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- curves


def resample_curve(episodes, values, grid_len: int, solved: bool, window: int = ROLLING_WINDOW) -> np.ndarray:
    """One run's per-episode series on the common grid ``0 .. grid_len-1``.

    Inside the run's range: the value at each episode (linear interpolation
    over any missing episode; before the first logged episode, the first
    value). After its last episode: a run that stopped *because it solved*
    is treated as going on at its final rolling level (mean of its last
    ``window`` episodes, >= the success length by the solve rule), since the
    trainer stops solved runs; carrying forward only the last single value
    would be noisier, and dropping the run would bias late episodes towards
    slow learners. A run that stopped unsolved has no value there (NaN).
    """
    e = np.asarray(episodes, dtype=float)
    v = np.asarray(values, dtype=float)
    order = np.argsort(e)
    e, v = e[order], v[order]
    out = np.full(grid_len, np.nan)
    if len(e) == 0:
        return out
    g = np.arange(grid_len, dtype=float)
    inside = g <= e[-1]
    out[inside] = np.interp(g[inside], e, v)
    if solved:
        out[~inside] = final_rolling(v, window)
    return out


def final_rolling(values, window: int = ROLLING_WINDOW) -> float:
    """Mean of the last ``window`` values (all of them if fewer)."""
    v = np.asarray(values, dtype=float)
    return float(np.mean(v[-window:])) if len(v) else float("nan")


def rolling(matrix: np.ndarray, window: int = ROLLING_WINDOW) -> np.ndarray:
    """Trailing rolling mean along the last axis (min 1 value), NaN-aware."""
    return pd.DataFrame(np.asarray(matrix, float).T).rolling(window, min_periods=1).mean().to_numpy().T


def curve_band(
    matrix: np.ndarray, aggregate: str = "IQM", reps: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Across runs (rows) at each grid point (columns): aggregate and 95% CI band.

    Grid points where some run is NaN use the runs that have a value there.
    """
    m = np.asarray(matrix, dtype=float)
    point_fn, vec_fn = AGGREGATES[aggregate]
    if not np.isnan(m).any():
        point = vec_fn(m, axis=0)
        lo, hi = bootstrap_ci((m,), vec_fn, reps=reps, seed=seed, axis=0)
        return np.asarray(point), np.asarray(lo), np.asarray(hi)
    point, lo, hi = (np.full(m.shape[1], np.nan) for _ in range(3))
    for j in range(m.shape[1]):
        col = m[:, j][~np.isnan(m[:, j])]
        if len(col):
            point[j] = point_fn(col)
            lo[j], hi[j] = bootstrap_ci((col,), vec_fn, reps=reps, seed=seed)
    return point, lo, hi
