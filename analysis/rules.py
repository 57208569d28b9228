"""What a run's scores mean: its episode cap and solve rule, read from its own params.

"Episodes to solve" is only comparable between runs that had the same cap
(``max_episodes``) and the same solve rule: a group capped at 100 episodes
"solves" sooner than the same config capped at 500, because its unsolved
runs count as 100. So every run carries its :class:`RunRules`, read from its
params by :func:`run_rules`; a run made before a key existed gets today's
CartPole value (the length rule, 10 episodes of at least 196 steps, a
200-step limit), the same value the trainer behaved as then.
:func:`measurement_sets` groups runs by their rules, and :func:`refuse_mixed`
refuses a mix in one line unless the user asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from per_exp import contract as C

#: today's CartPole values, for runs made before the keys existed
DEFAULT_MIN_LENGTH = 196
DEFAULT_CONSECUTIVE = 10
DEFAULT_WINDOW = 100  # gymnasium's "average over 100 consecutive trials"
DEFAULT_MAX_STEPS = 200


class RulesError(ValueError):
    """A run whose solve rule cannot be read from its params (the message says which key and why)."""


@dataclass(frozen=True)
class SolveRule:
    kind: str  # C.SOLVE_RULE_LENGTH or C.SOLVE_RULE_MEAN_RETURN
    min_length: int = 0  # length rule: an episode at least this long is a success ...
    consecutive: int = 0  # ... and this many successes in a row solve
    threshold: float = 0.0  # mean-return rule: the mean return over `window` episodes reaching this solves
    window: int = 0

    def __str__(self) -> str:
        if self.kind == C.SOLVE_RULE_LENGTH:
            return f"{self.consecutive} episodes in a row of length >= {self.min_length}"
        return f"mean return of the last {self.window} episodes >= {self.threshold:g}"

    @property
    def curve_metric(self) -> str:
        """The per-episode series whose level the rule judges: the run's learning curve."""
        return C.EPISODE_STEPS if self.kind == C.SOLVE_RULE_LENGTH else C.EPISODE_RETURN

    @property
    def window_episodes(self) -> int:
        """How many final episodes the rule looks at (a solved run's level is their mean)."""
        return self.consecutive if self.kind == C.SOLVE_RULE_LENGTH else self.window


@dataclass(frozen=True)
class RunRules:
    cap: int  # max_episodes: a run that has not solved by then stops unsolved
    solve: SolveRule
    max_steps: int  # the env's time limit: lengths and (per-step) returns live within +-max_steps

    def __str__(self) -> str:
        return f"solve rule '{self.solve}', cap {self.cap} episodes"

    @property
    def measure(self) -> tuple[int, SolveRule]:
        """What must be equal for two runs' scores to compare (the time limit is a science axis)."""
        return (self.cap, self.solve)


def _number(params: Mapping[str, str], key: str, default, kind=int):
    raw = params.get(key)
    if raw is None or raw == "" or raw == "None":
        if default is None:
            raise RulesError(f"param {key} is missing")
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise RulesError(f"param {key}={raw!r} is not a number") from None
    if kind is int:
        if value != int(value):
            raise RulesError(f"param {key}={raw!r} is not an integer")
        return int(value)
    return value


def run_rules(params: Mapping[str, str]) -> RunRules:
    """A run's cap and solve rule from its params (`key -> logged string`); RulesError if unreadable."""
    kind = params.get(C.PARAM_SOLVE_RULE) or C.SOLVE_RULE_LENGTH
    if kind == C.SOLVE_RULE_LENGTH:
        success = _number(params, C.PARAM_SUCCESS_LENGTH, DEFAULT_MIN_LENGTH)
        rule = SolveRule(
            kind,
            min_length=_number(params, C.PARAM_SOLVE_MIN_LENGTH, success),
            consecutive=_number(params, C.PARAM_SOLVE_CONSECUTIVE, DEFAULT_CONSECUTIVE),
        )
    elif kind == C.SOLVE_RULE_MEAN_RETURN:
        rule = SolveRule(
            kind,
            threshold=_number(params, C.PARAM_SOLVE_THRESHOLD, None, float),
            window=_number(params, C.PARAM_SOLVE_WINDOW, DEFAULT_WINDOW),
        )
    else:
        allowed = f"{C.SOLVE_RULE_LENGTH} or {C.SOLVE_RULE_MEAN_RETURN}"
        raise RulesError(f"param {C.PARAM_SOLVE_RULE}={kind!r} is not a solve rule this analysis knows ({allowed})")
    cap = _number(params, C.PARAM_MAX_EPISODES, None)
    if cap < 1:
        raise RulesError(f"param {C.PARAM_MAX_EPISODES}={cap} is not a cap (an integer >= 1)")
    return RunRules(cap=cap, solve=rule, max_steps=_number(params, C.PARAM_ENV_MAX_STEPS, DEFAULT_MAX_STEPS))


def measurement_sets(rules: Mapping[str, RunRules]) -> dict[tuple[int, SolveRule], list[str]]:
    """Run ids by their (cap, solve rule), most runs first."""
    sets: dict[tuple[int, SolveRule], list[str]] = {}
    for run_id, r in rules.items():
        sets.setdefault(r.measure, []).append(run_id)
    return dict(sorted(sets.items(), key=lambda kv: -len(kv[1])))


def describe_mix(rules: Mapping[str, RunRules]) -> str:
    """What differs between the runs' rules, e.g. ``max_episodes 500 (20 runs), 100 (20 runs)``."""
    sets = measurement_sets(rules)
    keys = list(sets)
    parts = []
    if len({cap for cap, _ in keys}) > 1:
        caps: dict[int, int] = {}
        for (cap, _), ids in sets.items():
            caps[cap] = caps.get(cap, 0) + len(ids)
        parts.append(f"{C.PARAM_MAX_EPISODES} " + ", ".join(f"{c} ({n} runs)" for c, n in caps.items()))
    if len({solve for _, solve in keys}) > 1:
        solves: dict[SolveRule, int] = {}
        for (_, solve), ids in sets.items():
            solves[solve] = solves.get(solve, 0) + len(ids)
        parts.append("solve rule " + ", ".join(f"'{s}' ({n} runs)" for s, n in solves.items()))
    return "; ".join(parts)


class MixedRulesError(ValueError):
    """Runs with different caps or solve rules, and the user did not ask to compare them."""


ALLOW_FLAG = "--allow-mixed-rules"


def refuse_mixed(rules: Mapping[str, RunRules], allow: bool) -> bool:
    """True when the runs mix caps or solve rules (allowed); MixedRulesError (one line) when not allowed."""
    if len({r.measure for r in rules.values()}) <= 1:
        return False
    if allow:
        return True
    raise MixedRulesError(
        f"these runs had different episode caps or solve rules, so their scores do not compare: "
        f"{describe_mix(rules)}; report one set at a time (--sweep, or --where KEY=VALUE), or pass "
        f"{ALLOW_FLAG} to compare them with every unsolved run censored at its own cap"
    )
