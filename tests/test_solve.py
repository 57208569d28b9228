"""The solve rules: the trainer's incremental rule, the rule over a whole series, and analysis's reading of it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.rules import run_rules
from per_exp import contract as C
from per_exp import solve
from per_exp.config import science_params
from tests.support.cli import compose, compose_resolved

LENGTH = solve.Rule(C.SOLVE_RULE_LENGTH, min_length=196, consecutive=3)
MEAN = solve.Rule(C.SOLVE_RULE_MEAN_RETURN, threshold=-100.0, window=4)


def test_length_rule_needs_the_streak_unbroken():
    lengths = [200, 196, 150, 200, 199, 196, 200]
    assert solve.solved_episode(LENGTH, lengths, [0.0] * 7) == 5  # 3, 4, 5 in a row; 2 broke the first streak
    assert solve.solved_episode(LENGTH, [200, 195, 200, 200], [0.0] * 4) is None  # 195 < 196


def test_mean_return_rule_needs_a_full_window_at_or_above_the_threshold():
    returns = [-90.0, -90.0, -90.0, -500.0, -100.0, -100.0, -100.0, -100.0]
    # a full window first exists at episode 3 (mean -192.5); windows ending at 4..6 hold the -500
    assert solve.solved_episode(MEAN, [1] * 8, returns) == 7  # mean exactly -100: at or above
    # three good episodes never solve: the window needs `window` of them
    assert solve.solved_episode(MEAN, [1] * 3, [0.0] * 3) is None
    assert solve.solved_episode(MEAN, [1] * 4, [-99.0, -101.0, -100.0, -100.5]) is None  # mean -100.125


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-500, 0), min_size=1, max_size=60), st.integers(1, 10), st.integers(-400, -50))
def test_incremental_state_equals_the_rule_over_the_series(returns, window, threshold):
    rule = solve.Rule(C.SOLVE_RULE_MEAN_RETURN, threshold=float(threshold), window=window)
    state = solve.SolveState()
    fired = None
    for i, r in enumerate(returns):
        state = solve.advance(rule, state, 1, float(r))
        mean_ok = i + 1 >= window and np.mean(returns[i + 1 - window : i + 1]) >= threshold
        assert state.solved == mean_ok
        if state.solved and fired is None:
            fired = i
    assert solve.solved_episode(rule, [1] * len(returns), [float(r) for r in returns]) == fired
    assert solve.replay(rule, [1] * len(returns), [float(r) for r in returns]) == state


@pytest.mark.parametrize("env", ["cartpole_v0", "cartpole_v1", "acrobot_v1", "mountaincar_v0"])
def test_the_trainer_and_the_analysis_read_the_same_rule_from_a_run(env):
    """The rule the trainer stops by (from the config) is the rule analysis/ reads back from the logged params."""
    trainer_rule = solve.rule_from(compose([f"env={env}"]).solve)
    params = {k: str(v) for k, v in science_params(compose_resolved([f"env={env}"])).items()}
    read = run_rules(params).solve
    assert read.kind == trainer_rule.kind
    if read.kind == C.SOLVE_RULE_LENGTH:
        assert (read.min_length, read.consecutive) == (trainer_rule.min_length, trainer_rule.consecutive)
        assert C.PARAM_SOLVE_RULE not in params  # CartPole runs log what they always did
    else:
        assert (read.threshold, read.window) == (trainer_rule.threshold, trainer_rule.window)
        assert params[C.PARAM_SOLVE_RULE] == C.SOLVE_RULE_MEAN_RETURN
