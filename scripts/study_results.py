"""Regenerate the study's results page (docs/results.md + docs/img/results/) from a store.

    python scripts/study_results.py --tracking-uri sqlite:///mlflow.db
    python scripts/study_results.py --tracking-uri sqlite:////work/study_pilot/mlflow.db \
        --launch-log /work/study_pilot/pilot.log --launch-log /work/study_pilot/study.log

Reads the `experiment=study` runs (experiment `per-study`) with `analysis/`:
per task, each run's scores in both budget units, the aggregate tables with
their 95% bootstrap CIs, and P(X better than Y) with its CI for the design's
comparisons (full PER vs uniform; leave-one-out: full PER vs each ablation;
add-one-in: each ingredient on top of prioritisation alone; the seed notebook).
A comparison is *decided* when its CI excludes 0.5; an undecided one gets the
seeds per group the bootstrap says it would take at the observed effect.

Everything on the page (the three sentences at the top included) is computed
here from the store; nothing is typed in by hand. The wall time is the launch
logs' (`scripts/run_study.sh` writes one line per seed's sweep: its wall time,
commit, parallel jobs and load), summed over every sweep that ran; without a
log, the runs' own first start to last end in the store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis import plots  # noqa: E402
from analysis.analyse import Analysis, analyse  # noqa: E402
from analysis.load import load_runs  # noqa: E402
from analysis.plan import seeds_needed  # noqa: E402
from analysis.stats import CI, CONFIDENCE, compare  # noqa: E402
from per_exp import contract as C  # noqa: E402
from per_exp import machine as per_exp_machine  # noqa: E402

EXPERIMENT = "per-study"
LOO = ("alpha", "is", "max_new", "sampled_refresh", "stratified")
INGREDIENT = {
    "alpha": "priority exponent alpha (off: 1)",
    "is": "importance-sampling correction",
    "max_new": "max priority for new transitions",
    "sampled_refresh": "sampled refresh (off: full refresh at episode end)",
    "stratified": "stratified draws (off: i.i.d.)",
    "rank": "rank-based instead of proportional",
    "warmup": "30 warm-up episodes of uniform replay",
}
SEEDS_TARGET = 50  # issue 13's bar per cell
POWER = 0.8


@dataclass(frozen=True)
class Pair:
    family: str  # "PER vs uniform", "leave-one-out", "add-one-in", "seed notebook"
    x: str
    y: str
    what: str  # what P(x better than y) > 0.5 would mean


def design_pairs() -> list[Pair]:
    pairs = [Pair("PER vs uniform", "per", "uniform", "full PER beats uniform replay")]
    for ing in LOO:
        pairs.append(Pair("leave-one-out", "per", f"per_no_{ing}", f"removing the {INGREDIENT[ing]} hurts"))
    pairs.append(Pair("leave-one-out", "per", "per_rank", "proportional beats rank-based (in full PER)"))
    pairs.append(Pair("leave-one-out", "per", "per_warmup", "adding the seed's warm-up hurts full PER"))
    pairs.append(Pair("add-one-in", "prio", "uniform", "prioritisation alone beats uniform"))
    for ing in (*LOO, "rank", "warmup"):
        pairs.append(Pair("add-one-in", f"prio_{ing}", "prio", f"adding the {INGREDIENT[ing]} to prioritisation helps"))
    pairs.append(Pair("seed notebook", "per", "seed_notebook", "full PER beats the seed notebook's agent"))
    pairs.append(Pair("seed notebook", "seed_notebook", "uniform", "the seed notebook's agent beats uniform"))
    return pairs


# Each task and score holds N_PAIRS comparisons: at 95% each, about one would exclude 0.5 by chance
# if nothing differed. Bonferroni over a task's comparisons of one score is the stricter reading.
N_PAIRS = len(design_pairs())
BONFERRONI = 1 - 0.05 / N_PAIRS

# the scores compared: column, higher is better, label
SCORES = (
    ("env_steps_to_solve", False, "env steps to solve"),
    ("auc_steps", True, "AUC per env step"),
    ("eval_return", True, "final greedy eval return"),
)


def cell_of(overrides: str) -> str:
    for token in str(overrides).split():
        key, _, value = token.partition("=")
        if key == "ablation":
            return value
    return "per"  # the default config is the `per` cell


@dataclass(frozen=True)
class Launch:
    """One sweep of seeds first..last (every env x cell), as a launch log records it."""

    first: int
    last: int
    rc: int
    wall_s: float
    commit: str  # "" in logs written before run_study.sh recorded it
    jobs: int  # 0 when the log does not say


_SEEDS = r"^seed (\d+)(?:-(\d+))?"
_START = re.compile(_SEEDS + r" start \S+ load [\d. ]+?(?: code (\S+) jobs (\d+))?\s*$")
_END = re.compile(_SEEDS + r" rc (\d+) wall (\d+) s")


def read_launch_log(text: str, default_jobs: int = 0) -> list[Launch]:
    """Every finished sweep of a run_study.sh log (a start line without an end line is left out)."""
    started: dict[tuple[int, int], tuple[str, int]] = {}
    out = []
    for line in text.splitlines():
        if m := _START.match(line):
            seeds = (int(m[1]), int(m[2] or m[1]))
            started[seeds] = (m[3] or "", int(m[4]) if m[4] else default_jobs)
        elif m := _END.match(line):
            seeds = (int(m[1]), int(m[2] or m[1]))
            commit, jobs = started.get(seeds, ("", default_jobs))
            out.append(Launch(*seeds, int(m[3]), float(m[4]), commit, jobs))
    return out


@dataclass
class TaskResult:
    env: str
    res: Analysis
    scores: pd.DataFrame  # one row per run, with a `cell` column
    comparisons: pd.DataFrame
    runs: pd.DataFrame


def analyse_task(uri: str, env: str, reps: int) -> TaskResult:
    loaded = load_runs(EXPERIMENT, tracking_uri=uri, progress=False, where=[("env.name", env)])
    res = analyse(loaded, reps=reps)
    cells = loaded.runs.set_index("run_id")[f"tags.{C.TAG_OVERRIDES}"].map(cell_of)
    scores = res.scores.copy()
    scores["cell"] = scores["run_id"].map(cells)
    rows = []
    for pair in design_pairs():
        gx, gy = scores[scores["cell"] == pair.x], scores[scores["cell"] == pair.y]
        if gx.empty or gy.empty:
            continue
        for col, higher, label in SCORES:
            x, y = gx[col].to_numpy(float), gy[col].to_numpy(float)
            if col == "env_steps_to_solve":  # one cap: an unsolved run failed the budget, below every solve
                x = np.where(gx[f"{col}_censored"].to_numpy(bool), np.inf, x)
                y = np.where(gy[f"{col}_censored"].to_numpy(bool), np.inf, y)
            x, y = x[~np.isnan(x)], y[~np.isnan(y)]
            if len(x) == 0 or len(y) == 0:
                continue
            c = compare(x, y, higher_is_better=higher, reps=reps, levels=(CONFIDENCE, BONFERRONI))
            lo, hi = c.intervals[CONFIDENCE]
            decided = c.has_ci and c.excludes_half(CONFIDENCE)
            strict = c.has_ci and c.excludes_half(BONFERRONI)
            need = np.nan if decided else seeds_needed(c, CONFIDENCE, POWER)
            rows.append(
                dict(
                    family=pair.family,
                    x=pair.x,
                    y=pair.y,
                    what=pair.what,
                    score=label,
                    p=c.p,
                    lo=lo,
                    hi=hi,
                    n_x=len(x),
                    n_y=len(y),
                    decided=decided,
                    bonferroni=strict,
                    seeds_needed=need,
                )
            )
    return TaskResult(env, res, scores, pd.DataFrame(rows), loaded.runs)


# --------------------------------------------------------------------------- figures


def forest_figure(t: TaskResult, score: str):
    d = t.comparisons[t.comparisons["score"] == score].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(d) + 1.2))
    ys = np.arange(len(d))[::-1]
    for yv, (_, r) in zip(ys, d.iterrows(), strict=True):
        color = "#1b7837" if r["decided"] and r["p"] > 0.5 else ("#b2182b" if r["decided"] else "#555555")
        if not np.isnan(r["lo"]):
            ax.plot([r["lo"], r["hi"]], [yv, yv], color=color, lw=2)
        ax.plot([r["p"]], [yv], "o", color=color)
    ax.axvline(0.5, color="k", lw=0.8, ls="--")
    ax.set_yticks(ys, [f"{r.x} vs {r.y}" for r in d.itertuples()], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"P(left better than right), {score}; 95% bootstrap CI")
    ax.set_title(f"{t.env}: the design's comparisons", fontsize=10)
    fig.tight_layout()
    return fig


def curves_figure(t: TaskResult, cells=("uniform", "prio", "per", "seed_notebook")):
    res = t.res
    label_of = t.scores.groupby("cell")["group"].first()
    bands = {c: res.step_bands[label_of[c]] for c in cells if c in label_of.index}
    palette = plots.colors(list(bands))
    metric = res.curve_metrics[0]
    rule = next(iter(res.rules.values()))
    lengths = metric == C.EPISODE_STEPS
    ylabel = ("Episode length" if lengths else "Return") + " (rolling mean of 10)"
    return plots.learning_curves_figure(
        bands,
        palette,
        res.step_curves.x,
        ylabel,
        xlabel="Env steps",
        success_level=float(rule.solve.min_length if lengths else rule.solve.threshold),
        success_label="success length" if lengths else "solve threshold (mean of 100)",
        floor=0.0 if lengths else None,
        ceil=float(rule.max_steps) if lengths else 0.0,
    )


# --------------------------------------------------------------------------- page


def fmt(x: float, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def score_table(t: TaskResult, order: list[str]) -> str:
    lines = [
        "| cell | runs | solved | env steps to solve, IQM [95% CI] | AUC per env step, IQM [CI] "
        "| final eval return, IQM [CI] |",
        "|---|---|---|---|---|---|",
    ]
    label_of = t.scores.groupby("cell")["group"].first()
    for cell in order:
        if cell not in label_of.index:
            continue
        g = label_of[cell]
        sub = t.scores[t.scores["cell"] == cell]
        parts = []
        for col in ("env_steps_to_solve", "auc_steps", "eval_return"):
            tab = t.res.tables.get(col)
            if tab is None:
                parts.append("-")
                continue
            r = tab[(tab["group"] == g) & (tab["aggregate"] == "IQM")].iloc[0]
            interval = (
                f" [{fmt(r['lo'])}, {fmt(r['hi'])}]"
                if r["interval"] == CI  # the table's own label ("95% CI"): a literal "CI" never matched
                else f" (range {fmt(r['lo'])} to {fmt(r['hi'])})"
            )
            parts.append(fmt(r["point"], 1 if col != "env_steps_to_solve" else 0) + interval)
        lines.append(f"| `{cell}` | {len(sub)} | {int(sub['solved'].sum())}/{len(sub)} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def comparison_table(t: TaskResult, score: str) -> str:
    d = t.comparisons[t.comparisons["score"] == score]
    lines = [
        "| comparison | P(X better than Y) [95% CI] | decided? | seeds per group to decide at this effect |",
        "|---|---|---|---|",
    ]
    for r in d.itertuples():
        ci = f"[{r.lo:.2f}, {r.hi:.2f}]" if not np.isnan(r.lo) else "(no CI: too few runs)"
        verdict = ("yes: " + ("X better" if r.p > 0.5 else "Y better")) if r.decided else "no"
        if r.bonferroni:
            verdict += " (also after Bonferroni)"
        need = "-" if r.decided else (fmt(r.seeds_needed) if np.isfinite(r.seeds_needed) else "no effect seen")
        if not r.decided and np.isnan(r.lo) and np.isfinite(r.seeds_needed):
            need += " (rough: fewer than 5 seeds)"
        lines.append(f"| `{r.x}` vs `{r.y}` ({r.what}) | {r.p:.2f} {ci} | {verdict} | {need} |")
    return "\n".join(lines)


def main_score(t: TaskResult) -> str:
    """The score a task's answer is read on: env steps to solve, or AUC per env step when no run solved."""
    return "env steps to solve" if bool(t.scores["solved"].any()) else "AUC per env step"


