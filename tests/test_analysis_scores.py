"""analysis.scores and analysis.rules against values computed by hand."""

import numpy as np
import pandas as pd
import pytest

from analysis import rules as R
from analysis import scores as S
from per_exp import contract as C

# ---------------------------------------------------------------- rules


def test_a_run_without_the_rule_keys_is_judged_by_todays_cartpole_rule():
    old = R.run_rules({C.PARAM_MAX_EPISODES: "500"})  # a run made before any solve key existed
    assert old.solve == R.SolveRule(C.SOLVE_RULE_LENGTH, min_length=196, consecutive=10)
    assert old.cap == 500 and old.max_steps == 200
    assert str(old.solve) == "10 episodes in a row of length >= 196"
    v1 = R.run_rules({C.PARAM_MAX_EPISODES: "300", C.PARAM_SUCCESS_LENGTH: "476", C.PARAM_ENV_MAX_STEPS: "500"})
    assert v1.solve.min_length == 476 and v1.max_steps == 500  # min_length follows the env's success length
    own = R.run_rules({C.PARAM_MAX_EPISODES: "300", C.PARAM_SOLVE_MIN_LENGTH: "150", C.PARAM_SOLVE_CONSECUTIVE: "5"})
    assert (own.solve.min_length, own.solve.consecutive) == (150, 5)
    assert own.solve.curve_metric == C.EPISODE_STEPS and own.solve.window_episodes == 5


def test_a_return_rule_is_read_from_the_runs_params():
    r = R.run_rules(
        {
            C.PARAM_MAX_EPISODES: "1000",
            C.PARAM_SOLVE_RULE: C.SOLVE_RULE_MEAN_RETURN,
            C.PARAM_SOLVE_THRESHOLD: "-100.0",
            C.PARAM_ENV_MAX_STEPS: "500",
        }
    )
    assert r.solve.kind == C.SOLVE_RULE_MEAN_RETURN and r.solve.threshold == -100.0 and r.solve.window == 100
    assert r.solve.curve_metric == C.EPISODE_RETURN and r.solve.window_episodes == 100
    assert str(r.solve) == "mean return of the last 100 episodes >= -100"


@pytest.mark.parametrize(
    "params,message",
    [
        ({C.PARAM_MAX_EPISODES: "100", C.PARAM_SOLVE_RULE: "vibes"}, "solve.rule='vibes' is not a solve rule"),
        (
            {C.PARAM_MAX_EPISODES: "100", C.PARAM_SOLVE_RULE: C.SOLVE_RULE_MEAN_RETURN},
            "solve.return_threshold is missing",
        ),
        ({}, "max_episodes is missing"),
        ({C.PARAM_MAX_EPISODES: "1e2x"}, "max_episodes='1e2x' is not a number"),
        ({C.PARAM_MAX_EPISODES: "0"}, "max_episodes=0 is not a cap"),
    ],
)
def test_an_unreadable_rule_says_which_key(params, message):
    with pytest.raises(R.RulesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        R.run_rules(params)


def test_mixed_caps_are_refused_in_one_line_unless_allowed():
    a, b = R.run_rules({C.PARAM_MAX_EPISODES: "100"}), R.run_rules({C.PARAM_MAX_EPISODES: "500"})
    same_measure = R.run_rules({C.PARAM_MAX_EPISODES: "100", C.PARAM_ENV_MAX_STEPS: "500"})
    assert R.refuse_mixed({"1": a, "2": same_measure}, allow=False) is False  # the time limit is an axis
    rules = {"1": a, "2": a, "3": b}
    with pytest.raises(R.MixedRulesError) as e:
        R.refuse_mixed(rules, allow=False)
    msg = str(e.value)
    assert "\n" not in msg and "max_episodes 100 (2 runs), 500 (1 runs)" in msg and R.ALLOW_FLAG in msg
    assert R.refuse_mixed(rules, allow=True) is True
    c = R.run_rules({C.PARAM_MAX_EPISODES: "100", C.PARAM_SOLVE_CONSECUTIVE: "5"})
    assert "solve rule '10 episodes in a row of length >= 196' (1 runs), '5 episodes" in R.describe_mix(
        {"1": a, "2": c}
    )


# ---------------------------------------------------------------- per-run scores


def _toy(eval_metric=False):
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "run_name": ["uniform-dueling-s0", "uniform-dueling-s1"],
            "params.seed": ["0", "1"],
            f"metrics.{C.SOLVED}": [1.0, 0.0],
            f"metrics.{C.SOLVED_EPISODE}": [3.0, np.nan],
            f"metrics.{C.WALL_SECONDS}": [1.0, 2.0],
            f"metrics.{C.SPS}": [100.0, 200.0],
        }
    )
    lengths = {"a": [10.0, 20, 200, 200], "b": [10.0, 10, 10, 10, 10, 40]}
    rows = [("a" if r == "a" else "b", e, C.EPISODE_STEPS, v) for r, vs in lengths.items() for e, v in enumerate(vs)]
    if eval_metric:
        rows += [("a", 1, C.EVAL_RETURN, 50.0), ("a", 3, C.EVAL_RETURN, 190.0)]
    eps = pd.DataFrame(rows, columns=["run_id", "episode", "metric", "value"])
    rules = {
        "a": R.RunRules(6, R.SolveRule(C.SOLVE_RULE_LENGTH, 196, 2), 200),
        "b": R.RunRules(6, R.SolveRule(C.SOLVE_RULE_LENGTH, 196, 2), 200),
    }
    return runs, eps, rules


