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
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from per_exp import contract as C
from per_exp import credentials

from . import plots
from .analyse import Analysis, analyse
from .load import Loaded, LoadError, latest_sweep_parent, load_runs, resolve_tracking_uri
from .plan import StoppingRule
from .render import FIGURES, PLAN_FLAG, plan_text, render_html, render_markdown
from .rules import ALLOW_FLAG, MixedRulesError
from .scores import SCORES, curve_name, label
from .stats import REPS, ROLLING_WINDOW


def _min_span(res: Analysis, scale: str) -> float:
    """The smallest axis span of a score: MIN_SPAN_FRACTION of its scale under these runs' settings."""
    s = res.scores
    size = {
        "cap": s["episode_cap"].max(),
        "budget": (s["episode_cap"] * s["max_steps"]).max(),
        "steps": s["max_steps"].max(),
    }[scale]
    return plots.MIN_SPAN_FRACTION * float(size)


def build_figures(res: Analysis) -> dict:
    """Every figure of the report, as matplotlib Figures (name -> Figure); nothing written."""
    plots.style()
    order, scores, palette = res.order, res.scores, plots.colors(res.order)
    curve = " / ".join(curve_name(m) for m in res.curve_metrics)
    lengths_only = res.curve_metrics == (C.EPISODE_STEPS,)
    success = None
    if lengths_only:
        levels = {r.solve.min_length for r in res.rules.values()}
        success = float(levels.pop()) if len(levels) == 1 else None
    curve_kw: dict[str, Any] = dict(
        floor=0.0 if lengths_only else None,
        ceil=float(scores["max_steps"].max()) if lengths_only else None,
        min_span=_min_span(res, "steps"),
        success_level=success,
    )
    ylabel = f"{curve.capitalize()} (rolling mean of {ROLLING_WINDOW})"
    figs = {
        "learning_curves": plots.learning_curves_figure(res.bands, palette, res.curves.x, ylabel, **curve_kw),
        "learning_curves_steps": plots.learning_curves_figure(
            res.step_bands, palette, res.step_curves.x, ylabel, xlabel="Env steps", **curve_kw
        ),
    }
    for name, xlabel in (
        ("episodes_to_solve", "Episodes to solve (lower is better)"),
        ("env_steps_to_solve", "Env steps to solve (lower is better)"),
    ):
        figs[name] = plots.episodes_to_solve_figure(
            scores,
            res.tables[name],
            order,
            palette,
            column=name,
            xlabel=xlabel,
            min_span=_min_span(res, SCORES[name].scale),
        )
    lengthy = {"auc", "auc_steps", "final"} if lengths_only else set()
    figs["aggregates"] = plots.aggregates_figure(
        {k: res.tables[k] for k in res.shown},
        {k: label(SCORES[k], curve, short=True) for k in res.shown},
        order,
        palette,
        min_spans={k: _min_span(res, SCORES[k].scale) for k in res.shown},
        floors={k: 0.0 for k in res.shown if not SCORES[k].higher_is_better or k in lengthy},
        ceils={k: float(scores["max_steps"].max()) for k in lengthy},
    )
    if len(res.axes.axes) >= 2:
        figs["ablation_grid"] = plots.ablation_grid_figure(
            scores,
            res.tables["episodes_to_solve"],
            res.axes.axes,
            res.values,
            res.names,
            min_span=_min_span(res, "cap"),
        )
    if len(order) > 1:
        figs["probability_of_improvement"] = plots.improvement_figure(res.improvement["episodes_to_solve"], order)
    figs["performance_profile"] = plots.profile_figure(res.profile, order, palette, res.profile_xmax)
    figs["compute"] = plots.compute_figure(scores, order, palette)
    return figs


def make_figures(res: Analysis, out: Path) -> dict:
    """Write every figure (PNG + SVG) into ``out/figures``; returns name -> [paths]."""
    return {name: plots.save(fig, out / FIGURES, name) for name, fig in build_figures(res).items()}


# --------------------------------------------------------------------------- CLI


@dataclass
class Report:
    """What `build_report` made: the loaded runs, the analysis, the files, and the run it was logged to."""

    loaded: Loaded
    result: Analysis
    written: dict[str, list[Path]]  # figure name -> its files
    out: Path
    logged_to: str | None  # the sweep parent run holding the report under report/, if logged
    plan: list[str]  # the commands adding the planned seeds (comments start with #)


