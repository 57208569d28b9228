"""Figures for a sweep report (seaborn on matplotlib's Agg backend).

Each ``*_figure`` function returns a matplotlib Figure built only from the
frames/arrays it is given; :func:`save` writes it as PNG (200 dpi) and SVG
(text kept as text, so labels stay searchable and editable). Sizes are for
a paper: 3.5 in (one column) or 7 in (two columns) wide, 8 pt text, and the
seaborn ``colorblind`` palette (Okabe-Ito-like) throughout.

Axes show the data's own range with padding (:func:`span_limits`), never
less than ``MIN_SPAN_FRACTION`` of the score's natural scale (the episode cap,
the env's time limit...): a difference smaller than that is drawn small, as
it is. An axis reaches the cap only when some run was capped there.
Intervals of groups with fewer than 5 seeds are the seeds' range, not a CI,
and are drawn dashed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

from .axes import short
from .stats import CI, RANGE

FULL_WIDTH = 7.0
MIN_SPAN_FRACTION = 0.05  # an axis spans at least this fraction of the score's scale
PAD_FRACTION = 0.05  # padding on each side of the data's range
RC = {
    "svg.fonttype": "none",  # text stays text in the SVG
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
}
RANGE_LABEL = "range of < 5 seeds (no CI)"


def style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", rc=RC)


def colors(groups: Sequence[str]) -> dict:
    pal = sns.color_palette("colorblind", n_colors=max(len(groups), 1))
    return {g: pal[i % len(pal)] for i, g in enumerate(groups)}


def save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


def span_limits(
    values, min_span: float = 0.0, floor: float | None = None, ceil: float | None = None, pad: float = PAD_FRACTION
) -> tuple[float, float]:
    """Axis limits around `values`: their range padded by `pad` of the span each side, at least
    `min_span` wide (centred on the data), kept within `floor`/`ceil` (plus the padding) where the
    scale has a bound."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return (0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    if hi - lo == 0:
        lo, hi = lo - 0.5, hi + 0.5
    margin = pad * (hi - lo)
    lo, hi = lo - margin, hi + margin
    if ceil is not None and hi > ceil + margin:
        lo, hi = lo - (hi - ceil - margin), ceil + margin
    if floor is not None and lo < floor - margin:
        lo, hi = floor - margin, hi + (floor - margin - lo)
    return lo, hi


def wrap(label: str, width: int = 34) -> str:
    """A group label on lines of at most `width` characters, broken after its commas."""
    if len(label) <= width:
        return label
    lines, cur = [], ""
    for part in label.split(", "):
        nxt = f"{cur}, {part}" if cur else part
        if cur and len(nxt) > width:
            lines.append(cur + ",")
            cur = part
        else:
            cur = nxt
    lines.append(cur)
    return "\n".join(textwrap.fill(ln, width + 8) for ln in lines)


def _legend_below(ax, labels: Sequence[str]) -> None:
    longest = max((len(s) for s in labels), default=1)
    ncol = max(1, min(3, 90 // max(longest, 1)))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=ncol, frameon=False)


def _ci_err(point: float, lo: float, hi: float) -> list[list[float]]:
    """Asymmetric error-bar extents."""
    return [[max(point - lo, 0.0)], [max(hi - point, 0.0)]]


def _interval(ax, x, y, r, color, horizontal: bool, label=None, **kw):
    """One aggregate with its interval: a CI solid, a few seeds' range dashed, none without."""
    kind = r.get("interval", CI)
    has = kind in (CI, RANGE) and np.isfinite(r["lo"]) and np.isfinite(r["hi"])
    err = _ci_err(r["point"], r["lo"], r["hi"]) if has else None
    eb = ax.errorbar(
        x, y, **({"xerr": err} if horizontal else {"yerr": err}), color=color, label=label, capsize=2, **kw
    )
    if kind == RANGE and has:
        for line in eb[2]:
            line.set_linestyle("--")
    return eb


def _group_yaxis(ax, labels: Sequence[str]) -> None:
    """Groups down the y axis, first on top."""
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_ylabel("Group")


def _rows_height(labels: Sequence[str], per_line: float = 0.14, minimum: float = 0.3) -> float:
    """Inches for rows of (already wrapped) tick labels."""
    return sum(max(minimum, per_line * (g.count("\n") + 1) + 0.12) for g in labels)


# --------------------------------------------------------------------------- learning curves


def learning_curves_figure(
    bands: Mapping[str, tuple],
    palette: Mapping[str, tuple],
    x: np.ndarray,
    ylabel: str,
    xlabel: str = "Episode",
    success_level: float | None = None,
    success_label: str = "success length",
    floor: float | None = 0.0,
    ceil: float | None = None,
    min_span: float = 0.0,
    aggregate: str = "IQM",
):
    """``bands[group] = (point, lo, hi)`` over the common grid `x`."""
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.75, 3.0))
    seen = []
    for g, (point, lo, hi) in bands.items():
        ax.plot(x, point, color=palette[g], lw=1.3, label=wrap(g, 60))
        ax.fill_between(x, lo, hi, color=palette[g], alpha=0.2, lw=0)
        seen += [point, lo, hi]
    if success_level is not None:
        ax.axhline(success_level, color="0.4", ls=":", lw=0.8)
        ax.annotate(
            success_label, (x[0], success_level), xytext=(2, 2), textcoords="offset points", fontsize=6, color="0.3"
        )
        seen.append(np.array([success_level]))
    ax.set_ylim(*span_limits(np.concatenate([np.ravel(s) for s in seen]), min_span, floor, ceil))
    ax.set_xlim(x[0], x[-1] if len(x) > 1 else x[0] + 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep="") if x[-1] >= 10_000 else plt.ScalarFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"Learning curves: {aggregate} across seeds, 95% bootstrap band")
    _legend_below(ax, list(bands))
    return fig


