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

Everything here is a pure function of small NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats
from rliable import metrics as rly_metrics

from per_exp import contract as C

CONFIDENCE = 0.95
REPS = 2000
ROLLING_WINDOW = 10  # episodes in the final rolling mean (the solve rule's window)


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


def aggregate_table(
    scores: Mapping[str, Sequence[float]],
    reps: int = REPS,
    seed: int = 0,
    aggregates: Sequence[str] = ("IQM", "mean", "median"),
) -> pd.DataFrame:
    """Per group and aggregate: point estimate and 95% CI.

    Columns ``group, n, aggregate, point, lo, hi`` (one row per group x aggregate).
    """
    rows = []
    for group, values in scores.items():
        x = np.asarray(values, dtype=float)
        for name in aggregates:
            point_fn, vec_fn = AGGREGATES[name]
            lo, hi = bootstrap_ci((x,), vec_fn, reps=reps, seed=seed)
            rows.append(
                {"group": group, "n": len(x), "aggregate": name, "point": point_fn(x), "lo": float(lo), "hi": float(hi)}
            )
    return pd.DataFrame(rows, columns=["group", "n", "aggregate", "point", "lo", "hi"])


# --------------------------------------------------------------------------- comparisons


def _p_greater(x, y, axis=-1):
    """P(X > Y) + 0.5 P(X = Y) over all pairs; vectorised over leading axes."""
    x = np.moveaxis(np.asarray(x), axis, -1)[..., :, None]
    y = np.moveaxis(np.asarray(y), axis, -1)[..., None, :]
    return np.mean((x > y) + 0.5 * (x == y), axis=(-2, -1))


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


def improvement_matrix(
    scores: Mapping[str, Sequence[float]],
    higher_is_better: bool = True,
    reps: int = REPS,
    seed: int = 0,
) -> pd.DataFrame:
    """All ordered pairs X != Y: P(X better than Y) with a 95% stratified-bootstrap CI.

    Columns ``x, y, p, lo, hi``.
    """
    sign = 1.0 if higher_is_better else -1.0
    rows = []
    for gx, x in scores.items():
        for gy, y in scores.items():
            if gx == gy:
                continue
            xs, ys = sign * np.asarray(x, float), sign * np.asarray(y, float)
            lo, hi = bootstrap_ci((xs, ys), _p_greater, reps=reps, seed=seed)
            rows.append(
                {
                    "x": gx,
                    "y": gy,
                    "p": probability_of_improvement(x, y, higher_is_better),
                    "lo": float(lo),
                    "hi": float(hi),
                }
            )
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
) -> pd.DataFrame:
    """Run-score distribution per group with a pointwise 95% bootstrap band.

    Columns ``group, tau, fraction, lo, hi``. For episodes to solve (lower
    better) the profile at tau is the fraction of runs solved within tau
    episodes.
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
        frames.append(
            pd.DataFrame(
                {"group": g, "tau": taus, "fraction": profile_points(x, taus, higher_is_better), "lo": lo, "hi": hi}
            )
        )
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


# --------------------------------------------------------------------------- per-run scores


@dataclass(frozen=True)
class Score:
    column: str
    label: str
    higher_is_better: bool
    unit: str
    short: str  # axis label


SCORES = {
    "episodes_to_solve": Score(
        "episodes_to_solve", "Episodes to solve", False, "episodes", "Episodes to solve (lower better)"
    ),
    "auc": Score(
        "auc", "Area under the learning curve (mean episode length)", True, "steps", "AUC: mean episode length"
    ),
    "final_length": Score(
        "final_length",
        f"Final episode length (mean of last {ROLLING_WINDOW})",
        True,
        "steps",
        f"Final length (last {ROLLING_WINDOW} episodes)",
    ),
}


def _float_or(row, key: str, default: float = np.nan) -> float:
    """The row's value at `key` as a float; `default` when it is missing or not a number."""
    v = row.get(key, default)
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _metric(key: str) -> str:
    """The runs frame's column of a run metric."""
    return f"metrics.{key}"


def _param(key: str) -> str:
    """The runs frame's column of a run param."""
    return f"params.{key}"


def run_scores(
    runs: pd.DataFrame,
    episodes: pd.DataFrame,
    groups: pd.Series,
    metric: str = C.CURVE_METRIC,
    grid_len: int | None = None,
    window: int = ROLLING_WINDOW,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-run scores and the learning-curve matrix on the common grid.

    * ``episodes_to_solve``: the logged ``solved_episode`` (0-based index of
      the episode at which the solve rule fired); a run that never solved
      counts as ``max_episodes`` (its ``episode_cap``), so it ranks below every solved run.
    * ``auc``: mean episode length over the common grid ``0 .. grid_len-1``
      (default: the longest run analysed), solved runs extended at their
      final rolling level (see :func:`resample_curve`).
    * ``final_length``: mean length of the run's own last ``window`` episodes.

    Returns ``(scores, curves)``; ``curves[i]`` is the run in ``scores`` row i.
    """
    series = episodes[episodes["metric"] == metric]
    by_run = {rid: df for rid, df in series.groupby("run_id")}
    if grid_len is None:
        grid_len = int(max(df["episode"].max() + 1 for df in by_run.values()))
    rows, mats = [], []
    for i, row in runs.reset_index(drop=True).iterrows():
        rid = row["run_id"]
        df = by_run[rid].sort_values("episode")
        solved_ep = _float_or(row, _metric(C.SOLVED_EPISODE))
        solved_flag = _float_or(row, _metric(C.SOLVED))
        solved = bool(solved_flag == 1.0) if not np.isnan(solved_flag) else not np.isnan(solved_ep)
        episode_cap = _float_or(row, _param(C.PARAM_MAX_EPISODES))
        if np.isnan(episode_cap):
            episode_cap = float(df["episode"].max() + 1)
        curve = resample_curve(df["episode"], df["value"], grid_len, solved, window)
        mats.append(curve)
        rows.append(
            {
                "run_id": rid,
                "run_name": row.get("run_name"),
                "group": groups.iloc[i],
                "seed": row.get(_param(C.PARAM_SEED)),
                "solved": solved,
                "episodes_to_solve": solved_ep if solved and not np.isnan(solved_ep) else episode_cap,
                "auc": float(np.nanmean(curve)),
                "final_length": final_rolling(df["value"].to_numpy(), window),
                "episodes": _float_or(row, _metric(C.EPISODES), float(len(df))),
                "episode_cap": episode_cap,
                "wall_seconds": _float_or(row, _metric(C.WALL_SECONDS)),
                "sps": _float_or(row, _metric(C.SPS)),
                "total_env_steps": _float_or(row, _metric(C.TOTAL_ENV_STEPS)),
            }
        )
    return pd.DataFrame(rows), np.vstack(mats)


def by_group(scores: pd.DataFrame, column: str, order: Sequence[str]) -> dict:
    """``{group: array of the column}`` in the given group order."""
    return {g: scores.loc[scores["group"] == g, column].to_numpy(dtype=float) for g in order}
