"""Which config keys take effect in a run, so that "fixed configuration" lists only those.

A run's params hold every key of its config, including keys its settings make
inert: the linear epsilon keys under the inverse-episode schedule, every
priority key under uniform replay. Listing them as the sweep's "fixed
configuration" suggests they mattered. ``INERT`` states, key by key, the
settings under which the trainer never reads a key; the tests check each
statement against the real trainer (changing the key there leaves the
learning series unchanged, and changing it where the rule does not apply
changes them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from per_exp import contract as C

Params = Mapping[str, str]


def _is(key: str, *values: str, default: str = "") -> Callable[[Params], bool]:
    return lambda p: str(p.get(key, default)).lower() in values


PRIORITY_KEYS = (
    "sampler.alpha",
    "sampler.eps",
    "sampler.beta0",
    "sampler.beta_horizon",
    "sampler.is_weights",
    "sampler.weight_norm",
    "sampler.stratified",
    "sampler.new_priority",
    "sampler.refresh",
    "sampler.scan_off_by_one",
)


@dataclass(frozen=True)
class Inert:
    keys: tuple[str, ...]
    when: Callable[[Params], bool]
    setting: str  # the setting, as the report names it
    why: str = ""  # what about it makes the keys inert


INERT: tuple[Inert, ...] = (
    Inert(
        ("epsilon.start", "epsilon.end", "epsilon.decay_steps"),
        _is("epsilon.schedule", "inverse_episode", default="inverse_episode"),
        "epsilon.schedule=inverse_episode",
        "it reads epsilon.scale only",
    ),
    Inert(("epsilon.scale",), _is("epsilon.schedule", "linear_steps"), "epsilon.schedule=linear_steps"),
    Inert(
        (*PRIORITY_KEYS, "warmup_episodes"),
        _is("sampler.name", "uniform"),
        "sampler=uniform",
        "no priorities, no IS weights, nothing to warm up",
    ),
    Inert(
        ("sampler.scan_off_by_one",),
        _is("sampler.name", "sumtree", "rank"),
        "sampler=sumtree or rank",
        "only linear_scan scans",
    ),
    Inert(("sampler.eps",), _is("sampler.name", "rank"), "sampler=rank", "a ranking ignores eps"),
    Inert(
        ("sampler.beta0", "sampler.beta_horizon", "sampler.weight_norm"),
        _is("sampler.is_weights", "false"),
        "sampler.is_weights=false",
        "no IS weights to anneal or normalise",
    ),
    Inert(
        (C.PARAM_SOLVE_THRESHOLD, C.PARAM_SOLVE_WINDOW),
        lambda p: str(p.get(C.PARAM_SOLVE_RULE) or C.SOLVE_RULE_LENGTH) == C.SOLVE_RULE_LENGTH,
        f"{C.PARAM_SOLVE_RULE}={C.SOLVE_RULE_LENGTH}",
    ),
    Inert(
        (C.PARAM_SUCCESS_LENGTH,),
        lambda p: _is("env.reward", "env")(p) and _is(C.PARAM_SOLVE_RULE, C.SOLVE_RULE_MEAN_RETURN)(p),
        f"env.reward=env and {C.PARAM_SOLVE_RULE}={C.SOLVE_RULE_MEAN_RETURN}",
        "only the seed's shaping and the length rule read it",
    ),
    Inert(
        (C.PARAM_SOLVE_MIN_LENGTH, C.PARAM_SOLVE_CONSECUTIVE),
        _is(C.PARAM_SOLVE_RULE, C.SOLVE_RULE_MEAN_RETURN),
        f"{C.PARAM_SOLVE_RULE}={C.SOLVE_RULE_MEAN_RETURN}",
    ),
)


def inert_rule(key: str, params: Params) -> Inert | None:
    """The rule under which `key` has no effect in a run with these params, None when it takes effect."""
    for rule in INERT:
        if key in rule.keys and rule.when(params):
            return rule
    return None


def inert_reason(key: str, params: Params) -> str | None:
    """The setting that makes `key` inert in a run with these params, None when it takes effect."""
    rule = inert_rule(key, params)
    return rule.setting if rule else None


def explain(setting: str) -> str:
    """A setting with what about it makes keys inert."""
    why = next((r.why for r in INERT if r.setting == setting and r.why), "")
    return f"{setting}: {why}" if why else setting


@dataclass(frozen=True)
class FixedKey:
    key: str
    value: str
    n_effective: int  # runs in which the key takes effect
    n_runs: int
    why_not: tuple[str, ...]  # the settings that make it inert in the other runs


def fixed_configuration(runs: pd.DataFrame, constant: Mapping[str, str]) -> tuple[list[FixedKey], list[FixedKey]]:
    """The constant keys split into (takes effect in some run, inert in every run)."""
    params = [
        {str(c)[len("params.") :]: v for c, v in row.items() if str(c).startswith("params.") and isinstance(v, str)}
        for row in runs.to_dict("records")
    ]
    live: list[FixedKey] = []
    dead: list[FixedKey] = []
    for key, value in sorted(constant.items()):
        reasons = [inert_reason(key, p) for p in params]
        why = tuple(dict.fromkeys(r for r in reasons if r))
        fk = FixedKey(key, str(value), sum(r is None for r in reasons), len(params), why)
        (live if fk.n_effective else dead).append(fk)
    return live, dead
