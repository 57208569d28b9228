"""report.md and report.html from the typed `Analysis`: one section after another, each from its own function."""

from __future__ import annotations

import datetime as _dt
import html
import re
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from per_exp import contract as C

from .analyse import Analysis
from .commands import group_overrides, plan_commands
from .effective import explain
from .load import Loaded
from .plan import DECIDED, NO_EFFECT, OUT_OF_REACH, PILOT, TOP_UP
from .rules import ALLOW_FLAG, describe_mix, measurement_sets
from .scores import SCORES, curve_name, label
from .stats import CI, MIN_SEEDS_FOR_CI, RANGE, ROLLING_WINDOW

FIGURES = "figures"
PLAN_FLAG = "--plan"


# --------------------------------------------------------------------------- markdown helpers


def md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines)


def fmt_number(x: float | None, digits: int = 1) -> str:
    """`x` with `digits` decimals (from 1,000 up: no decimals, thousands grouped), "n/a" when missing."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    if np.isinf(x):
        return "∞" if x > 0 else "-∞"
    if abs(x) >= 1_000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def fmt_ci(point: float, lo: float, hi: float, digits: int = 1, kind: str = CI, n: int | None = None) -> str:
    """A point estimate with its interval, saying what the interval is when it is not a CI."""
    p = fmt_number(point, digits)
    if kind == RANGE:
        return f"{p} (range {fmt_number(lo, digits)} to {fmt_number(hi, digits)} of {n} seeds; no CI)"
    if np.isnan(lo) or np.isnan(hi):
        return f"{p} (no CI" + (f": {n} run" if n == 1 else "") + ")"
    return f"{p} [{fmt_number(lo, digits)}, {fmt_number(hi, digits)}]"


def score_table(res: Analysis, name: str, with_solved: bool, lower_bound: set[str]) -> pd.DataFrame:
    agg, scores = res.tables[name], res.scores
    rows = []
    for g in res.order:
        a = agg[agg["group"] == g].set_index("aggregate")
        s = scores[scores["group"] == g]
        row = {"group": g, "runs": len(s)}
        if with_solved:
            row["solved"] = f"{int(s['solved'].sum())}/{len(s)} ({s['solved'].mean():.0%})"
        for agg_name in ("IQM", "mean", "median"):
            r = a.loc[agg_name]
            text = fmt_ci(r["point"], r["lo"], r["hi"], kind=r["interval"], n=int(r["n"]))
            row[f"{agg_name} [95% CI]"] = ("≥ " if g in lower_bound else "") + text
        rows.append(row)
    return pd.DataFrame(rows)


def _fig(name: str, caption: str) -> str:
    return f"![{caption}]({FIGURES}/{name}.png)\n\n*{caption}* ([SVG]({FIGURES}/{name}.svg))\n"


def _seed_sort_key(s: str) -> tuple[int, str]:
    return (len(s), s)


def _curve(res: Analysis) -> str:
    return " / ".join(curve_name(m) for m in res.curve_metrics)


# --------------------------------------------------------------------------- the report


def render_markdown(loaded: Loaded, res: Analysis, written: dict, tracking_uri: str) -> str:
    sections = [
        _md_header(loaded),
        _md_runs(loaded, res),
        _md_rules(res),
        _md_axes(res),
        _md_scores(res),
        _md_ablation_grid() if "ablation_grid" in written else [],
        _md_learning_curves(res),
        _md_improvement(res),
        _md_profile(res),
        _md_planning(loaded, res, tracking_uri),
        _md_compute(res),
        _md_fixed_config(res),
    ]
    return "\n".join(line for section in sections for line in section) + "\n"


def _md_header(loaded: Loaded) -> list[str]:
    runs = loaded.runs
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = [f"# Sweep report: {loaded.experiment_name}", ""]
    if loaded.sweep_ids:
        what = ("sweep (parent run) " if len(loaded.sweep_ids) == 1 else "sweeps (parent runs) ") + ", ".join(
            f"`{s}`" for s in loaded.sweep_ids
        )
    else:
        what = "all runs of the experiment"
    if loaded.where:
        what += "; only runs with " + ", ".join(f"`{k}={v}`" for k, v in loaded.where)
    L += [f"Generated {now} from `{loaded.tracking_uri}`; {what}.", ""]
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
    if res.small:
        L += [_few_seeds_caveat(res), ""]
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


def _few_seeds_caveat(res: Analysis) -> str:
    n = sorted({int((res.scores["group"] == g).sum()) for g in res.small})
    return (
        f"**Too few seeds for confidence intervals** in {len(res.small)} of {len(res.order)} groups "
        f"({', '.join(map(str, n))} seeds; a CI needs at least {MIN_SEEDS_FOR_CI}). A percentile bootstrap "
        "over n runs never leaves their range, and with 3 seeds its 95% interval *is* the min-max range (all "
        "three draws land on the minimum with probability 1/27 > 2.5%). So for these groups the tables give "
        "the seeds' range, labelled as such, the figures draw it dashed, and their comparisons carry no CI: "
        "nothing about them is decided. Add seeds (see Planning)."
    )


def _md_rules(res: Analysis) -> list[str]:
    L = ["## How runs were judged", ""]
    sets = measurement_sets(res.rules)
    if not res.mixed:
        (cap, solve) = next(iter(sets))
        return L + [
            f"Every run: solved when **{solve}**; cap **{cap} episodes** "
            f"(`{C.PARAM_MAX_EPISODES}`), read from each run's params. A run that never solved counts as its "
            "cap (in env steps: the most its cap allows, cap x time limit) and ranks below every solved run.",
            "",
        ]
    rows = [
        {
            "cap (episodes)": cap,
            "solve rule": str(solve),
            "runs": len(ids),
            "groups": ", ".join(sorted(set(res.scores.set_index("run_id").loc[ids, "group"]))),
        }
        for (cap, solve), ids in sets.items()
    ]
    return L + [
        f"**These runs were judged by different rules** ({describe_mix(res.rules)}); compared only because "
        f"`{ALLOW_FLAG}` was given. Each run is judged by its own rule and cap:",
        "",
        md_table(pd.DataFrame(rows)),
        "",
        "**Unsolved runs are censored at their own cap**: a run that did not solve is only known to need "
        "more than it used (its cap in episodes; in env steps, the steps it ran). P(X better than Y) counts "
        "a pair only when its order is known despite that (Gehan's generalised Wilcoxon rule); a pair that "
        "censoring leaves unordered counts one half, like a tie. IQM, mean and median take a censored run at "
        "its censoring point, so for a group with unsolved runs they are lower bounds (marked ≥). The "
        "performance profile of each group stops at its smallest cap; the AUC grid ends where the first "
        "unsolved run stopped.",
        "",
    ]


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


def _lower_bound_groups(res: Analysis, name: str) -> set[str]:
    if not res.mixed or not SCORES[name].censored:
        return set()
    cens = res.scores[f"{SCORES[name].column}_censored"].astype(bool)
    return set(res.scores.loc[cens, "group"])


def _md_scores(res: Analysis) -> list[str]:
    curve = _curve(res)
    unsolved_steps = (
        "the steps it ran, censored" if res.mixed else "the most its cap allows (cap x the env's time limit)"
    )
    L = [
        "## Scores",
        "",
        "Each score in both budget units, episodes and env steps:",
        "",
        "- **Episodes to solve** (lower is better): the episode index at which the run's solve rule fired "
        f"(`{C.SOLVED_EPISODE}`); a run that never solved counts as its cap. The fraction solved is beside it.",
        "- **Env steps to solve** (lower is better): env steps up to and including that episode; a run that "
        f"never solved counts as {unsolved_steps}.",
        f"- **AUC per episode** (higher is better): mean {curve} over the common episode grid "
        f"0..{res.grid_len - 1}; **AUC per env step**: mean {curve} over env steps 0..{res.step_horizon:,.0f}, "
        "each step taking its episode's value. The grids end where the first unsolved run stopped (or at the "
        "longest run when all solved), so every run has a value everywhere; a run that stopped because it "
        f"solved continues at its final level (the mean over its solve rule's window).",
        f"- **Final {curve}** (higher is better): mean over each run's own last {ROLLING_WINDOW} episodes.",
    ]
    if "eval_return" in res.shown:
        n_eval = int(res.scores["eval_return"].notna().sum())
        L.append(
            f"- **Final evaluation return** (higher is better): the run's last `{C.EVAL_RETURN}` (greedy "
            f"evaluation episodes); {n_eval} of {len(res.scores)} runs have one."
        )
    L += [
        "",
        "Aggregates over runs of a group: interquartile mean (IQM, mean of the middle 50%), mean, median; "
        f"95% CIs from a percentile stratified bootstrap over runs ({res.reps} resamples). A group with fewer "
        f"than {MIN_SEEDS_FOR_CI} runs gets the range of its seeds instead, labelled as such.",
        "",
    ]
    for name in res.shown:
        sc = SCORES[name]
        bounds = _lower_bound_groups(res, name)
        table = score_table(res, name, with_solved=(name == "episodes_to_solve"), lower_bound=bounds)
        head = label(sc, curve) + (" (lower is better)" if not sc.higher_is_better else "")
        L += [f"### {head}", "", md_table(table), ""]
        if bounds:
            L += ["≥: the group has censored runs (unsolved under a cap); the true value is at least this.", ""]
    L += [
        _fig(
            "episodes_to_solve",
            "Episodes to solve: one dot per seed (x: never solved, at its cap), diamond: IQM with 95% CI"
            + (" (dashed: the range of fewer than 5 seeds)" if res.small else "")
            + ".",
        ),
        _fig("env_steps_to_solve", "Env steps to solve, as above."),
        _fig("aggregates", "IQM of each score with its 95% CI."),
    ]
    return L


def _md_ablation_grid() -> list[str]:
    return [
        "## Ablation grid",
        "",
        _fig(
            "ablation_grid",
            "Episodes to solve per cell of the ablation (one facet per combination of the other axes that was "
            "run): IQM with 95% CI (diamonds) and seeds (dots).",
        ),
    ]


def _md_learning_curves(res: Analysis) -> list[str]:
    curve = _curve(res)
    few = f" Groups with fewer than {MIN_SEEDS_FOR_CI} seeds: their band is not a CI." if res.small else ""
    return [
        "## Learning curves",
        "",
        _fig(
            "learning_curves",
            f"{curve.capitalize()} per episode (rolling mean of {ROLLING_WINDOW}), IQM across seeds with 95% "
            f"bootstrap band; solved runs continue at their final level.{few}",
        ),
        _fig("learning_curves_steps", "The same against env steps: the budget unit that charges long episodes."),
    ]


def _md_improvement(res: Analysis) -> list[str]:
    L = ["## Probability of improvement", ""]
    if len(res.order) <= 1:
        return L + ["Only one group: nothing to compare.", ""]
    sizes = res.scores.groupby("group").size()
    L += [
        "P(X > Y) = probability that a random run of X solves within fewer episodes (env steps) than a random "
        "run of Y (ties count one half); 0.5 = no difference. CIs from a stratified bootstrap of both groups; "
        f"none when a group has fewer than {MIN_SEEDS_FOR_CI} runs.",
        "",
    ]
    for name, what in (("episodes_to_solve", "episodes"), ("env_steps_to_solve", "env steps")):
        imp = res.improvement[name]
        cells = []
        for x, y, p, lo, hi in zip(imp["x"], imp["y"], imp["p"], imp["lo"], imp["hi"]):
            if np.isnan(lo):
                cells.append(f"{p:.2f} (no CI: {sizes[x]} and {sizes[y]} seeds)")
            else:
                cells.append(fmt_ci(p, lo, hi, 2))
        t = pd.DataFrame({"X": imp["x"], "Y": imp["y"], f"P(X solves in fewer {what} than Y) [95% CI]": cells})
        L += [f"### In {what}", "", md_table(t), ""]
    L.append(_fig("probability_of_improvement", "P(row group better than column group), episodes to solve."))
    return L


def _md_profile(res: Analysis) -> list[str]:
    extra = (
        " Each group's profile stops at its smallest cap (beyond it, censored runs are unknown)." if res.mixed else ""
    )
    return [
        "## Performance profile",
        "",
        _fig(
            "performance_profile",
            "Fraction of runs solved within τ episodes (empirical distribution of episodes to solve), with "
            "pointwise 95% bootstrap bands. Higher and further left is better." + extra,
        ),
    ]


# --------------------------------------------------------------------------- planning


def plan_text(loaded: Loaded, res: Analysis, tracking_uri: str) -> list[str]:
    """The commands that add the plan's missing seeds, as lines (comments start with #)."""
    missing = res.plan.missing
    if not missing:
        return ["# nothing to add: every comparison is decided, out of reach, or shows no effect"]
    runs = loaded.runs.assign(_g=res.scores["group"].to_numpy())
    overrides = {g: group_overrides(runs[runs["_g"] == g]) for g in missing}
    seeds = {
        g: [int(float(s)) for s in res.scores.loc[res.scores["group"] == g, "seed"] if s is not None] for g in missing
    }
    cmds, without = plan_commands(missing, overrides, seeds)
    total = sum(c.n_runs for c in cmds)
    lines = [f"# {total} new runs in {len(cmds)} sweep(s); each adds only seeds its groups do not have"]
    for c in cmds:
        lines.append(f"# {', '.join(c.groups)}: {len(c.seeds)} more seeds each")
        lines.append(c.shell(tracking_uri, loaded.experiment_name))
    for g in without:
        lines.append(f"# {g}: no command (its runs carry no {C.TAG_OVERRIDES} tag); add {missing[g]} seeds by hand")
    lines.append(
        "# add hydra/launcher=joblib to run jobs in parallel; then report on the experiment (or on every sweep "
        "with repeated --sweep): the new runs are under a new sweep parent"
    )
    return lines