def build_report(
    experiment: str,
    out: Path,
    sweep: str | Sequence[str] | None = None,
    tracking_uri: str | None = None,
    reps: int = REPS,
    seed: int = 0,
    grid_episodes: int | None = None,
    ignore=(),
    log: bool = True,
    progress: bool = True,
    where: Sequence[tuple[str, str]] = (),
    allow_mixed: bool = False,
    rule: StoppingRule | None = None,
) -> Report:
    """Load, analyse, write the report folder (and log it to the sweep's parent run).

    Raises LoadError or MixedRulesError (one line each) before anything is written."""
    loaded = load_runs(experiment, sweep=sweep, tracking_uri=tracking_uri, progress=progress, where=where)
    if progress:
        print(f"analysis: statistics ({reps} bootstrap resamples) and figures", file=sys.stderr, flush=True)
    res = analyse(
        loaded, reps=reps, seed=seed, grid_episodes=grid_episodes, ignore=ignore, allow_mixed=allow_mixed, rule=rule
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = make_figures(res, out)
    md_text = render_markdown(loaded, res, written, loaded.tracking_uri)
    (out / "report.md").write_text(md_text, encoding="utf-8")
    (out / "report.html").write_text(render_html(md_text, f"Sweep report: {experiment}"), encoding="utf-8")
    res.scores.to_csv(out / "scores.csv", index=False)
    logged_to = None
    if log:
        target = loaded.sweep_id or latest_sweep_parent(experiment, loaded.tracking_uri)
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
    return Report(
        loaded=loaded,
        result=res,
        written=written,
        out=out,
        logged_to=logged_to,
        plan=plan_text(loaded, res, loaded.tracking_uri) if len(res.order) > 1 else [],
    )


class UsageError(ValueError):
    """A bad command-line value (one line: the option, the value, what is allowed)."""


def _where(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--where {item!r}: expected KEY=VALUE (a param key and its logged value)")
        out.append((key, value))
    return tuple(out)


def _checked(args: argparse.Namespace) -> tuple[StoppingRule, tuple[tuple[str, str], ...]]:
    """The stopping rule and the selection; UsageError on a value out of range."""
    checks = [
        ("--reps", args.reps, args.reps >= 100, "at least 100"),
        ("--grid-episodes", args.grid_episodes, args.grid_episodes is None or args.grid_episodes >= 1, "at least 1"),
        ("--looks", args.looks, args.looks >= 1, "an integer >= 1"),
        ("--power", args.power, 0.5 <= args.power < 1, "a number in [0.5, 1)"),
        ("--max-seeds", args.max_seeds, args.max_seeds >= 5, "an integer >= 5"),
    ]
    for opt, value, ok, allowed in checks:
        if not ok:
            raise UsageError(f"{opt} must be {allowed} (got {value})")
    rule = StoppingRule(looks=args.looks, power=args.power, max_seeds=args.max_seeds)
    return rule, _where(args.where)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="per-cartpole", help="MLflow experiment name (default: per-cartpole)")
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        help="parent run id of a sweep (repeatable: the union of those sweeps; default: all runs of the experiment)",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only runs whose param KEY is VALUE, as logged (repeatable: all must hold), e.g. env.name=cartpole_v0",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    p.add_argument("--out", default=None, help="output folder (default: reports/<experiment>)")
    p.add_argument("--reps", type=int, default=REPS, help=f"bootstrap resamples (default {REPS})")
    p.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    p.add_argument(
        "--grid-episodes", type=int, default=None, help="length of the common episode grid (default: see the report)"
    )
    p.add_argument("--ignore-param", action="append", default=[], help="param never to treat as an axis (repeatable)")
    p.add_argument(
        ALLOW_FLAG,
        action="store_true",
        help="compare runs with different episode caps or solve rules (refused otherwise): unsolved runs are "
        "censored at their own cap, and the report says so",
    )
    p.add_argument(
        PLAN_FLAG,
        action="store_true",
        help="print the sweep commands that add the seeds the planning section asks for",
    )
    p.add_argument("--looks", type=int, default=2, help="looks declared for the stopping rule (default 2)")
    p.add_argument("--power", type=float, default=0.8, help="chance to decide at the planned seeds (default 0.8)")
    p.add_argument(
        "--max-seeds", type=int, default=1000, help="seeds per group beyond which a comparison is out of reach"
    )
    p.add_argument("--no-log", action="store_true", help="do not log the report to the sweep's parent run")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from mlflow.exceptions import MlflowException

    out = Path(args.out or Path("reports") / args.experiment)
    try:
        rule, where = _checked(args)
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
            where=where,
            allow_mixed=args.allow_mixed_rules,
            rule=rule,
        )
    except (UsageError, LoadError, MixedRulesError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except MlflowException as e:
        refused = credentials.access_error(e, resolve_tracking_uri(args.tracking_uri))
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {refused}" if refused else f"error: MLflow: {msg}", file=sys.stderr)
        return 2
    where_logged = f"; logged to run {r.logged_to} under report/" if r.logged_to else ""
    print(
        f"report: {out / 'report.md'} and {out / 'report.html'} "
        f"({sum(len(v) for v in r.written.values())} figure files){where_logged}"
    )
    if args.plan:
        print("\n".join(r.plan or ["# one group: nothing to compare, nothing to plan"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
