"""Figures for a sweep report (seaborn on matplotlib's Agg backend).

Each ``*_figure`` function returns a matplotlib Figure built only from the
frames/arrays it is given; :func:`save` writes it as PNG (200 dpi) and SVG
(text kept as text, so labels stay searchable and editable). Sizes are for
a paper: 3.5 in (one column) or 7 in (two columns) wide, 8 pt text, and the
seaborn ``colorblind`` palette (Okabe-Ito-like) throughout.
"""

from __future__ import annotations

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

FULL_WIDTH = 7.0
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


def _legend_below(ax, n: int) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=min(3, max(n, 1)), frameon=False)


def learning_curves_figure(
    bands: Mapping[str, tuple],
    palette: Mapping[str, tuple],
    success_length: float | None = None,
    window: int = 10,
    aggregate: str = "IQM",
):
    """``bands[group] = (point, lo, hi)`` over the common episode grid."""
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.75, 3.0))
    for g, (point, lo, hi) in bands.items():
        x = np.arange(len(point))
        ax.plot(x, point, color=palette[g], lw=1.3, label=g)
        ax.fill_between(x, lo, hi, color=palette[g], alpha=0.2, lw=0)
    if success_length:
        ax.axhline(success_length, color="0.4", ls=":", lw=0.8)
        ax.annotate(
            "success length", (0, success_length), xytext=(2, 2), textcoords="offset points", fontsize=6, color="0.3"
        )
    ax.set_xlabel("Episode")
    ax.set_ylabel(f"Episode length (steps, rolling mean of {window})")
    ax.set_title(f"Learning curves: {aggregate} across seeds, 95% bootstrap CI")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    _legend_below(ax, len(bands))
    return fig


def _ticklabels_with_solved(scores: pd.DataFrame, order: Sequence[str]) -> list[str]:
    out = []
    for g in order:
        s = scores[scores["group"] == g]
        out.append(f"{g}\n({int(s['solved'].sum())}/{len(s)} solved)")
    return out


def _ci_err(r) -> list[list[float]]:
    """Asymmetric error-bar extents of a row with point, lo, hi."""
    return [[r["point"] - r["lo"]], [r["hi"] - r["point"]]]


def _group_yaxis(ax, labels: Sequence[str]) -> None:
    """Groups down the y axis, first on top."""
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_ylabel("Group")


