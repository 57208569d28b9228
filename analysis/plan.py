"""Seeds planned, not guessed: which comparisons are decided, and how many seeds the others need.

The stopping rule (``StoppingRule``; the report and the docs state it):

1. Pilot: every group first gets ``MIN_SEEDS_FOR_CI`` seeds (fewer give no CI,
   so a report on them decides nothing and is not a look).
2. At most ``looks`` looks (default 2: the pilot and one planned top-up),
   declared before the first. At every look a comparison is *decided* when the
   ``1 - alpha / looks`` percentile-bootstrap CI on P(X better than Y)
   excludes 0.5 (Bonferroni over the looks: 97.5% CIs for two looks), so the
   chance that a comparison of two equal groups is ever called decided stays
   about ``alpha``.
3. Undecided after a look that is not the last: each group gets the seeds its
   undecided comparisons need (the largest N among them); run the printed
   commands and look again.
4. After the last look an undecided comparison stays undecided. Adding seeds
   until a CI excludes 0.5 without this correction is a sequential design
   that inflates false positives (``scripts/sim_stopping_rule.py`` measures how
   much).

Seeds needed at the observed effect. With N seeds per group, P-hat's standard
error is about sqrt((V_x + V_y) / N) (DeLong's variance components of the
Mann-Whitney statistic, rescaled so that at the current seed counts they
give the bootstrap's own SE). The comparison decides with probability
``power`` when |P - 0.5| = (z_(1 - a/2) + z_power) * SE, so

    N = (z_(1 - a/2) + z_power)^2 * (V_x + V_y) / (P - 0.5)^2,   a = alpha / looks.

It is an estimate at the *observed* effect, which a small pilot measures
noisily; the error control of the rule does not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.stats

from .stats import MIN_SEEDS_FOR_CI, REPS, Comparison, compare

DECIDED, TOP_UP, PILOT, NO_EFFECT, OUT_OF_REACH = "decided", "more seeds", "pilot", "no effect seen", "out of reach"


@dataclass(frozen=True)
class StoppingRule:
    looks: int = 2  # looks declared before the first (the pilot counts as one)
    alpha: float = 0.05  # family-wise error per comparison over all looks
    power: float = 0.8  # chance to decide at the planned N, at the observed effect
    max_seeds: int = 1000  # a comparison needing more per group is reported out of reach
    pilot: int = MIN_SEEDS_FOR_CI

    @property
    def level(self) -> float:
        """The confidence level of every look's CI (Bonferroni over the looks)."""
        return 1.0 - self.alpha / self.looks

    def describe(self) -> str:
        return (
            f"pilot of {self.pilot} seeds per group, then at most {self.looks} looks in all; a comparison is "
            f"decided when its {self.level:.1%} CI on P(X better than Y) excludes 0.5 (Bonferroni: "
            f"{self.alpha:.0%} over {self.looks} looks); seeds planned for {self.power:.0%} power at the "
            "observed effect"
        )


def seeds_needed(c: Comparison, level: float, power: float, min_seeds: int = MIN_SEEDS_FOR_CI) -> float:
    """Seeds per group for the comparison to decide with probability `power` at its observed effect.

    inf when the groups look the same (P = 0.5) or their spread is unknown (< 2 runs).
    """
    effect = abs(c.p - 0.5)
    if effect == 0 or np.isnan(c.var_x) or np.isnan(c.var_y):
        return math.inf
    spread = c.var_x + c.var_y
    now = c.var_x / c.n_x + c.var_y / c.n_y
    if c.has_ci and now > 0:
        spread *= c.se**2 / now  # in the bootstrap's own units
    z = scipy.stats.norm.ppf(1 - (1 - level) / 2) + scipy.stats.norm.ppf(power)
    return float(max(min_seeds, math.ceil(z * z * spread / effect**2)))


@dataclass(frozen=True)
class PairPlan:
    x: str
    y: str
    comparison: Comparison
    status: str  # DECIDED, TOP_UP, PILOT, NO_EFFECT, OUT_OF_REACH
    seeds: float  # per group at the planned look (inf: no finite number)

    @property
    def interval(self) -> tuple[float, float]:
        return next(iter(self.comparison.intervals.values()))


@dataclass
class Plan:
    rule: StoppingRule
    pairs: list[PairPlan]
    have: dict[str, int]  # group -> runs now
    target: dict[str, int] = field(default_factory=dict)  # group -> runs wanted at the next look

    @property
    def missing(self) -> dict[str, int]:
        """Seeds to add per group (only groups that need some)."""
        return {g: self.target[g] - self.have[g] for g in self.target if self.target[g] > self.have[g]}


def plan_comparisons(
    scores: Mapping[str, Sequence[float]],
    censored: Mapping[str, Sequence[bool]] | None = None,
    higher_is_better: bool = True,
    rule: StoppingRule | None = None,
    reps: int = REPS,
    seed: int = 0,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> Plan:
    """Every pair of groups (or the given `pairs`): decided or not at `rule.level`, and seeds to decide."""
    rule = rule or StoppingRule()
    groups = list(scores)
    have = {g: int(np.sum(~np.isnan(np.asarray(scores[g], float)))) for g in groups}
    todo = pairs if pairs is not None else [(a, b) for i, a in enumerate(groups) for b in groups[i + 1 :]]
    out, target = [], dict(have)
    for gx, gy in todo:
        c = compare(
            scores[gx],
            scores[gy],
            None if censored is None else censored[gx],
            None if censored is None else censored[gy],
            higher_is_better,
            levels=(rule.level,),
            reps=reps,
            seed=seed,
            min_n=rule.pilot,
        )
        if not c.has_ci:
            status, n = PILOT, float(rule.pilot)
        elif c.excludes_half(rule.level):
            status, n = DECIDED, float(max(c.n_x, c.n_y))
        else:
            n = seeds_needed(c, rule.level, rule.power, rule.pilot)
            status = NO_EFFECT if math.isinf(n) else (OUT_OF_REACH if n > rule.max_seeds else TOP_UP)
            # the CI says undecided at these counts: a plan below them would change nothing
            if status == TOP_UP:
                n = max(n, max(c.n_x, c.n_y) + 1)
        if status in (PILOT, TOP_UP):
            for g in (gx, gy):
                target[g] = max(target[g], int(n))
        out.append(PairPlan(gx, gy, c, status, n))
    return Plan(rule=rule, pairs=out, have=have, target=target)
