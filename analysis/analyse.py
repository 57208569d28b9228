"""Loaded runs -> everything the report shows (the typed `Analysis`), no files written."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .axes import Axes, axis_values, display_names, find_axes, group_labels, group_order
from .effective import FixedKey, fixed_configuration
from .load import Loaded
from .plan import Plan, StoppingRule, plan_comparisons
from .rules import RunRules, refuse_mixed
from .scores import SCORES, Curves, RunScores, by_group, run_scores, smooth_episode_curves
from .stats import MIN_SEEDS_FOR_CI, REPS, aggregate_table, curve_band, improvement_matrix, performance_profile

#: the scores compared pairwise (probability of improvement): the budget to solve, in both units
COMPARED = ("episodes_to_solve", "env_steps_to_solve")
#: the score the plan decides on
PLANNED = "episodes_to_solve"
BAND_REPS = 1000


@dataclass
class Analysis:
    """Everything the report shows, as frames and arrays (no files written)."""

    axes: Axes
    names: dict[str, str]  # axis -> how labels name it
    order: list[str]  # the groups, in axis-value order
    scores: pd.DataFrame  # one row per run (scores.run_scores), with a column per axis
    curves: Curves  # learning curve per episode of each row of `scores` (raw)
    step_curves: Curves  # learning curve per env step (smoothed over 10 episodes)
    curve_metrics: tuple[str, ...]  # what the curves measure (one metric unless solve rules differ)
    shown: list[str]  # the scores reported (SCORES keys); the evaluation return only if runs have it
    tables: dict[str, pd.DataFrame]  # score -> aggregate table (stats.aggregate_table)
    improvement: dict[str, pd.DataFrame]  # score in COMPARED -> P(X better than Y), every ordered pair
    profile: pd.DataFrame  # performance profile of episodes to solve
    profile_xmax: float  # where the profile's axis ends: the cap if a run was capped, else past the last solve
    bands: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # group -> IQM curve per episode, CI band
    step_bands: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # the same per env step
    values: dict[str, list[str]]  # axis -> its values in order
    rules: dict[str, RunRules]  # run id -> its cap and solve rule
    mixed: bool  # runs had different caps or solve rules (allowed by the user): censoring applies
    small: list[str]  # groups with fewer than MIN_SEEDS_FOR_CI runs
    plan: Plan
    fixed: list[FixedKey]  # constant params that take effect in some run
    inert: list[FixedKey]  # constant params without effect in any run
    reps: int

    @property
    def grid_len(self) -> int:
        return len(self.curves.x)

    @property
    def step_horizon(self) -> float:
        x = self.step_curves.x
        return float(x[-1] + (x[1] - x[0])) if len(x) > 1 else 0.0


def analyse(
    loaded: Loaded,
    reps: int = REPS,
    seed: int = 0,
    grid_episodes: int | None = None,
    ignore=(),
    allow_mixed: bool = False,
    rule: StoppingRule | None = None,
) -> Analysis:
    """Everything the report shows. Runs with different caps or solve rules raise
    `rules.MixedRulesError` unless `allow_mixed` (then unsolved runs are censored at their own cap)."""
    runs = loaded.runs
    mixed = refuse_mixed(loaded.rules, allow_mixed)
    axes = find_axes(runs, ignore=ignore)
    groups = group_labels(runs, axes)
    order = group_order(runs, axes)
    rs: RunScores = run_scores(runs, loaded.episodes, groups, loaded.rules, mixed=mixed, grid_episodes=grid_episodes)
    scores = rs.scores
    for a in axes.axes:
        scores[a] = runs[f"params.{a}"].astype(str).to_numpy()
    shown = [k for k in SCORES if k != "eval_return" or rs.has_eval]
    tables = {k: aggregate_table(by_group(scores, SCORES[k].column, order), reps=reps, seed=seed) for k in shown}
    improvement = {}
    for k in COMPARED:
        values, censored = _compared(scores, k, order, mixed)
        improvement[k] = (
            improvement_matrix(values, higher_is_better=False, reps=reps, seed=seed, censored=censored)
            if len(order) > 1
            else pd.DataFrame(columns=["x", "y", "p", "lo", "hi"])
        )
    profile, xmax = _profile(scores, order, mixed, reps, seed)
    smooth = smooth_episode_curves(rs.episodes)
    bands, step_bands = {}, {}
    for g in order:
        idx = np.flatnonzero(scores["group"].to_numpy() == g)
        bands[g] = curve_band(smooth.values[idx], "IQM", reps=min(reps, BAND_REPS), seed=seed)
        step_bands[g] = curve_band(rs.steps.values[idx], "IQM", reps=min(reps, BAND_REPS), seed=seed)
    values, censored = _compared(scores, PLANNED, order, mixed)
    plan = plan_comparisons(values, censored, higher_is_better=False, rule=rule, reps=reps, seed=seed)
    fixed, inert = fixed_configuration(runs, axes.constant)
    sizes = scores.groupby("group").size()
    return Analysis(
        axes=axes,
        names=display_names(axes.axes),
        order=order,
        scores=scores,
        curves=rs.episodes,
        step_curves=rs.steps,
        curve_metrics=rs.curve_metrics,
        shown=shown,
        tables=tables,
        improvement=improvement,
        profile=profile,
        profile_xmax=xmax,
        bands=bands,
        step_bands=step_bands,
        values={a: axis_values(runs, a) for a in axes.axes},
        rules=dict(loaded.rules),
        mixed=mixed,
        small=[g for g in order if sizes.get(g, 0) < MIN_SEEDS_FOR_CI],
        plan=plan,
        fixed=fixed,
        inert=inert,
        reps=reps,
    )


def _compared(scores: pd.DataFrame, score: str, order, mixed: bool):
    """What a comparison of a to-solve score reads: with one cap, an unsolved run failed the shared
    budget and ranks below every solved run (+inf, no censoring); with mixed caps it is censored at
    what it used (Gehan)."""
    col = SCORES[score].column
    values = by_group(scores, col, order)
    cens = by_group(scores, f"{col}_censored", order)
    if mixed:
        return {g: v.astype(float) for g, v in values.items()}, {g: c.astype(bool) for g, c in cens.items()}
    return {g: np.where(cens[g].astype(bool), np.inf, values[g].astype(float)) for g in order}, None


def _profile(scores: pd.DataFrame, order, mixed: bool, reps: int, seed: int) -> tuple[pd.DataFrame, float]:
    """Fraction solved within tau episodes; with mixed caps, each group's only up to its smallest cap."""
    ets = by_group(scores, "episodes_to_solve", order)
    capped = ~scores["solved"].astype(bool)
    cap = float(scores["episode_cap"].max())
    xmax = cap if capped.any() else float(scores["episodes_to_solve"].max()) + 1
    taus = np.arange(0, int(np.ceil(min(cap, xmax + 1))))
    known = None
    if mixed:
        known = {g: float(scores.loc[scores["group"] == g, "episode_cap"].min()) for g in order}
    prof = performance_profile(
        ets, taus, higher_is_better=False, reps=min(reps, BAND_REPS), seed=seed, known_below=known
    )
    return prof, xmax