def _md_planning(loaded: Loaded, res: Analysis, tracking_uri: str) -> list[str]:
    plan, rule = res.plan, res.plan.rule
    L = ["## Planning: are the comparisons decided, and how many seeds would decide them?", ""]
    if len(res.order) <= 1:
        return L + ["Only one group: nothing to compare.", ""]
    L += [
        f"**Stopping rule**: {rule.describe()}. After the last look, an undecided comparison stays undecided.",
        "",
        "**Caveat**: adding seeds until a CI excludes 0.5 is a sequential design, and uncorrected it inflates "
        "false positives. Simulated on two *equal* groups (`scripts/sim_stopping_rule.py`, 1000-2000 studies): "
        "a look after every 5 seeds up to 50 at 95% called 23-25% of them decided; a pilot of 10 and the "
        "planned top-up, both at 95%, 10-11%; this rule (both looks at 97.5%) 5.3-5.9%, as many as a single "
        "look at a fixed 20 seeds (4.8-6.2%; the percentile bootstrap is slightly liberal at small n). "
        "Comparisons are not corrected for how many pairs there are. The seeds needed are estimated at the "
        "*observed* effect, which a small pilot measures noisily.",
        "",
    ]
    level = f"{rule.level:.1%}"
    status_text = {
        DECIDED: "decided",
        TOP_UP: "not yet",
        PILOT: f"pilot first ({rule.pilot} seeds)",
        NO_EFFECT: "no effect seen",
        OUT_OF_REACH: f"out of reach (> {rule.max_seeds} seeds)",
    }
    rows = []
    for pp in plan.pairs:
        c = pp.comparison
        lo, hi = pp.interval
        ci = f"{c.p:.2f} (no CI)" if np.isnan(lo) else fmt_ci(c.p, lo, hi, 2)
        seeds = (
            "-" if pp.status in (DECIDED, NO_EFFECT) else (fmt_number(pp.seeds, 0) if np.isfinite(pp.seeds) else "∞")
        )
        rows.append(
            {
                "X": pp.x,
                "Y": pp.y,
                "seeds": f"{c.n_x}, {c.n_y}",
                f"P(X solves in fewer episodes than Y) [{level} CI]": ci,
                f"{level} CI excludes 0.5": status_text[pp.status],
                "seeds per group to decide": seeds,
            }
        )
    L += [md_table(pd.DataFrame(rows)), ""]
    missing = plan.missing
    if missing:
        L += [
            "Seeds to add before the next look: "
            + ", ".join(f"{g}: {n}" for g, n in missing.items())
            + f". `python -m analysis.report ... {PLAN_FLAG}` prints the commands:",
            "",
            "```bash",
            *plan_text(loaded, res, tracking_uri),
            "```",
            "",
        ]
    else:
        L += ["No seeds to add.", ""]
    return L