def headline(tasks: list[TaskResult], seeds: int, full_hours: float, study_hours: float | None = None) -> list[str]:
    """The answer in three sentences, from the numbers."""
    s1 = []
    for t in tasks:
        main = main_score(t)
        r = t.comparisons[(t.comparisons["x"] == "per") & (t.comparisons["y"] == "uniform")]
        r = r[r["score"] == main]
        if r.empty:
            continue
        r = r.iloc[0]
        better = {"env steps to solve": "solves in fewer env steps", "AUC per env step": "learns faster per env step"}
        verdict = (
            (f"PER {better[main]} than uniform replay" if r.p > 0.5 else f"uniform replay {better[main]} than PER")
            if r.decided
            else f"PER and uniform replay are not told apart on {main}"
        )
        if main != "env steps to solve":
            verdict += " (no run reached the solve threshold within its budget)"
        ci = f"95% CI [{r.lo:.2f}, {r.hi:.2f}]" if not np.isnan(r.lo) else "no CI: too few seeds"
        s1.append(f"on {t.env} {verdict} (P(PER better) = {r.p:.2f}, {ci})")
    decided, n_ing, n_dec, n_all = [], 0, 0, 0
    for t in tasks:
        d = t.comparisons[t.comparisons["score"] == main_score(t)]
        n_all += len(d)
        n_dec += int(d["decided"].sum())
        d = d[d["family"] != "PER vs uniform"]
        n_ing += len(d)
        for r in d[d["decided"]].itertuples():
            winner, loser = (r.x, r.y) if r.p > 0.5 else (r.y, r.x)
            star = "*" if r.bonferroni else ""
            decided.append(f"{winner} beats {loser}{star} on {t.env} (P = {max(r.p, 1 - r.p):.2f})")
    s2 = (
        "Decided among the ingredient comparisons (95% CI excludes 0.5; * also after Bonferroni over the "
        f"task's {N_PAIRS} comparisons): " + "; ".join(decided) + "."
        if decided
        else f"None of the {n_ing} ingredient comparisons is decided."
        if n_ing
        else "These runs hold no ingredient cells to compare."
    )
    if seeds >= SEEDS_TARGET:
        took = f", in {study_hours:.1f} hours of wall time on this 2-core machine" if study_hours else ""
        s3 = f"The study ran {seeds} seeds per cell{took}: {n_dec} of {n_all} comparisons are decided."
    else:
        s3 = (
            f"This is a pilot of {seeds} seed(s) per cell, below the study's bar of {SEEDS_TARGET}: "
            f"{n_dec} of {n_all} comparisons are decided, and the full study "
            f"would take about {full_hours:.{0 if full_hours >= 10 else 1}f} hours on this 2-core machine."
        )
    first = "; ".join(s1)
    return [first[:1].upper() + first[1:] + ".", s2, s3]