# --------------------------------------------------------------------------- per-seed scores


def _ticklabels_with_solved(scores: pd.DataFrame, order: Sequence[str]) -> list[str]:
    out = []
    for g in order:
        s = scores[scores["group"] == g]
        out.append(f"{wrap(g)}\n({int(s['solved'].sum())}/{len(s)} solved)")
    return out


def episodes_to_solve_figure(
    scores: pd.DataFrame,
    agg: pd.DataFrame,
    order: Sequence[str],
    palette: Mapping[str, tuple],
    column: str = "episodes_to_solve",
    xlabel: str = "Episodes to solve (lower is better)",
    min_span: float = 0.0,
):
    """Points per seed (crosses: never solved, at the cap) and IQM with its interval per group.

    The cap is drawn, and the axis reaches it, only when some run was capped.
    """
    labels = _ticklabels_with_solved(scores, order)
    h = max(1.6, _rows_height(labels, minimum=0.45) + 0.9)
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.75, h))
    rng = np.random.default_rng(0)
    iqm = agg[agg["aggregate"] == "IQM"].set_index("group")
    seen, labelled = [], set()

    def once(text: str) -> str | None:
        if text in labelled:
            return None
        labelled.add(text)
        return text

    for i, g in enumerate(order):
        s = scores[scores["group"] == g]
        jitter = rng.uniform(-0.12, 0.12, len(s))
        solved = s["solved"].to_numpy(bool)
        y = i + 0.18 + jitter
        vals = s[column].to_numpy(float)
        if solved.any():
            ax.scatter(vals[solved], y[solved], s=12, color=palette[g], alpha=0.7, lw=0, label=once("seed (solved)"))
        if (~solved).any():
            ax.scatter(
                vals[~solved],
                y[~solved],
                s=14,
                color=palette[g],
                marker="x",
                lw=0.9,
                label=once("seed (never solved: its cap)"),
            )
        r = iqm.loc[g]
        _interval(
            ax,
            r["point"],
            i - 0.15,
            r,
            palette[g],
            True,
            label=once("IQM with its interval"),
            fmt="D",
            ms=4,
            lw=1.2,
            mec="black",
            mew=0.5,
        )
        seen += [vals, [r["lo"], r["hi"], r["point"]]]
    capped = scores.loc[~scores["solved"].astype(bool), "episode_cap"].unique()
    if column == "episodes_to_solve":
        for c in capped:
            ax.axvline(c, color="0.4", ls=":", lw=0.8)
            seen.append([c])
    if (iqm["interval"] == RANGE).any():
        ax.plot([], [], color="0.3", ls="--", lw=1, label=RANGE_LABEL)
    ax.set_xlim(*span_limits(np.concatenate([np.ravel(np.asarray(v, float)) for v in seen]), min_span, floor=0.0))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter(useOffset=False))
    _group_yaxis(ax, labels)
    ax.set_xlabel(xlabel)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return fig


