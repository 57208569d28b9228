"""``python -m analysis.report``: a sweep's runs -> figures, report.md, report.html.

    python -m analysis.report --experiment per-cartpole --out reports/example
    python -m analysis.report --experiment per-cartpole --sweep <parent run id> --out reports/sweep1
    python -m analysis.report --experiment per-cartpole --tracking-uri sqlite:///path/mlflow.db --out DIR

The report folder is also logged as artifacts (under ``report/``) of the sweep's
parent run: the ``--sweep`` run, else the latest sweep parent run in the
experiment (``--no-log`` skips this). Bad input prints one line on stderr and
exits with status 2.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import html
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from per_exp import contract as C
from per_exp import credentials

from . import plots
from .axes import Axes, axis_values, find_axes, group_labels, group_order
from .load import Loaded, LoadError, latest_sweep_parent, load_runs, resolve_tracking_uri
from .stats import (
    REPS,
    ROLLING_WINDOW,
    SCORES,
    aggregate_table,
    by_group,
    curve_band,
    improvement_matrix,
    performance_profile,
    rolling,
    run_scores,
)

FIGURES = "figures"


# --------------------------------------------------------------------------- markdown helpers


def md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines)


def _fmt_number(x: float | None, digits: int = 1) -> str:
    """`x` with `digits` decimals, "n/a" when missing."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def fmt_ci(point: float, lo: float, hi: float, digits: int = 1) -> str:
    if np.isnan(lo) or np.isnan(hi):
        return f"{_fmt_number(point, digits)} (CI n/a)"
    return f"{_fmt_number(point, digits)} [{_fmt_number(lo, digits)}, {_fmt_number(hi, digits)}]"


def score_table(agg: pd.DataFrame, scores: pd.DataFrame, order: Sequence[str], with_solved: bool) -> pd.DataFrame:
    rows = []
    for g in order:
        a = agg[agg["group"] == g].set_index("aggregate")
        s = scores[scores["group"] == g]
        row = {"group": g, "runs": len(s)}
        if with_solved:
            row["solved"] = f"{int(s['solved'].sum())}/{len(s)} ({s['solved'].mean():.0%})"
        for name in ("IQM", "mean", "median"):
            r = a.loc[name]
            row[f"{name} [95% CI]"] = fmt_ci(r["point"], r["lo"], r["hi"])
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the analysis


@dataclass
class Analysis:
    """Everything the report shows, as frames and arrays (no files written)."""

    axes: Axes
    order: list[str]  # the groups, in axis-value order
    scores: pd.DataFrame  # one row per run (stats.run_scores), with a column per axis
    curves: np.ndarray  # runs x grid episodes, the learning curve of each row of `scores`
    tables: dict[str, pd.DataFrame]  # score name -> aggregate table (stats.aggregate_table)
    improvement: pd.DataFrame  # probability of improvement, every ordered pair of groups
    profile: pd.DataFrame  # performance profile of episodes to solve
    bands: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # group -> IQM curve and its CI band
    values: dict[str, list[str]]  # axis -> its values in order

    @property
    def grid_len(self) -> int:
        return int(self.curves.shape[1])


def analyse(loaded: Loaded, reps: int = REPS, seed: int = 0, grid_episodes: int | None = None, ignore=()) -> Analysis:
    """Everything the report shows (no files written)."""
    runs = loaded.runs
    axes = find_axes(runs, ignore=ignore)
    groups = group_labels(runs, axes)
    order = group_order(runs, axes)
    scores, curves = run_scores(runs, loaded.episodes, groups, grid_len=grid_episodes)
    for a in axes.axes:
        scores[a] = runs[f"params.{a}"].astype(str).to_numpy()
    tables = {
        name: aggregate_table(by_group(scores, sc.column, order), reps=reps, seed=seed) for name, sc in SCORES.items()
    }
    ets = SCORES["episodes_to_solve"]
    improvement = (
        improvement_matrix(by_group(scores, ets.column, order), higher_is_better=False, reps=reps, seed=seed)
        if len(order) > 1
        else pd.DataFrame(columns=["x", "y", "p", "lo", "hi"])
    )
    # solved_episode <= cap - 1 < cap (the unsolved score), so a never-solved run never counts as solved
    taus = np.arange(0, int(scores["episode_cap"].max()))
    profile = performance_profile(
        by_group(scores, ets.column, order), taus, higher_is_better=False, reps=min(reps, 1000), seed=seed
    )
    smooth = rolling(curves, ROLLING_WINDOW)
    bands = {}
    for g in order:
        idx = np.flatnonzero(scores["group"].to_numpy() == g)
        bands[g] = curve_band(smooth[idx], "IQM", reps=min(reps, 1000), seed=seed)
    return Analysis(
        axes=axes,
        order=order,
        scores=scores,
        curves=curves,
        tables=tables,
        improvement=improvement,
        profile=profile,
        bands=bands,
        values={a: axis_values(runs, a) for a in axes.axes},
    )


