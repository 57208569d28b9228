"""Ablation axes, found from the runs themselves.

An axis is a param (``params.<key>`` column) that takes more than one value
across the selected runs. The seed is the replicate, never an axis, and a few
bookkeeping keys (console cadence, test hooks, tracking) are ignored. Params
that only follow another axis (choosing ``sampler=uniform`` also changes
``sampler.alpha``) are folded into it as *aliases*, so groups and facets stay
the real design: a param is an alias when its value is a function of an axis
already kept. Axes are kept in order of more distinct values first, then
``*.name`` keys, then shorter keys, so the config-group choice represents its
dependants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from per_exp import contract as C

#: never axes: the replicate and keys that do not change what is learned
IGNORED = {C.PARAM_SEED, "log_every_episodes", "fail_at_episode", "torch_threads"}
IGNORED_PREFIXES = ("tracking.", "hydra.", "mlflow.")


@dataclass
class Axes:
    axes: list  # param keys (without "params."), the grouping
    aliases: dict = field(default_factory=dict)  # alias key -> axis key it follows
    constant: dict = field(default_factory=dict)  # key -> the single value


def _ignored(key: str, extra=()) -> bool:
    return key in IGNORED or key in extra or key.startswith(IGNORED_PREFIXES)


def _is_function_of(df: pd.DataFrame, dep: str, of: str) -> bool:
    return bool((df.groupby(of, dropna=False)[dep].nunique(dropna=False) <= 1).all())


def find_axes(runs: pd.DataFrame, ignore=()) -> Axes:
    params = {c[len("params.") :]: c for c in runs.columns if c.startswith("params.")}
    df = pd.DataFrame({k: runs[c].astype("string").fillna("<unset>") for k, c in params.items()})
    varying, constant = [], {}
    for k in df.columns:
        if _ignored(k, ignore):
            continue
        n = df[k].nunique()
        if n > 1:
            varying.append(k)
        else:
            constant[k] = df[k].iloc[0] if len(df) else None
    order = sorted(varying, key=lambda k: (-df[k].nunique(), not k.endswith(".name"), len(k), k))
    kept: list[str] = []
    aliases: dict[str, str] = {}
    for k in order:
        base = next((a for a in kept if _is_function_of(df, k, a)), None)
        if base is None:
            kept.append(k)
        else:
            aliases[k] = base
    # present axes in a stable, readable order: config-group names first, then alphabetical
    kept.sort(key=lambda k: (not k.endswith(".name"), k))
    return Axes(axes=kept, aliases=aliases, constant=constant)


def short(key: str) -> str:
    """``sampler.name`` -> ``sampler``; other keys unchanged."""
    return key[: -len(".name")] if key.endswith(".name") else key


def _sort_key(v: str):
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def axis_values(runs: pd.DataFrame, key: str) -> list:
    """The values one axis takes, numbers in numeric order."""
    return sorted(runs[f"params.{key}"].astype(str).unique(), key=_sort_key)


def display_names(keys: list[str]) -> dict[str, str]:
    """How each axis is named in labels: ``sampler.name`` -> ``sampler``, other keys as they are."""
    return {k: short(k) for k in keys}


def group_labels(runs: pd.DataFrame, axes: Axes) -> pd.Series:
    """One label per run: ``sampler=sumtree, warmup_episodes=30``; ``all`` if nothing varies."""
    if not axes.axes:
        return pd.Series("all", index=runs.index, name="group")
    names = display_names(axes.axes)
    parts = [names[a] + "=" + runs[f"params.{a}"].astype(str) for a in axes.axes]
    label = parts[0]
    for p in parts[1:]:
        label = label + ", " + p
    return label.rename("group")


def group_order(runs: pd.DataFrame, axes: Axes) -> list:
    """Groups in axis-value order (numeric values sorted numerically)."""
    if not axes.axes:
        return ["all"]
    keyed = runs.assign(_g=group_labels(runs, axes))
    firsts = keyed.drop_duplicates("_g")
    sort_keys = {
        row["_g"]: tuple(_sort_key(str(row[f"params.{a}"])) for a in axes.axes) for _, row in firsts.iterrows()
    }
    return sorted(sort_keys, key=lambda g: sort_keys[g])
