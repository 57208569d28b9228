"""Every env option trains for real, logs its solve rule and evaluation episodes, and evaluation leaves training alone.

Real Hydra composition, real gymnasium envs (and the engine's VecEnv ports),
real MLflow (a SQLite store in a temp folder), short real runs.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium
import pytest

from per_exp import contract as C
from per_exp.config import validate
from per_exp.engine.trainer import run_one
from per_exp.job import run_job
from tests.support.cli import compose, compose_dictconfig

# an id without a numba port: CartPole's dynamics under another name, so the gymnasium adapter steps it
ADAPTER_ID = "PerExpTest/CartPoleByAdapter-v0"
if ADAPTER_ID not in gymnasium.registry:
    gymnasium.register(
        ADAPTER_ID,
        entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        max_episode_steps=60,
        reward_threshold=50.0,
    )

ENV_OPTIONS = {
    "cartpole_v0": [],
    "cartpole_v1": [],
    "acrobot_v1": [],
    "mountaincar_v0": [],
    "gym_id": [f"env.id={ADAPTER_ID}"],
}


def _series(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


@pytest.mark.parametrize("env", sorted(ENV_OPTIONS))
def test_each_env_option_trains_and_logs_its_rule_and_evaluations(env, tmp_path: Path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # without Hydra the job writes its artifacts in the working folder
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [
        f"env={env}",
        *ENV_OPTIONS[env],
        "max_episodes=3",
        "eval.every_episodes=2",
        "eval.episodes=2",
        "checkpoint.every_episodes=0",
        "tracking.log_model=false",
        f"tracking.uri={uri}",
    ]
    cfg = compose_dictconfig(overrides)
    out = run_job(cfg)
    conf = compose(overrides)
    client = MlflowClient(uri)
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params[C.PARAM_ENV_MAX_STEPS] == str(conf.env.max_steps) and params["env.id"] == conf.env.id
    if conf.solve.rule == C.SOLVE_RULE_MEAN_RETURN:
        assert params[C.PARAM_SOLVE_RULE] == C.SOLVE_RULE_MEAN_RETURN
        assert float(params[C.PARAM_SOLVE_THRESHOLD]) == conf.solve.return_threshold
    else:  # CartPole's runs keep the params (and hashes) they always had
        assert C.PARAM_SOLVE_RULE not in params and params[C.PARAM_SOLVE_MIN_LENGTH] == str(conf.env.success_length)
    # evaluations after episode 1 (every 2nd) and after the last one (episode 2)
    returns, lengths = _series(client, run.info.run_id, C.EVAL_RETURN), _series(client, run.info.run_id, C.EVAL_LENGTH)
    assert sorted(returns) == sorted(lengths) == [1, 2]
    assert len(_series(client, run.info.run_id, C.EPISODE_STEPS)) == 3
    for ep in (1, 2):
        assert 1 <= lengths[ep] <= conf.env.max_steps
        # the env's own return, whatever the training reward's shaping
        if conf.env.id.startswith("CartPole") or env == "gym_id":
            assert returns[ep] == lengths[ep]  # +1 per step
        elif env == "mountaincar_v0":
            assert returns[ep] == -lengths[ep]  # -1 per step
        else:  # Acrobot: -1 per step, 0 on the terminal step
            assert -lengths[ep] <= returns[ep] <= -lengths[ep] + 1


def _training_series(overrides: list[str]) -> list[dict]:
    cfg = compose(overrides)
    validate(cfg)
    rows: list[dict] = []
    run_one(cfg, on_episode=lambda ep, m: rows.append({"episode": ep, **m}))
    return rows


@pytest.mark.parametrize(
    "overrides",
    [
        ["max_episodes=40", "seed=3"],  # CartPole-v0: long enough to learn, with priorities in play
        ["env=acrobot_v1", "max_episodes=4", "seed=1"],
        ["env=gym_id", f"env.id={ADAPTER_ID}", "max_episodes=30", "sampler=rank", "seed=2"],
    ],
)
def test_evaluation_leaves_the_training_series_unchanged(overrides):
    off = _training_series([*overrides, "eval.every_episodes=0"])
    on = _training_series([*overrides, "eval.every_episodes=3", "eval.episodes=2"])
    skip = {*C.CLOCK_METRICS, C.EVAL_RETURN, C.EVAL_LENGTH}
    assert len(on) == len(off)
    assert [{k: v for k, v in r.items() if k not in skip} for r in on] == [
        {k: v for k, v in r.items() if k not in skip} for r in off
    ]
    assert sum(C.EVAL_RETURN in r for r in on) >= 2 and not any(C.EVAL_RETURN in r for r in off)


def test_the_mean_return_rule_stops_the_run_where_it_fires():
    # every Acrobot return is >= -500: a 2-episode window at -500 fires after episode 1
    cfg = compose(["env=acrobot_v1", "solve.return_threshold=-500", "solve.window=2", "max_episodes=10"])
    validate(cfg)
    rows: list[dict] = []
    s = run_one(cfg, on_episode=lambda ep, m: rows.append(m))
    assert (s.solved, s.solved_episode, s.episodes) == (True, 1, 2)
    # not before a full window: with window 3 it fires after episode 2
    cfg = compose(["env=acrobot_v1", "solve.return_threshold=-500", "solve.window=3", "max_episodes=10"])
    s = run_one(cfg)
    assert (s.solved_episode, s.episodes) == (2, 3)


def test_evaluations_in_a_group_equal_the_runs_alone():
    """A run's evaluations (and training) are its own: the same in a group of three slots as alone."""
    from per_exp.engine.trainer import RunSpec, run_many

    overrides = ["env=acrobot_v1", "max_episodes=4", "eval.every_episodes=2", "eval.episodes=2"]
    cfgs = [compose([*overrides, f"seed={s}"]) for s in (0, 1, 2)]
    alone = []
    for cfg in cfgs:
        rows: list[dict] = []
        run_one(cfg, on_episode=lambda ep, m, rows=rows: rows.append(m))
        alone.append(rows)
    together: list[list[dict]] = [[], [], []]
    specs = [
        RunSpec(cfg, str(i), on_episode=lambda ep, m, rows=together[i]: rows.append(m)) for i, cfg in enumerate(cfgs)
    ]
    run_many(specs, slots=3)
    strip = set(C.CLOCK_METRICS)
    for a, t in zip(alone, together, strict=True):
        assert [{k: v for k, v in r.items() if k not in strip} for r in a] == [
            {k: v for k, v in r.items() if k not in strip} for r in t
        ]
        assert sum(C.EVAL_RETURN in r for r in a) == 2


def test_a_resumed_run_keeps_its_solve_rule_and_evaluation_stream():
    """Stopped after episode 1 and resumed from its state: the same series, evaluations and solved episode."""
    overrides = [
        "env=acrobot_v1",
        "solve.return_threshold=-500",
        "solve.window=3",
        "max_episodes=10",
        "eval.every_episodes=1",
        "eval.episodes=1",
        "checkpoint.every_episodes=1",
        "seed=4",
    ]
    cfg = compose(overrides)
    whole: list[dict] = []
    states: list[dict] = []
    s = run_one(cfg, on_episode=lambda ep, m: whole.append(m), on_checkpoint=states.append)
    assert (s.solved_episode, s.episodes) == (2, 3)  # the window of 3 fills at episode 2
    resumed: list[dict] = []
    s2 = run_one(cfg, on_episode=lambda ep, m: resumed.append(m), state=states[0])  # the state after episode 0
    assert (s2.solved_episode, s2.episodes) == (2, 3)
    strip = set(C.CLOCK_METRICS)
    assert [{k: v for k, v in r.items() if k not in strip} for r in resumed] == [
        {k: v for k, v in r.items() if k not in strip} for r in whole[1:]
    ]