def make_figures(res: Analysis, runs: pd.DataFrame, out: Path) -> dict:
    """Write every figure (PNG + SVG) into ``out/figures``; returns name -> [paths]."""
    plots.style()
    figdir = out / FIGURES
    order, scores, palette = res.order, res.scores, plots.colors(res.order)
    success = None
    success_col = f"params.{C.PARAM_SUCCESS_LENGTH}"
    if success_col in runs and runs[success_col].nunique() == 1:
        success = float(runs[success_col].iloc[0])
    written = {}
    written["learning_curves"] = plots.save(
        plots.learning_curves_figure(res.bands, palette, success, ROLLING_WINDOW), figdir, "learning_curves"
    )
    written["episodes_to_solve"] = plots.save(
        plots.episodes_to_solve_figure(scores, res.tables["episodes_to_solve"], order, palette),
        figdir,
        "episodes_to_solve",
    )
    written["aggregates"] = plots.save(
        plots.aggregates_figure(res.tables, {k: SCORES[k].short for k in SCORES}, order, palette),
        figdir,
        "aggregates",
    )
    if len(res.axes.axes) >= 2:
        written["ablation_grid"] = plots.save(
            plots.ablation_grid_figure(scores, res.tables["episodes_to_solve"], res.axes.axes, res.values),
            figdir,
            "ablation_grid",
        )
    if len(order) > 1:
        written["probability_of_improvement"] = plots.save(
            plots.improvement_figure(res.improvement, order), figdir, "probability_of_improvement"
        )
    written["performance_profile"] = plots.save(
        plots.profile_figure(res.profile, order, palette), figdir, "performance_profile"
    )
    written["compute"] = plots.save(plots.compute_figure(scores, order, palette), figdir, "compute")
    return written


def _fig(name: str, caption: str) -> str:
    return f"![{caption}]({FIGURES}/{name}.png)\n\n*{caption}* ([SVG]({FIGURES}/{name}.svg))\n"


def render_markdown(loaded: Loaded, res: Analysis, written: dict, reps: int) -> str:
    """report.md: one section after another, each from its own function."""
    sections = [
        _md_header(loaded),
        _md_runs(loaded, res),
        _md_axes(res),
        _md_scores(res, reps),
        _md_ablation_grid() if "ablation_grid" in written else [],
        _md_learning_curves(),
        _md_improvement(res),
        _md_profile(),
        _md_compute(res),
        _md_fixed_config(res),
    ]
    return "\n".join(line for section in sections for line in section) + "\n"


def _seed_sort_key(s: str) -> tuple[int, str]:
    return (len(s), s)


def _md_header(loaded: Loaded) -> list[str]:
    runs = loaded.runs
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = [f"# Sweep report: {loaded.experiment_name}", ""]
    L.append(
        f"Generated {now} from `{loaded.tracking_uri}`; "
        + (f"sweep (parent run) `{loaded.sweep_id}`." if loaded.sweep_id else "all runs of the experiment.")
    )
    L.append("")
    commits = sorted(set(runs.get(f"tags.{C.TAG_GIT_COMMIT}", pd.Series(dtype=str)).dropna()))
    dirty_col = runs.get(f"tags.{C.TAG_GIT_DIRTY}", pd.Series(dtype=str))
    dirty = dirty_col.astype(str).str.lower().isin(["true", "1"]).any()
    if commits:
        L.append(
            f"Code: git commit {', '.join(c[:12] for c in commits)}"
            + (" (some runs from a dirty tree)" if dirty else "")
            + "."
        )
        L.append("")
    return L