# --------------------------------------------------------------------------- compute and config


def _md_compute(res: Analysis) -> list[str]:
    scores = res.scores

    def mean(g: str, col: str) -> float:
        return scores.loc[scores["group"] == g, col].mean()

    comp = pd.DataFrame(
        [
            {
                "group": g,
                "wall time per run, s (mean, start-up excluded)": fmt_number(mean(g, "steady_wall_seconds")),
                "env steps/s (mean, start-up excluded)": fmt_number(mean(g, "steady_sps"), 0),
                "one-time start-up per run, s (mean; max)": (
                    f"{fmt_number(mean(g, 'startup_seconds'), 2)}; "
                    f"{fmt_number(scores.loc[scores['group'] == g, 'startup_seconds'].max(), 2)}"
                ),
                "env steps per run (mean)": fmt_number(mean(g, "total_env_steps"), 0),
                "runs trained at once": _slots_text(scores.loc[scores["group"] == g, "slots"]),
            }
            for g in res.order
        ]
    )
    slots = scores["slots"]
    shared = (
        [
            f"{int((slots > 1).sum())} of {len(slots)} runs trained in a group (tag `{C.TAG_GROUP}`): "
            "several runs in one process, one slot each, so a run's wall time and env steps/s are its "
            "share of that process, not what it would take alone; compare them only between runs trained "
            "the same way.",
            "",
        ]
        if (slots > 1).any()
        else []
    )
    return [
        "## Compute",
        "",
        "A run's `wall_seconds` includes one-time costs of the process it ran in: numba compiles (or loads "
        "from its cache) each kernel at its first call, in the run's first episode and its first episode with "
        "an update, so the first run of each kernel in a process is charged for it. The start-up is measured "
        f"from each run's own `{C.PERF_SPS}` (the time its first episodes took beyond its steady speed) and "
        "shown apart. Compilation before a run's clock starts is in no run's numbers.",
        "",
        *shared,
        md_table(comp),
        "",
        _fig(
            "compute",
            "Wall time and env steps per second per run without the one-time start-up, and the "
            "start-up apart (dots: seeds, bar: mean).",
        ),
    ]


