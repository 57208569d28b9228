"""Per-run scores: one number per run and score, each in both budget units (episodes and env steps).

A run's scores read its own rules (:mod:`analysis.rules`): the learning curve
is the series its solve rule judges (episode length for the length rule, the
return for the mean-return rule), a solved run's final level is the mean of
the rule's window, and an unsolved run counts at its own cap.

Runs stop when they solve, so curves have different lengths. On a common
grid, a run that stopped *because it solved* continues at its final level;
a run that stopped unsolved has no value beyond its end. The default grid
(``common_horizon``) ends where the first unsolved run ended, so that every
run has a value everywhere on it (with one cap, that is the cap itself).

Compute. The summary ``wall_seconds`` of a run includes one-time costs of
the process it ran in: numba compiles (or loads from its cache) each kernel
at its first call, which lands in the episodes where the kernel is first
used (the first episode, and the first one with a gradient update; a resumed
run's first episode again). :func:`startup_seconds` measures that excess
from the run's own per-episode ``perf/sps`` so that the compute figures show
it apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from per_exp import contract as C

from .rules import RunRules
from .stats import ROLLING_WINDOW, final_rolling, resample_curve, rolling

STEP_GRID_POINTS = 400  # points of the env-step grid the step curves are drawn on
STARTUP_REFERENCE_EPISODES = 10  # episodes after the start-up whose median speed is the run's steady speed


@dataclass(frozen=True)
class Score:
    column: str
    label: str  # table heading; "{curve}" is replaced by what the learning curve measures
    higher_is_better: bool
    unit: str
    short: str  # axis label
    scale: str  # what its axes' minimum span is a fraction of: "cap", "budget" (cap x time limit), "steps"
    censored: bool = False  # an unsolved run's value stands for "at least this"


SCORES: dict[str, Score] = {
    "episodes_to_solve": Score(
        "episodes_to_solve", "Episodes to solve", False, "episodes", "Episodes to solve (lower better)", "cap", True
    ),
    "env_steps_to_solve": Score(
        "env_steps_to_solve",
        "Env steps to solve",
        False,
        "env steps",
        "Env steps to solve (lower better)",
        "budget",
        True,
    ),
    "auc": Score("auc", "AUC per episode: mean {curve} over the episode grid", True, "", "AUC per episode", "steps"),
    "auc_steps": Score(
        "auc_steps", "AUC per env step: mean {curve} over the env-step grid", True, "", "AUC per env step", "steps"
    ),
    "final": Score(
        "final",
        f"Final {{curve}} (mean of the last {ROLLING_WINDOW} episodes)",
        True,
        "",
        f"Final {{curve}} (last {ROLLING_WINDOW})",
        "steps",
    ),
    "eval_return": Score(
        "eval_return", "Final evaluation return (greedy, last evaluation)", True, "", "Final eval return", "steps"
    ),
}


def curve_name(metric: str) -> str:
    return "episode length" if metric == C.EPISODE_STEPS else "return"


def label(score: Score, curve: str, short: bool = False) -> str:
    return (score.short if short else score.label).replace("{curve}", curve)


def common_horizon(used: Sequence[float], solved: Sequence[bool]) -> float:
    """The longest grid on which every run has a value: where the first unsolved run stopped
    (solved runs continue at their final level), or the longest run when all solved."""
    u, ok = np.asarray(used, float), np.asarray(solved, bool)
    return float(u[~ok].min()) if (~ok).any() else float(u.max())


def startup_seconds(
    lengths: Sequence[float],
    sps: Sequence[float],
    updates: Sequence[float] | None = None,
    resumed_at: int | None = None,
) -> float:
    """One-time start-up cost inside a run's wall time: seconds its first episodes took beyond its steady speed.

    Candidates are the episodes up to the first with a gradient update
    (``updates`` > 0; the first 5 without that series) and the episode a
    resume started at; the steady speed is the median seconds per step of the
    next ``STARTUP_REFERENCE_EPISODES`` episodes. NaN without per-episode speeds.
    """
    n_steps, speed = np.asarray(lengths, float), np.asarray(sps, float)
    if len(n_steps) == 0 or len(speed) != len(n_steps) or np.isnan(speed).all():
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        per_step = np.where(speed > 0, 1.0 / speed, np.nan)
    seconds = n_steps * per_step
    first = 4
    if updates is not None and len(updates) == len(n_steps):
        hit = np.flatnonzero(np.asarray(updates, float) > 0)
        first = int(hit[0]) if len(hit) else len(n_steps) - 1
    starts = [0] + ([resumed_at] if resumed_at is not None and 0 < resumed_at < len(n_steps) else [])
    total = 0.0
    for start in starts:
        last = first if start == 0 else start
        ref = per_step[last + 1 : last + 1 + STARTUP_REFERENCE_EPISODES]
        ref = ref[~np.isnan(ref)]
        if not len(ref):
            continue
        steady = float(np.median(ref))
        excess = seconds[start : last + 1] - n_steps[start : last + 1] * steady
        total += float(np.nansum(np.clip(excess, 0.0, None)))
    return total


def step_integral_mean(lengths, values, horizon: float, extend: float | None) -> float:
    """Mean over env steps 0..horizon of the value of the episode each step belongs to.

    After the run's last step: `extend` (a solved run's final level), or
    nothing (the mean is over the steps the run has).
    """
    lengths, values = np.asarray(lengths, float), np.asarray(values, float)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    inside = np.clip(np.minimum(ends, horizon) - starts, 0.0, None)
    total, covered = float(np.sum(inside * values)), float(np.sum(inside))
    if extend is not None and covered < horizon:
        total += (horizon - covered) * extend
        covered = horizon
    return total / covered if covered > 0 else float("nan")


def step_curve(lengths, values, grid, extend: float | None) -> np.ndarray:
    """The per-episode `values` as a function of env steps, sampled at `grid` (NaN after an unsolved run's end)."""
    lengths, values = np.asarray(lengths, float), np.asarray(values, float)
    ends = np.cumsum(lengths)
    idx = np.searchsorted(ends, grid, side="right")
    out = np.full(len(grid), np.nan)
    inside = idx < len(values)
    out[inside] = values[idx[inside]]
    if extend is not None:
        out[~inside] = extend
    return out


@dataclass
class Curves:
    """Learning curves of the runs on one common grid: x (episodes or env steps), one row per run."""

    x: np.ndarray
    values: np.ndarray  # runs x len(x)
    unit: str  # "episodes" or "env steps"


@dataclass
class RunScores:
    scores: pd.DataFrame  # one row per run: group, seed, each score, its censoring, compute
    episodes: Curves  # the curve per episode (raw; smooth for plotting)
    steps: Curves  # the curve per env step, smoothed over ROLLING_WINDOW episodes
    curve_metrics: tuple[str, ...]  # the series used as learning curve (one unless solve rules differ)
    has_eval: bool  # some run logged evaluation episodes


def _float(row, key: str, default: float = np.nan) -> float:
    v = row.get(key, default)
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _slots(row) -> float:
    """The slots of the engine the run trained in (tag per_exp.group), NaN where it is not recorded."""
    raw = row.get(f"tags.{C.TAG_GROUP}")
    try:
        return float(json.loads(raw)["slots"])
    except (TypeError, ValueError, KeyError):
        return np.nan


def run_scores(
    runs: pd.DataFrame,
    episodes: pd.DataFrame,
    groups: pd.Series,
    rules: Mapping[str, RunRules],
    mixed: bool = False,
    grid_episodes: int | None = None,
    grid_steps: float | None = None,
) -> RunScores:
    """Per-run scores and learning curves.

    * ``episodes_to_solve``: the logged ``solved_episode`` (0-based index of
      the episode at which the solve rule fired); an unsolved run counts as
      its cap (``episodes_to_solve_censored`` marks it).
    * ``env_steps_to_solve``: env steps up to and including that episode; an
      unsolved run counts as the most its cap allows (cap x time limit), or,
      when runs had different caps (`mixed`), as the steps it used, censored.
    * ``auc``, ``auc_steps``: mean of the learning curve over the common
      episode grid and env-step grid (:func:`common_horizon` unless given).
    * ``final``: mean of the run's own last ``ROLLING_WINDOW`` curve values.
    * ``eval_return``: the run's last ``eval/return`` (NaN if it has none).
    * compute: ``wall_seconds``, ``slots`` (runs trained at once in its process, tag ``per_exp.group``;
      NaN where not recorded), ``startup_seconds`` (:func:`startup_seconds`),
      ``steady_wall_seconds`` (wall minus start-up), ``steady_sps``.
    """
    by_run = {rid: df for rid, df in episodes.groupby("run_id")}
    table = runs.reset_index(drop=True)
    per_run = []
    for i, row in table.iterrows():
        rid = row["run_id"]
        r = rules[rid]
        series = {m: d.sort_values("episode") for m, d in by_run[rid].groupby("metric")}
        steps = series[C.EPISODE_STEPS]
        curve = series[r.solve.curve_metric]
        solved_ep = _float(row, f"metrics.{C.SOLVED_EPISODE}")
        flag = _float(row, f"metrics.{C.SOLVED}")
        solved = bool(flag == 1.0) if not np.isnan(flag) else not np.isnan(solved_ep)
        lengths = steps["value"].to_numpy(float)
        per_run.append((i, rid, r, series, steps, curve, solved, solved_ep, lengths))

    used_episodes = [len(p[8]) for p in per_run]
    used_steps = [float(np.sum(p[8])) for p in per_run]
    solved_all = [p[6] for p in per_run]
    n_ep = int(grid_episodes or common_horizon(used_episodes, solved_all))
    horizon = float(grid_steps or common_horizon(used_steps, solved_all))
    step_x = np.linspace(0.0, horizon, STEP_GRID_POINTS, endpoint=False)

    rows, ep_curves, st_curves = [], [], []
    for (i, rid, r, series, steps, curve, solved, solved_ep, lengths), used in zip(per_run, used_steps):
        values = curve["value"].to_numpy(float)
        level = final_rolling(values, r.solve.window_episodes) if solved else None
        ep_curves.append(resample_curve(curve["episode"], values, n_ep, solved, r.solve.window_episodes))
        smooth = pd.Series(values).rolling(ROLLING_WINDOW, min_periods=1).mean().to_numpy()
        st_curves.append(step_curve(lengths, smooth, step_x, level))
        solved_ok = solved and not np.isnan(solved_ep)
        ets = solved_ep if solved_ok else float(r.cap)
        if solved_ok:
            upto = steps["episode"].to_numpy() <= solved_ep
            ests = float(np.sum(lengths[upto]))
        else:
            ests = used if mixed else float(r.cap * r.max_steps)
        ev = series.get(C.EVAL_RETURN)
        updates = series.get(C.TRAIN_UPDATES)
        sps_series = series.get(C.PERF_SPS)
        row = table.iloc[i]
        resumed = _float(row, f"tags.{C.TAG_RESUMED_FROM}")
        startup = (
            startup_seconds(
                lengths,
                sps_series.set_index("episode")["value"].reindex(steps["episode"]).to_numpy(float),
                None if updates is None else updates.set_index("episode")["value"].reindex(steps["episode"]).to_numpy(),
                None if np.isnan(resumed) else int(resumed),
            )
            if sps_series is not None
            else float("nan")
        )
        wall = _float(row, f"metrics.{C.WALL_SECONDS}")
        steady = wall - (0.0 if np.isnan(startup) else startup)
        total_steps = _float(row, f"metrics.{C.TOTAL_ENV_STEPS}", used)
        rows.append(
            {
                "run_id": rid,
                "run_name": row.get("run_name"),
                "group": groups.iloc[i],
                "seed": row.get(f"params.{C.PARAM_SEED}"),
                "solved": solved,
                "episodes_to_solve": ets,
                "episodes_to_solve_censored": not solved_ok,
                "env_steps_to_solve": ests,
                "env_steps_to_solve_censored": not solved_ok,
                "auc": float(np.nanmean(ep_curves[-1])) if n_ep else float("nan"),
                "auc_steps": step_integral_mean(lengths, values, horizon, level),
                "final": final_rolling(values, ROLLING_WINDOW),
                "eval_return": float(ev["value"].iloc[-1]) if ev is not None and len(ev) else float("nan"),
                "episodes": _float(row, f"metrics.{C.EPISODES}", float(len(lengths))),
                "episode_cap": float(r.cap),
                "max_steps": float(r.max_steps),
                "curve_metric": r.solve.curve_metric,
                "total_env_steps": total_steps,
                "wall_seconds": wall,
                "sps": _float(row, f"metrics.{C.SPS}"),
                "startup_seconds": startup,
                "steady_wall_seconds": steady,
                "steady_sps": total_steps / steady if steady > 0 else float("nan"),
                "slots": _slots(row),
            }
        )
    scores = pd.DataFrame(rows)
    return RunScores(
        scores=scores,
        episodes=Curves(np.arange(n_ep), np.vstack(ep_curves), "episodes"),
        steps=Curves(step_x, np.vstack(st_curves), "env steps"),
        curve_metrics=tuple(dict.fromkeys(scores["curve_metric"])),
        has_eval=bool(scores["eval_return"].notna().any()),
    )


def smooth_episode_curves(curves: Curves) -> Curves:
    """The per-episode curves as plotted: trailing rolling mean of ROLLING_WINDOW episodes."""
    return Curves(curves.x, rolling(curves.values, ROLLING_WINDOW), curves.unit)


def by_group(scores: pd.DataFrame, column: str, order: Sequence[str]) -> dict:
    """``{group: array of the column}`` in the given group order."""
    return {g: scores.loc[scores["group"] == g, column].to_numpy() for g in order}