def _md_runs(loaded: Loaded, res: Analysis) -> list[str]:
    runs, scores, order = loaded.runs, res.scores, res.order
    seed_col = f"params.{C.PARAM_SEED}"
    seeds = sorted(set(runs[seed_col].astype(str)), key=_seed_sort_key) if seed_col in runs else []
    L = ["## Runs", ""]
    L.append(
        f"**{len(runs)} runs** used out of {loaded.n_found} job runs found; "
        f"**{len(order)} group{'s' if len(order) != 1 else ''}**; "
        f"{len(seeds)} distinct seeds ({', '.join(seeds)}). The seed is the replicate."
    )
    L.append("")
    per_group = pd.DataFrame(
        [
            {
                "group": g,
                "runs": int((scores["group"] == g).sum()),
                "seeds": ", ".join(sorted(scores.loc[scores["group"] == g, "seed"].astype(str), key=_seed_sort_key)),
            }
            for g in order
        ]
    )
    L += [md_table(per_group), ""]
    L += ["### Left out", ""]
    if loaded.left_out.empty:
        L += ["No run was left out.", ""]
    else:
        L += [
            f"{len(loaded.left_out)} run(s) were left out of every statistic and figure:",
            "",
            md_table(loaded.left_out[["run_id", "run_name", "status", "reason"]]),
            "",
        ]
    for note in loaded.notes:
        L += [f"Note: {note}.", ""]
    return L


def _md_axes(res: Analysis) -> list[str]:
    axes = res.axes
    L = ["## Ablation axes", ""]
    if axes.axes:
        L.append("Params that vary across these runs (found automatically; `seed` is the replicate):")
        L.append("")
        for a in axes.axes:
            L.append(f"- `{a}`: {', '.join(res.values[a])}")
        if axes.aliases:
            L.append("")
            L.append(
                "Params that only follow an axis (folded into it): "
                + ", ".join(f"`{k}` (follows `{v}`)" for k, v in sorted(axes.aliases.items()))
                + "."
            )
    else:
        L.append("No param varies across these runs: one group, `all`.")
    L.append("")
    return L


def _md_scores(res: Analysis, reps: int) -> list[str]:
    L = [
        "## Scores",
        "",
        "- **Episodes to solve** (lower is better): the episode index at which the solve rule fired "
        f"(`{C.SOLVED_EPISODE}`); a run that never solved counts as its cap `{C.PARAM_MAX_EPISODES}`. "
        "The fraction solved is shown beside it.",
        f"- **AUC** (higher is better): mean episode length over the common grid of episodes "
        f"0..{res.grid_len - 1}; a run that stopped because it solved continues at its final rolling level "
        f"(mean of its last {ROLLING_WINDOW} episode lengths).",
        f"- **Final length** (higher is better): mean length of each run's own last {ROLLING_WINDOW} episodes.",
        "",
        f"Aggregates over runs of a group: interquartile mean (IQM, mean of the middle 50%), mean, median; "
        f"95% CIs from a percentile stratified bootstrap over runs ({reps} resamples). "
        f"A group with one run has no CI.",
        "",
    ]
    for name, sc in SCORES.items():
        table = score_table(res.tables[name], res.scores, res.order, with_solved=(name == "episodes_to_solve"))
        L += [f"### {sc.label}" + (" (lower is better)" if not sc.higher_is_better else ""), "", md_table(table), ""]
    L += [
        _fig(
            "episodes_to_solve",
            "Episodes to solve: one dot per seed (x: never solved, plotted at the cap), diamond: IQM with 95% CI.",
        ),
        _fig("aggregates", "IQM of each score with 95% CI."),
    ]
    return L