def _slots_text(slots: pd.Series) -> str:
    """'1' (alone), '25', '1-32', with 'not recorded' for runs from before the tag."""
    known = slots.dropna().astype(int)
    parts = []
    if len(known):
        lo, hi = known.min(), known.max()
        parts.append(str(lo) if lo == hi else f"{lo}-{hi}")
    if len(known) < len(slots):
        parts.append(f"not recorded for {len(slots) - len(known)}")
    return "; ".join(parts)


def _md_fixed_config(res: Analysis) -> list[str]:
    if not res.fixed and not res.inert:
        return []
    L = ["## Fixed configuration", "", "Params equal in every run used that take effect:", ""]
    rows = []
    for fk in res.fixed:
        where = (
            "all runs"
            if fk.n_effective == fk.n_runs
            else (f"{fk.n_effective} of {fk.n_runs} runs (not under {'; '.join(fk.why_not)})")
        )
        rows.append({"param": fk.key, "value": fk.value, "takes effect in": where})
    L += [md_table(pd.DataFrame(rows, columns=["param", "value", "takes effect in"])), ""]
    if res.inert:
        why = sorted({w for fk in res.inert for w in fk.why_not})
        L += [
            "Not listed, without effect in any of these runs: "
            + ", ".join(f"`{fk.key}`" for fk in res.inert)
            + " ("
            + "; ".join(explain(w) for w in why)
            + ").",
            "",
        ]
    partial = sorted({w for fk in res.fixed for w in fk.why_not})
    if partial:
        L += [
            "A key listed for some runs only has no effect " + "; ".join(f"under {explain(w)}" for w in partial) + ".",
            "",
        ]
    return L


# --------------------------------------------------------------------------- HTML

HTML_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.4; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
code {{ background: #f6f6f6; padding: 0 0.2rem; }}
pre {{ background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }}
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

    body = markdown.markdown(md_text, extensions=["tables", "fenced_code", TextOnly()])
    return HTML_TEMPLATE.format(title=html.escape(title), body=body)