def aggregates_figure(
    tables: Mapping[str, pd.DataFrame],
    labels: Mapping[str, str],
    order: Sequence[str],
    palette: Mapping[str, tuple],
    min_spans: Mapping[str, float],
    floors: Mapping[str, float | None] | None = None,
    ceils: Mapping[str, float | None] | None = None,
    aggregate: str = "IQM",
):
    """One panel per score: the aggregate per group with its interval, groups down the left column."""
    n = len(tables)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    wrapped = [wrap(g) for g in order]
    h = _rows_height(wrapped, minimum=0.3) + 0.9
    fig, axes = plt.subplots(nrows, ncols, figsize=(FULL_WIDTH, h * nrows), sharey=True, squeeze=False)
    floors, ceils = floors or {}, ceils or {}
    for k, (score, table) in enumerate(tables.items()):
        ax = axes[k // ncols][k % ncols]
        t = table[table["aggregate"] == aggregate].set_index("group")
        seen = []
        for i, g in enumerate(order):
            r = t.loc[g]
            if np.isnan(r["point"]):
                continue
            _interval(ax, r["point"], i, r, palette[g], True, fmt="o", ms=4, lw=1.5)
            seen += [r["point"], r["lo"], r["hi"]]
        ax.set_xlim(*span_limits(seen, min_spans.get(score, 0.0), floors.get(score), ceils.get(score)))
        ax.set_xlabel(textwrap.fill(labels[score], 26))
        ax.set_title(f"{aggregate}, 95% CI")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter(useOffset=False))
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        if max(abs(v) for v in ax.get_xlim()) >= 10_000:
            ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    for row in axes:
        _group_yaxis(row[0], wrapped)
    fig.tight_layout()
    return fig