def test_run_scores_by_hand():
    runs, eps, rules = _toy()
    rs = S.run_scores(runs, eps, pd.Series(["g", "g"]), rules)
    a, b = rs.scores.iloc[0], rs.scores.iloc[1]
    assert a["solved"] and not b["solved"]
    assert a["episodes_to_solve"] == 3.0 and not a["episodes_to_solve_censored"]  # the logged solved_episode
    assert b["episodes_to_solve"] == 6.0 and b["episodes_to_solve_censored"]  # never solved: the cap
    assert a["env_steps_to_solve"] == 10 + 20 + 200 + 200
    assert b["env_steps_to_solve"] == 6 * 200  # never solved: the most its cap allows
    # grid 0..5 (b, unsolved, stopped after 6 episodes); a continues at mean(200, 200) after episode 3
    assert rs.episodes.values[0].tolist() == [10, 20, 200, 200, 200, 200]
    assert a["auc"] == pytest.approx((10 + 20 + 200 * 4) / 6)
    assert b["auc"] == pytest.approx(90 / 6)
    # env-step grid: 0..90 (b used 90 steps); a's steps: 10 at 10, 20 at 20, then 60 of 200
    assert a["auc_steps"] == pytest.approx((10 * 10 + 20 * 20 + 60 * 200) / 90)
    assert b["auc_steps"] == pytest.approx((5 * 10 * 10 + 40 * 40) / 90)
    assert a["final"] == pytest.approx(107.5) and b["final"] == pytest.approx(15.0)  # last 10 (all 4 / all 6)
    assert np.isnan(a["eval_return"]) and not rs.has_eval
    assert rs.curve_metrics == (C.EPISODE_STEPS,)


def test_with_mixed_caps_an_unsolved_run_is_censored_at_what_it_used():
    runs, eps, rules = _toy()
    rs = S.run_scores(runs, eps, pd.Series(["g", "g"]), rules, mixed=True)
    b = rs.scores.iloc[1]
    assert b["episodes_to_solve"] == 6.0 and b["env_steps_to_solve"] == 90.0 and b["env_steps_to_solve_censored"]


def test_the_final_evaluation_return_is_the_last_evaluation():
    runs, eps, rules = _toy(eval_metric=True)
    rs = S.run_scores(runs, eps, pd.Series(["g", "g"]), rules)
    assert rs.has_eval and rs.scores.iloc[0]["eval_return"] == 190.0 and np.isnan(rs.scores.iloc[1]["eval_return"])


def test_a_return_rule_run_is_scored_on_its_returns():
    runs, eps, _ = _toy()
    returns = eps[eps["metric"] == C.EPISODE_STEPS].assign(metric=C.EPISODE_RETURN)
    returns["value"] = -returns["value"]  # Acrobot-like: shorter is better, -1 per step
    rule = R.RunRules(6, R.SolveRule(C.SOLVE_RULE_MEAN_RETURN, threshold=-100.0, window=2), 500)
    rs = S.run_scores(runs, pd.concat([eps, returns]), pd.Series(["g", "g"]), {"a": rule, "b": rule})
    a = rs.scores.iloc[0]
    assert rs.curve_metrics == (C.EPISODE_RETURN,)
    assert a["final"] == pytest.approx(-107.5) and rs.episodes.values[0].tolist()[:4] == [-10, -20, -200, -200]


def test_common_horizon():
    assert S.common_horizon([10, 6, 8], [True, False, False]) == 6  # the first unsolved run to stop
    assert S.common_horizon([10, 6], [True, True]) == 10  # all solved: the longest


def test_startup_is_the_excess_of_the_first_episodes_over_the_steady_speed():
    lengths = np.array([10.0, 10, 10, 10] + [20.0] * 10)
    sps = np.array([5.0, 1000, 1000, 4] + [1000.0] * 10)  # a compile in episode 0 and in the first update's
    updates = np.array([0.0, 0, 0, 5] + [25.0] * 10)
    want = (10 / 5 - 10 / 1000) + (10 / 4 - 10 / 1000)
    assert S.startup_seconds(lengths, sps, updates) == pytest.approx(want)
    assert S.startup_seconds(lengths, np.full(14, 1000.0), updates) == pytest.approx(0.0)
    assert np.isnan(S.startup_seconds(lengths, np.full(14, np.nan), updates))
    # a resumed run pays again at the episode it resumed at
    sps2 = sps.copy()
    sps2[8] = 2.0
    assert S.startup_seconds(lengths, sps2, updates, resumed_at=8) == pytest.approx(want + 20 / 2 - 20 / 1000)