def machine() -> str:
    py = platform.python_version()
    here = per_exp_machine.fingerprint()  # CPU model and BLAS kernels, as a run's per_exp.machine tag says them
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({here}), Python {py}"


def machines_line(runs: pd.DataFrame) -> str:
    """The machines the runs say they were trained on (tag per_exp.machine), never this script's own."""
    col = f"tags.{C.TAG_MACHINE}"
    tagged = runs[col].dropna().value_counts().sort_index() if col in runs else pd.Series(dtype=int)
    parts = [f"{m} ({n} runs)" for m, n in tagged.items()]
    untagged = len(runs) - int(tagged.sum())
    if untagged:
        parts.append(
            f"not recorded on {untagged} runs (they predate the `{C.TAG_MACHINE}` tag); this page was generated on "
            f"{machine()}"
        )
    return "; ".join(parts)


README_START = "<!-- study-answer: written by scripts/study_results.py -->"
README_END = "<!-- /study-answer -->"


def write_readme_answer(readme: Path, sentences: list[str]) -> None:
    """Put the three sentences between the README's study-answer markers (the rest is left alone)."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    readme.write_text(text[:start] + "\n" + " ".join(sentences) + "\n" + text[end:], encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracking-uri", required=True)
    ap.add_argument("--out", default=str(ROOT / "docs"), help="docs folder: writes results.md and img/results/")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument(
        "--workers", type=int, default=2, help="parallel jobs, for launch-log lines (or a store) that do not say"
    )
    ap.add_argument(
        "--launch-log",
        action="append",
        default=[],
        help="a scripts/run_study.sh log (per-seed wall time, commit, jobs, load); repeat for several launches",
    )
    ap.add_argument(
        "--readme", default=str(ROOT / "README.md"), help="README whose study-answer block gets the three sentences"
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    img = out / "img" / "results"
    img.mkdir(parents=True, exist_ok=True)

    probe = load_runs(EXPERIMENT, tracking_uri=args.tracking_uri, progress=False)
    envs = sorted(probe.runs["params.env.name"].dropna().unique(), key=lambda e: (not e.startswith("cartpole"), e))
    tasks = [analyse_task(args.tracking_uri, env, args.reps) for env in envs]
    runs = probe.runs
    seeds_per_cell = int(min(t.scores.groupby("cell").size().min() for t in tasks))
    n_cells = sum(t.scores["cell"].nunique() for t in tasks)
    span = (runs["end_time"].max() - runs["start_time"].min()) / 1000.0
    train = float(runs[f"metrics.{C.WALL_SECONDS}"].sum())
    logs = [(path, Path(path).read_text()) for path in args.launch_log]
    launches = [launch for _, text in logs for launch in read_launch_log(text, default_jobs=args.workers)]
    # the study's wall time: every seed sweep the logs saw (a re-launched seed counts twice: it ran twice);
    # without a log, the store's first start to last end (which would count the gaps between launches)
    study_s = sum(launch.wall_s for launch in launches) if launches else span
    full_runs = 2 * 18 * SEEDS_TARGET
    # a launch still running has runs in the store but no wall time in the log yet
    runs_timed = sum(x.last - x.first + 1 for x in launches) * n_cells if launches else len(runs)
    full_hours = study_s * full_runs / runs_timed / 3600.0
    hours_txt = f"{full_hours:.{0 if full_hours >= 10 else 1}f}"
    commits = runs[f"tags.{C.TAG_GIT_COMMIT}"].fillna("unknown").value_counts().sort_index()
    dirty = sorted(runs[f"tags.{C.TAG_GIT_DIRTY}"].dropna().unique())
    started = dt.datetime.fromtimestamp(runs["start_time"].min() / 1000, dt.timezone.utc)
    ended = dt.datetime.fromtimestamp(runs["end_time"].max() / 1000, dt.timezone.utc)
    full = seeds_per_cell >= SEEDS_TARGET

    figs = []
    for t in tasks:
        for name, fig in (
            (f"{t.env}_steps_to_solve", forest_figure(t, "env steps to solve")),
            (f"{t.env}_auc_steps", forest_figure(t, "AUC per env step")),
            (f"{t.env}_curves", curves_figure(t)),
        ):
            fig.savefig(img / f"{name}.png", dpi=110, bbox_inches="tight")
            plt.close(fig)
            figs.append(name)

    order = [
        "uniform",
        "prio",
        *[f"prio_{i}" for i in (*LOO, "rank", "warmup")],
        "per",
        *[f"per_no_{i}" for i in LOO],
        "per_rank",
        "per_warmup",
        "seed_notebook",
    ]
    per_env_wall = {
        t.env: (float(t.scores["wall_seconds"].median()), float(t.scores["total_env_steps"].median())) for t in tasks
    }
    md = ["# Results: does PER help, and which part?", ""]
    md += ['!!! abstract "The answer so far"', ""]
    md += ["    " + s for s in headline(tasks, seeds_per_cell, full_hours, study_s / 3600.0)]
    md += [
        "",
        "This page is generated by `scripts/study_results.py` from the study's MLflow store; "
        "every number on it is computed from the runs (re-run the script to refresh it).",
        "",
        "## What was run",
        "",
        "The design is the preset `conf/experiment/study.yaml`: two tasks (`env=cartpole_v0`, CartPole's "
        "length rule, 500 episodes; `env=acrobot_v1`, mean return of the last 100 episodes >= -100, "
        "500 episodes) x 18 cells (`conf/ablation/`) x seeds, greedy evaluation every 50 episodes and "
        "after the last one (10 episodes). MountainCar-v0 is left out: a default-config run stayed at "
        "-200 (never reached the flag) for all 500 episodes, so it measures exploration, not replay.",
        "",
        "| cell | what it is |",
        "|---|---|",
        "| `uniform` | uniform replay: prioritisation off (full PER's leave-one-out of prioritisation itself) |",
        "| `per` | full PER, proportional (Schaul et al. 2016): every ingredient on |",
        *[f"| `per_no_{i}` | leave-one-out: full PER without the {INGREDIENT[i]} |" for i in LOO],
        "| `per_rank` | leave-one-out: full PER, rank-based instead of proportional |",
        "| `per_warmup` | full PER plus the seed's 30 warm-up episodes |",
        "| `prio` | add-one-in: prioritisation alone (alpha 1, no IS, new priority 0, full refresh, i.i.d. draws) |",
        *[f"| `prio_{i}` | add-one-in: prioritisation plus the {INGREDIENT[i]} |" for i in (*LOO, "rank", "warmup")],
        "| `seed_notebook` | the seed notebook's agent as is (on CartPole-v0 exactly `experiment=seed_notebook`) |",
        "",
        "Reading the cells: every ingredient other than prioritisation acts on priorities, so add-one-in "
        "switches it on over `prio`, not over `uniform`. Ingredients interact: `prio_sampled_refresh` pairs "
        "the sampled refresh with `prio`'s new priority 0, so a new transition keeps the smallest priority "
        "until it is drawn, which then almost never happens (the paper pairs sampled refresh with max "
        "priority for new transitions); `prio_rank` ranks with alpha 1, p = 1/rank, a far steeper "
        "distribution than the paper's rank alpha 0.7.",
        "",
        "Commands: the study ran one sweep per seed (`scripts/run_study.sh`), so that it could stop "
        "between seeds and go on later; a re-launched seed skips its FINISHED runs. One sweep of the "
        "whole design is the same set of runs:",
        "",
        "```bash",
        "STORE=$PWD/mlflow.db FIRST=0 LAST=49 JOBS=2 bash scripts/run_study.sh >> study.log  # seed by seed",
        "python -m per_exp.train -m experiment=study hydra/launcher=joblib hydra.launcher.n_jobs=2 \\",
        "    tracking.uri=sqlite:///mlflow.db                                                # or all at once",
        "python scripts/study_results.py --tracking-uri sqlite:///mlflow.db --launch-log study.log",
        "```",
        "",
        f"- runs: {len(runs)} FINISHED ({seeds_per_cell} seed(s) in every one of {n_cells} env x cell groups)",
        "- commit: "
        + ", ".join(f"`{str(c)[:12]}` ({n} runs)" for c, n in commits.items())
        + f" (dirty: {', '.join(dirty)}); every run's own commit is its `{C.TAG_GIT_COMMIT}` tag",
        f"- date: {started:%Y-%m-%d %H:%M} to {ended:%Y-%m-%d %H:%M} UTC",
        "- machine: " + machines_line(runs) + "; shared with other work (load below)",
    ]
    if launches:
        md.append(
            f"- wall time: **{study_s / 3600:.2f} h** in all, the sum of {len(launches)} sweeps' wall times "
            f"in the launch log (below); {train / 3600:.2f} h of training summed over runs"
        )
        phases: dict[tuple[str, int, bool], list[Launch]] = {}
        for x in launches:
            phases.setdefault((x.commit, x.jobs, x.last > x.first), []).append(x)
        for (commit, jobs, several), ls in phases.items():
            per_seed = np.array([x.wall_s / (x.last - x.first + 1) for x in ls])
            first, last = min(x.first for x in ls), max(x.last for x in ls)
            n_seeds = sum(x.last - x.first + 1 for x in ls)
            md.append(
                f"  - seeds {first}-{last}: {len(ls)} sweep(s) of {'several seeds' if several else 'one seed'}"
                + (f", code `{commit}`" if commit else "")
                + f", {jobs or '?'} job(s) at a time: {sum(x.wall_s for x in ls) / 3600:.2f} h for {n_seeds} "
                f"seeds, {np.median(per_seed):.0f} s per seed (median"
                + (f"; range {per_seed.min():.0f}-{per_seed.max():.0f} s as the load changed)" if len(ls) > 1 else ")")
            )
    else:
        md.append(
            f"- wall time: {span / 60:.1f} min from the first run's start to the last run's end, "
            f"{args.workers} jobs in parallel; {train / 3600:.2f} h of training summed over runs"
        )
    md += [
        f"- per run on {env}: median {w:.0f} s from its start to its end, for {st:,.0f} env steps"
        for env, (w, st) in per_env_wall.items()
    ]
    md.append(
        "  (a run of a grouped sweep trains beside the other runs of its group in one process, so this is "
        f"the time it shared, not its own compute: the study's wall time per run is {study_s / runs_timed:.1f} s)"
    )
    if not full:
        md.append(
            f"- the full study ({full_runs} runs: 2 tasks x 18 cells x {SEEDS_TARGET} seeds) at this pace: "
            f"about **{hours_txt} hours** on this machine ({study_s / runs_timed:.1f} s of wall time per run, "
            "load included). Not run yet."
        )
    for path, text in logs:
        md += ["", f"The launch log `{Path(path).name}` (per-seed sweep wall time and the machine's load):", ""]
        md += ["```", *text.strip().splitlines(), "```"]
    for t in tasks:
        rule = next(iter(t.res.rules.values()))
        md += [
            "",
            f"## {t.env}",
            "",
            f"Solve rule: {rule.solve}; cap {rule.cap} episodes of at most {rule.max_steps} steps. "
            'An unsolved run ranks below every solved run in "env steps to solve" (the IQM counts it at '
            "its cap's budget). Intervals are 95% stratified-bootstrap CIs over seeds (seeds' range below "
            f"{5} runs).",
            "",
            score_table(t, order),
            "",
            f"![{t.env} learning curves](img/results/{t.env}_curves.png)",
            "",
            f"### Comparisons on env steps to solve ({t.env})",
            "",
            comparison_table(t, "env steps to solve"),
            "",
            f"![{t.env}: comparisons on env steps to solve](img/results/{t.env}_steps_to_solve.png)",
            "",
            f"### Comparisons on AUC per env step ({t.env})",
            "",
            comparison_table(t, "AUC per env step"),
            "",
            f"![{t.env}: comparisons on AUC per env step](img/results/{t.env}_auc_steps.png)",
        ]
        if "final greedy eval return" in set(t.comparisons["score"]):
            md += ["", f"### Comparisons on the final greedy evaluation return ({t.env})", ""]
            md += [comparison_table(t, "final greedy eval return")]
    allc = pd.concat([t.comparisons.assign(env=t.env) for t in tasks])
    dec = allc[allc["decided"]]
    und = allc[~allc["decided"]]
    md += [
        "",
        "## What is decided, and what is not",
        "",
        f"{len(dec)} of {len(allc)} comparisons (tasks x pairs x scores) have a 95% CI on P(X better than Y) "
        f"that excludes 0.5; {int(allc['bonferroni'].sum())} also exclude it at the Bonferroni level over a task's "
        f"{N_PAIRS} comparisons of one score ({BONFERRONI:.2%} intervals). With no correction, about "
        f"{0.05 * len(allc):.0f} of the {len(allc)} would exclude 0.5 by chance if no cell differed from another.",
        "",
    ]
    md += [
        f"- decided{' (also after Bonferroni)' if r.bonferroni else ''}: `{r.x}` vs `{r.y}` on {r.env}, "
        f"{r.score}: P = {r.p:.2f} [{r.lo:.2f}, {r.hi:.2f}]"
        for r in dec.itertuples()
    ]
    reach = und[np.isfinite(und["seeds_needed"].astype(float))]
    md += [
        "",
        f"Undecided: {len(und)}. At their observed effects, {int((reach['seeds_needed'] <= SEEDS_TARGET).sum())} "
        f"would be expected to decide within {SEEDS_TARGET} seeds per group (power {POWER}); "
        f"{int((reach['seeds_needed'] > SEEDS_TARGET).sum())} need more, and "
        f"{len(und) - len(reach)} have no CI or an effect too small to plan for. The study's N "
        f"({SEEDS_TARGET} seeds per cell, issue 13's bar) was fixed before its pilot, and the pilot's reading "
        "stopped nothing and added nothing: the test at the full N is one look at a fixed N, with the pilot's "
        "seeds part of it. Seeds added beyond it for the undecided comparisons would be a second look, to be "
        "read at the analysis page's corrected level (97.5% CIs at both looks).",
        "",
        "Caveats: one hyperparameter setting (the default agent, tuned for nothing here); the inverse-episode "
        "exploration schedule gives Acrobot little exploration; the runs shared the machine with other jobs, "
        "so wall times carry that load.",
        "",
    ]
    (out / "results.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    if args.readme:
        write_readme_answer(Path(args.readme), headline(tasks, seeds_per_cell, full_hours, study_s / 3600.0))
    print(f"wrote {out / 'results.md'} and {len(figs)} figures in {img}")
    for s in headline(tasks, seeds_per_cell, full_hours, study_s / 3600.0):
        print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