def episodes_to_solve_figure(
    scores: pd.DataFrame, agg: pd.DataFrame, order: Sequence[str], palette: Mapping[str, tuple]
):
    """Points per seed (crosses: never solved, at the cap) and IQM with 95% CI per group."""
    h = max(1.6, 0.45 * len(order) + 0.9)
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.75, h))
    rng = np.random.default_rng(0)
    iqm = agg[agg["aggregate"] == "IQM"].set_index("group")
    for i, g in enumerate(order):
        s = scores[scores["group"] == g]
        jitter = rng.uniform(-0.12, 0.12, len(s))
        solved = s["solved"].to_numpy(bool)
        y = i + 0.18 + jitter
        ax.scatter(
            s["episodes_to_solve"][solved],
            y[solved],
            s=12,
            color=palette[g],
            alpha=0.7,
            lw=0,
            label="seed (solved)" if i == 0 else None,
        )
        ax.scatter(
            s["episodes_to_solve"][~solved],
            y[~solved],
            s=14,
            color=palette[g],
            marker="x",
            lw=0.9,
            label="seed (never solved: cap)" if i == 0 else None,
        )
        r = iqm.loc[g]
        ax.errorbar(
            r["point"],
            i - 0.15,
            xerr=_ci_err(r),
            fmt="D",
            color=palette[g],
            ms=4,
            capsize=2,
            lw=1.2,
            mec="black",
            mew=0.5,
            label="IQM, 95% CI" if i == 0 else None,
        )
    caps = scores["episode_cap"].unique()
    if len(caps) == 1:
        ax.axvline(caps[0], color="0.4", ls=":", lw=0.8)
    _group_yaxis(ax, _ticklabels_with_solved(scores, order))
    ax.set_xlabel("Episodes to solve (never solved = cap; lower is better)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    return fig


def aggregates_figure(
    tables: Mapping[str, pd.DataFrame],
    labels: Mapping[str, str],
    order: Sequence[str],
    palette: Mapping[str, tuple],
    aggregate: str = "IQM",
):
    """One panel per score: the aggregate per group with its 95% CI."""
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(FULL_WIDTH, max(1.5, 0.35 * len(order) + 0.9)), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (score, table) in zip(axes, tables.items()):
        t = table[table["aggregate"] == aggregate].set_index("group")
        for i, g in enumerate(order):
            r = t.loc[g]
            ax.errorbar(r["point"], i, xerr=_ci_err(r), fmt="o", color=palette[g], ms=4, capsize=2, lw=1.5)
        ax.set_xlabel(labels[score])
        ax.set_title(f"{aggregate}, 95% CI")
        ax.xaxis.get_major_formatter().set_useOffset(False)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
    _group_yaxis(axes[0], order)
    fig.tight_layout()
    return fig


def ablation_grid_figure(
    scores: pd.DataFrame,
    agg: pd.DataFrame,
    axes_keys: Sequence[str],
    values: Mapping[str, list],
    column: str = "episodes_to_solve",
    ylabel: str = "Episodes to solve",
):
    """Facets for >= 2 axes: x = first axis, columns = second, rows = the rest (combined).

    Points per seed and the IQM with 95% CI of every cell.
    """
    x_key, col_key = axes_keys[0], axes_keys[1]
    rest = list(axes_keys[2:])
    row_vals: list[tuple[str, ...]] = [()]
    if rest:
        row_vals = sorted({tuple(str(v) for v in r) for r in scores[rest].itertuples(index=False)})
    cols = values[col_key]
    xs = values[x_key]
    pal = colors(xs)
    fig, axs = plt.subplots(
        len(row_vals),
        len(cols),
        figsize=(min(FULL_WIDTH, 1.9 * len(cols) + 0.6), 1.9 * len(row_vals) + 0.5),
        sharey=True,
        squeeze=False,
    )
    iqm = agg[agg["aggregate"] == "IQM"].set_index("group")
    rng = np.random.default_rng(0)
    for ri, rv in enumerate(row_vals):
        for ci, cv in enumerate(cols):
            ax = axs[ri][ci]
            cell = scores[scores[col_key].astype(str) == cv]
            for k, v in zip(rest, rv):
                cell = cell[cell[k].astype(str) == v]
            for xi, xv in enumerate(xs):
                s = cell[cell[x_key].astype(str) == xv]
                if s.empty:
                    continue
                ax.scatter(xi + 0.15 + rng.uniform(-0.08, 0.08, len(s)), s[column], s=9, color=pal[xv], alpha=0.6, lw=0)
                g = s["group"].iloc[0]
                r = iqm.loc[g]
                ax.errorbar(
                    xi - 0.1,
                    r["point"],
                    yerr=_ci_err(r),
                    fmt="D",
                    color=pal[xv],
                    ms=3.5,
                    capsize=2,
                    lw=1.2,
                    mec="black",
                    mew=0.4,
                )
            ax.set_xticks(range(len(xs)))
            ax.set_xticklabels(xs, rotation=30 if max(len(x) for x in xs) > 6 else 0)
            title = f"{short(col_key)}={cv}"
            if rest:
                title += "\n" + ", ".join(f"{short(k)}={v}" for k, v in zip(rest, rv))
            ax.set_title(title)
            ax.set_xlabel(short(x_key) if ri == len(row_vals) - 1 else "")
            ax.set_ylabel(f"{ylabel}\n(IQM, 95% CI; dots: seeds)" if ci == 0 else "")
    fig.tight_layout()
    return fig


def improvement_figure(matrix: pd.DataFrame, order: Sequence[str], what: str = "solves in fewer episodes"):
    """Heatmap of P(X better than Y); ``matrix`` has columns x, y, p."""
    m = matrix.pivot(index="x", columns="y", values="p").reindex(index=order, columns=order)
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
    ax.tick_params(axis="x", rotation=30)
    ax.tick_params(axis="y", rotation=0)
    for lab in ax.get_xticklabels():
        lab.set_horizontalalignment("right")
    return fig


def profile_figure(
    profile: pd.DataFrame,
    order: Sequence[str],
    palette: Mapping[str, tuple],
    xlabel: str = "τ (episodes)",
    ylabel: str = "Fraction of runs solved within τ episodes",
):
    """Performance profile (run-score distribution) with pointwise 95% bootstrap bands."""
    fig, ax = plt.subplots(figsize=(FULL_WIDTH * 0.6, 2.8))
    for g in order:
        p = profile[profile["group"] == g]
        ax.step(p["tau"], p["fraction"], where="post", color=palette[g], lw=1.3, label=g)
        ax.fill_between(p["tau"], p["lo"], p["hi"], step="post", color=palette[g], alpha=0.18, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Performance profile, 95% bootstrap bands")
    _legend_below(ax, len(order))
    return fig


def compute_figure(scores: pd.DataFrame, order: Sequence[str], palette: Mapping[str, tuple]):
    """Wall time and env steps per second per group: one dot per seed, bar = mean."""
    fig, axs = plt.subplots(1, 2, figsize=(FULL_WIDTH, max(1.5, 0.35 * len(order) + 0.9)), sharey=True)
    for ax, col, label in ((axs[0], "wall_seconds", "Wall time per run (s)"), (axs[1], "sps", "Env steps per second")):
        means = [scores.loc[scores["group"] == g, col].mean() for g in order]
        ax.barh(range(len(order)), means, color=[palette[g] for g in order], alpha=0.35, height=0.6)
        rng = np.random.default_rng(0)
        for i, g in enumerate(order):
            v = scores.loc[scores["group"] == g, col].to_numpy(float)
            ax.scatter(v, i + rng.uniform(-0.15, 0.15, len(v)), s=9, color=palette[g], lw=0)
        ax.set_xlabel(label)
    _group_yaxis(axs[0], order)
    fig.tight_layout()
    return fig