def _md_ablation_grid() -> list[str]:
    return [
        "## Ablation grid",
        "",
        _fig(
            "ablation_grid", "Episodes to solve per cell of the ablation: IQM with 95% CI (diamonds) and seeds (dots)."
        ),
    ]


def _md_learning_curves() -> list[str]:
    return [
        "## Learning curves",
        "",
        _fig(
            "learning_curves",
            f"{C.CURVE_METRIC} per episode (rolling mean of {ROLLING_WINDOW}), "
            "IQM across seeds with 95% bootstrap band; solved runs continue at their final rolling level.",
        ),
    ]


def _md_improvement(res: Analysis) -> list[str]:
    L = ["## Probability of improvement", ""]
    if len(res.order) <= 1:
        return L + ["Only one group: nothing to compare.", ""]
    imp = res.improvement
    t = pd.DataFrame(
        {
            "X": imp["x"],
            "Y": imp["y"],
            "P(X solves in fewer episodes than Y) [95% CI]": [
                fmt_ci(p, lo, hi, 2) for p, lo, hi in zip(imp["p"], imp["lo"], imp["hi"])
            ],
        }
    )
    return L + [
        "P(X > Y) = probability that a random run of X solves in fewer episodes than a random run of Y "
        "(ties count one half); 0.5 = no difference. CIs from a stratified bootstrap of both groups.",
        "",
        md_table(t),
        "",
        _fig("probability_of_improvement", "P(row group better than column group), episodes to solve."),
    ]


def _md_profile() -> list[str]:
    return [
        "## Performance profile",
        "",
        _fig(
            "performance_profile",
            "Fraction of runs solved within τ episodes (empirical distribution of "
            "episodes to solve), with pointwise 95% bootstrap bands. Higher and further left is better.",
        ),
    ]


def _md_compute(res: Analysis) -> list[str]:
    scores = res.scores

    def mean(g: str, col: str) -> float:
        return scores.loc[scores["group"] == g, col].mean()

    comp = pd.DataFrame(
        [
            {
                "group": g,
                "wall time per run, s (mean)": _fmt_number(mean(g, "wall_seconds")),
                "env steps/s (mean)": _fmt_number(mean(g, "sps"), 0),
                "env steps per run (mean)": _fmt_number(mean(g, "total_env_steps"), 0),
            }
            for g in res.order
        ]
    )
    return [
        "## Compute",
        "",
        md_table(comp),
        "",
        _fig("compute", "Wall time and env steps per second per run (dots: seeds, bar: mean)."),
    ]


def _md_fixed_config(res: Analysis) -> list[str]:
    if not res.axes.constant:
        return []
    return [
        "## Fixed configuration",
        "",
        "Params equal in every run used:",
        "",
        md_table(pd.DataFrame(sorted(res.axes.constant.items()), columns=["param", "value"])),
        "",
    ]