def ablation_grid_figure(
    scores: pd.DataFrame,
    agg: pd.DataFrame,
    axes_keys: Sequence[str],
    values: Mapping[str, list],
    names: Mapping[str, str],
    column: str = "episodes_to_solve",
    ylabel: str = "Episodes to solve",
    min_span: float = 0.0,
):
    """Facets for >= 2 axes: x = first axis, one facet per combination of the others that has runs.

    Points per seed and the IQM with its interval per cell; each facet shows the
    x values it has; every axis shares one padded y range holding every dot.
    """
    x_key, rest = axes_keys[0], list(axes_keys[1:])
    combos = sorted(
        {tuple(str(v) for v in r) for r in scores[rest].itertuples(index=False)},
        key=lambda c: tuple(values[k].index(v) if v in values[k] else 0 for k, v in zip(rest, c)),
    )
    ncols = 2 if len(combos) == 4 else min(3, len(combos))
    nrows = -(-len(combos) // ncols)
    xs = values[x_key]
    pal = colors(xs)
    fig, axs = plt.subplots(
        nrows, ncols, figsize=(min(FULL_WIDTH, 2.2 * ncols + 0.6), 2.1 * nrows + 0.5), sharey=True, squeeze=False
    )
    iqm = agg[agg["aggregate"] == "IQM"].set_index("group")
    rng = np.random.default_rng(0)
    seen = []
    for k, combo in enumerate(combos):
        ax = axs[k // ncols][k % ncols]
        cell = scores
        for key, v in zip(rest, combo):
            cell = cell[cell[key].astype(str) == v]
        present = [xv for xv in xs if (cell[x_key].astype(str) == xv).any()]
        for xi, xv in enumerate(present):
            s = cell[cell[x_key].astype(str) == xv]
            ax.scatter(xi + 0.15 + rng.uniform(-0.08, 0.08, len(s)), s[column], s=9, color=pal[xv], alpha=0.6, lw=0)
            r = iqm.loc[s["group"].iloc[0]]
            _interval(ax, xi - 0.1, r["point"], r, pal[xv], False, fmt="D", ms=3.5, lw=1.2, mec="black", mew=0.4)
            seen += [s[column].to_numpy(float), [r["point"], r["lo"], r["hi"]]]
        ax.set_xlim(-0.5, len(present) - 0.5)
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels(present, rotation=30 if sum(len(x) + 2 for x in present) > 24 else 0)
        ax.set_title("\n".join(f"{names.get(key, short(key))}={v}" for key, v in zip(rest, combo)))
        ax.set_xlabel(names.get(x_key, short(x_key)))
        ax.set_ylabel(f"{ylabel}\n(IQM, 95% CI; dots: seeds)" if k % ncols == 0 else "")
    for k in range(len(combos), nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)
    lo, hi = span_limits(np.concatenate([np.ravel(np.asarray(v, float)) for v in seen]), min_span, floor=0.0)
    axs[0][0].set_ylim(lo, hi)  # shared by every facet
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- comparisons and profiles


def improvement_figure(matrix: pd.DataFrame, order: Sequence[str], what: str = "solves in fewer episodes"):
    """Heatmap of P(X better than Y); ``matrix`` has columns x, y, p."""
    m = matrix.pivot(index="x", columns="y", values="p").reindex(index=order, columns=order)
    numbered = max(len(g) for g in order) > 14  # long labels: columns by number, rows say which
    m.index = [wrap(f"({k}) {g}" if numbered else g) for k, g in enumerate(order, 1)]
    m.columns = [f"({k})" if numbered else wrap(g) for k, g in enumerate(order, 1)]
    size = max(2.6, 0.6 * len(order) + 1.6)
    fig, ax = plt.subplots(figsize=(min(FULL_WIDTH, size + 0.8), min(FULL_WIDTH, size)))
    sns.heatmap(
        m,
        ax=ax,
        vmin=0,
        vmax=1,
        center=0.5,
        cmap="vlag_r",
        annot=True,
        fmt=".2f",
        square=True,
        cbar_kws={"label": "P(X better than Y)", "shrink": 0.8},
        annot_kws={"fontsize": 7},
        linewidths=0.5,
        linecolor="white",
    )
    ax.grid(False)
    ax.set_xlabel("Y (compared against)")
    ax.set_ylabel("X")
    ax.set_title(f"Probability of improvement: P(X {what} than Y)")
    ax.tick_params(axis="x", rotation=0 if numbered else 30)
    ax.tick_params(axis="y", rotation=0)
    if not numbered:
        for lab in ax.get_xticklabels():
            lab.set_horizontalalignment("right")
    return fig


def profile_figure(
    profile: pd.DataFrame,
    order: Sequence[str],
    palette: Mapping[str, tuple],
    xmax: float,
    xlabel: str = "τ (episodes)",
    ylabel: str = "Fraction of runs solved within τ episodes",
):
    """Performance profile (run-score distribution) with pointwise 95% bootstrap bands, up to `xmax`."""
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.6, 2.8))
    for g in order:
        p = profile[profile["group"] == g]
        ax.step(p["tau"], p["fraction"], where="post", color=palette[g], lw=1.3, label=wrap(g, 60))
        ax.fill_between(p["tau"], p["lo"], p["hi"], step="post", color=palette[g], alpha=0.18, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(*span_limits([0.0, xmax], floor=0.0, pad=0.02))
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Performance profile, 95% bootstrap bands")
    _legend_below(ax, list(order))
    return fig


# --------------------------------------------------------------------------- compute


COMPUTE_PANELS = (
    ("steady_wall_seconds", "Wall time per run, start-up excluded (s)"),
    ("steady_sps", "Env steps per second, start-up excluded"),
    ("startup_seconds", "One-time start-up per run (s)"),
)


def compute_figure(scores: pd.DataFrame, order: Sequence[str], palette: Mapping[str, tuple]):
    """Wall time and speed without the one-time start-up (numba compiling or loading its kernels),
    and the start-up apart: one dot per seed, bar = mean. The start-up axis spans at least
    MIN_SPAN_FRACTION of the longest run's wall time, so a negligible start-up looks negligible."""
    labels = [wrap(g) for g in order]
    fig, axs = plt.subplots(
        1, len(COMPUTE_PANELS), figsize=(FULL_WIDTH, max(1.5, _rows_height(labels, minimum=0.3) + 0.9)), sharey=True
    )
    for ax, (col, label) in zip(axs, COMPUTE_PANELS):
        means = [scores.loc[scores["group"] == g, col].mean() for g in order]
        ax.barh(range(len(order)), means, color=[palette[g] for g in order], alpha=0.35, height=0.6)
        rng = np.random.default_rng(0)
        top = 0.0
        for i, g in enumerate(order):
            v = scores.loc[scores["group"] == g, col].to_numpy(float)
            ax.scatter(v, i + rng.uniform(-0.15, 0.15, len(v)), s=9, color=palette[g], lw=0)
            top = max(top, float(np.nanmax(v)) if np.isfinite(v).any() else 0.0)
        if col == "startup_seconds":
            top = max(top, MIN_SPAN_FRACTION * float(np.nanmax(scores["wall_seconds"].to_numpy(float), initial=0.0)))
        ax.set_xlim(0, top * 1.08 if top > 0 else 1.0)
        ax.set_xlabel(textwrap.fill(label, 28, break_on_hyphens=False))
    _group_yaxis(axs[0], labels)
    fig.tight_layout()
    return fig
