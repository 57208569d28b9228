"""When a run counts as solved: the two solve rules as pure functions over its episodes.

- ``length`` (CartPole's): ``consecutive`` episodes in a row, each at least
  ``min_length`` steps long. The solved episode is the last of them.
- ``mean_return`` (gymnasium's ``reward_threshold``, e.g. Acrobot-v1 -100,
  MountainCar-v0 -110): the mean return of the last ``window`` episodes is at
  least ``threshold``; it needs ``window`` episodes (the "100 consecutive
  trials" of the Gym wiki), and the solved episode is the last of the window.

The trainer folds each finished episode into a :class:`SolveState` with
:func:`advance` (constant work per episode, checkpointable as plain data);
:func:`solved_episode` applies the same rule to a whole series, for tests
and offline checks. Both read the rule as a :class:`Rule` built from the
config by :func:`rule_from`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from per_exp import contract as C

RULES = (C.SOLVE_RULE_LENGTH, C.SOLVE_RULE_MEAN_RETURN)


@dataclass(frozen=True)
class Rule:
    kind: str  # one of RULES
    min_length: int = 0  # length rule
    consecutive: int = 0
    threshold: float = 0.0  # mean-return rule
    window: int = 0


def rule_from(solve_cfg) -> Rule:
    """The rule a `per_exp.config.SolveConfig` describes (validated beforehand)."""
    if solve_cfg.rule == C.SOLVE_RULE_LENGTH:
        return Rule(C.SOLVE_RULE_LENGTH, min_length=int(solve_cfg.min_length), consecutive=int(solve_cfg.consecutive))
    if solve_cfg.rule == C.SOLVE_RULE_MEAN_RETURN:
        return Rule(C.SOLVE_RULE_MEAN_RETURN, threshold=float(solve_cfg.return_threshold), window=int(solve_cfg.window))
    raise ValueError(f"solve.rule={solve_cfg.rule!r}: allowed {', '.join(RULES)}")


@dataclass(frozen=True)
class SolveState:
    """What the rule remembers between episodes: the current streak, or the last `window` returns."""

    streak: int = 0  # length rule: successes in a row so far
    returns: tuple[float, ...] = field(default=())  # mean-return rule: the last `window` returns, oldest first
    solved: bool = False


def advance(rule: Rule, state: SolveState, length: int, episode_return: float) -> SolveState:
    """The state after one more finished episode; ``solved`` is true once the rule fires on it."""
    if rule.kind == C.SOLVE_RULE_LENGTH:
        streak = state.streak + 1 if length >= rule.min_length else 0
        return replace(state, streak=streak, solved=streak >= rule.consecutive)
    returns = (*state.returns, float(episode_return))[-rule.window :]
    full = len(returns) == rule.window
    # the sum of `window` floats in a fixed order: the same number however the series is replayed
    return replace(state, returns=returns, solved=full and sum(returns) / rule.window >= rule.threshold)


def solved_episode(rule: Rule, lengths: Sequence[int], returns: Sequence[float]) -> int | None:
    """The 0-based episode at which the rule first fires on this series, None if it never does."""
    state = SolveState()
    for i, (n, r) in enumerate(zip(lengths, returns, strict=True)):
        state = advance(rule, state, int(n), float(r))
        if state.solved:
            return i
    return None


def replay(rule: Rule, lengths: Sequence[int], returns: Sequence[float]) -> SolveState:
    """The state after a whole series (a resumed run rebuilds its state from its logged episodes)."""
    state = SolveState()
    for n, r in zip(lengths, returns, strict=True):
        state = advance(rule, state, int(n), float(r))
    return state