HTML_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.4; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
code {{ background: #f6f6f6; padding: 0 0.2rem; }}
</style></head><body>
{body}
</body></html>
"""


def safe_url(url: str) -> bool:
    """A relative path or an http(s) URL: never `javascript:`, `data:` or the like."""
    # browsers ignore control characters and spaces in a scheme: so must the check
    scheme = urlsplit(re.sub(r"[\x00-\x20\x7f]", "", url)).scheme.lower()
    return scheme in ("", "http", "https")


def render_html(md_text: str, title: str) -> str:
    """The report as HTML. Its text comes partly from the store (run names, params, tags, reasons),
    which anyone who can write a run controls: that text is shown, never interpreted."""
    import markdown
    from markdown.extensions import Extension
    from markdown.treeprocessors import Treeprocessor

    class SafeLinks(Treeprocessor):
        def run(self, root):
            for el in root.iter():
                for attr in ("href", "src"):
                    if attr in el.attrib and not safe_url(el.attrib[attr]):
                        del el.attrib[attr]

    class TextOnly(Extension):
        def extendMarkdown(self, md):
            # These two pass raw HTML through; without them the serializer escapes it as text.
            md.preprocessors.deregister("html_block")
            md.inlinePatterns.deregister("html")
            md.treeprocessors.register(SafeLinks(md), "safe_links", 0)

    body = markdown.markdown(md_text, extensions=["tables", TextOnly()])
    return HTML_TEMPLATE.format(title=html.escape(title), body=body)


# --------------------------------------------------------------------------- CLI


@dataclass
class Report:
    """What `build_report` made: the loaded runs, the analysis, the files, and the run it was logged to."""

    loaded: Loaded
    result: Analysis
    written: dict[str, list[Path]]  # figure name -> its files
    out: Path
    logged_to: str | None  # the sweep parent run holding the report under report/, if logged


def build_report(
    experiment: str,
    out: Path,
    sweep: str | None = None,
    tracking_uri: str | None = None,
    reps: int = REPS,
    seed: int = 0,
    grid_episodes: int | None = None,
    ignore=(),
    log: bool = True,
    progress: bool = True,
) -> Report:
    loaded = load_runs(experiment, sweep=sweep, tracking_uri=tracking_uri, progress=progress)
    if progress:
        print(f"analysis: statistics ({reps} bootstrap resamples) and figures", file=sys.stderr, flush=True)
    res = analyse(loaded, reps=reps, seed=seed, grid_episodes=grid_episodes, ignore=ignore)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = make_figures(res, loaded.runs, out)
    md_text = render_markdown(loaded, res, written, reps)
    (out / "report.md").write_text(md_text, encoding="utf-8")
    (out / "report.html").write_text(render_html(md_text, f"Sweep report: {experiment}"), encoding="utf-8")
    res.scores.to_csv(out / "scores.csv", index=False)
    logged_to = None
    if log:
        target = sweep or latest_sweep_parent(experiment, loaded.tracking_uri)
        if target:
            from mlflow.tracking import MlflowClient

            try:
                MlflowClient(tracking_uri=loaded.tracking_uri).log_artifacts(
                    target, str(out), artifact_path=C.ARTIFACT_REPORT_DIR
                )
                logged_to = target
            except Exception as e:  # the files are written either way
                print(f"analysis: warning: could not log the report to run {target}: {e}", file=sys.stderr)
        elif progress:
            print("analysis: no sweep parent run in the experiment; report not logged to MLflow", file=sys.stderr)
    return Report(loaded=loaded, result=res, written=written, out=out, logged_to=logged_to)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="per-cartpole", help="MLflow experiment name (default: per-cartpole)")
    p.add_argument("--sweep", default=None, help="parent run id of one sweep (default: all runs of the experiment)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    p.add_argument("--out", default=None, help="output folder (default: reports/<experiment>)")
    p.add_argument("--reps", type=int, default=REPS, help=f"bootstrap resamples (default {REPS})")
    p.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    p.add_argument(
        "--grid-episodes", type=int, default=None, help="length of the common episode grid (default: the longest run)"
    )
    p.add_argument("--ignore-param", action="append", default=[], help="param never to treat as an axis (repeatable)")
    p.add_argument("--no-log", action="store_true", help="do not log the report to the sweep's parent run")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from mlflow.exceptions import MlflowException

    out = Path(args.out or Path("reports") / args.experiment)
    if args.reps < 100:
        print("error: --reps must be at least 100", file=sys.stderr)
        return 2
    if args.grid_episodes is not None and args.grid_episodes < 1:
        print("error: --grid-episodes must be at least 1", file=sys.stderr)
        return 2
    try:
        r = build_report(
            args.experiment,
            out,
            sweep=args.sweep,
            tracking_uri=args.tracking_uri,
            reps=args.reps,
            seed=args.seed,
            grid_episodes=args.grid_episodes,
            ignore=tuple(args.ignore_param),
            log=not args.no_log,
            progress=not args.quiet,
        )
    except LoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except MlflowException as e:
        refused = credentials.access_error(e, resolve_tracking_uri(args.tracking_uri))
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {refused}" if refused else f"error: MLflow: {msg}", file=sys.stderr)
        return 2
    where = f"; logged to run {r.logged_to} under report/" if r.logged_to else ""
    print(
        f"report: {out / 'report.md'} and {out / 'report.html'} "
        f"({sum(len(v) for v in r.written.values())} figure files){where}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
