"""The "fixed configuration" rules (analysis.effective) checked against the real engine.

For each key the analysis calls inert under some setting: under that setting, changing the key leaves
every learning series of a short real run unchanged; under a setting where the rule does not apply,
the same change alters them (so the check could fail).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from analysis.effective import inert_reason
from per_exp import contract as C
from per_exp.config import science_params
from per_exp.engine.trainer import run_one
from tests.support.cli import compose, compose_resolved

EPISODES = 6  # enough for ~70 gradient updates from one seed
LEARNING = (C.EPISODE_STEPS, C.TRAIN_LOSS, C.TRAIN_TD_ABS_MEAN)

LINEAR = ("epsilon.schedule=linear_steps", "epsilon.decay_steps=100")
CASES = [
    # key, changed value, a setting the rules call inert, a setting where the key takes effect
    ("epsilon.start", "0.3", ("epsilon.schedule=inverse_episode",), LINEAR),
    ("epsilon.end", "0.5", ("epsilon.schedule=inverse_episode",), LINEAR),
    ("epsilon.decay_steps", "20", ("epsilon.schedule=inverse_episode",), LINEAR),
    ("epsilon.scale", "0.9", LINEAR, ("epsilon.schedule=inverse_episode",)),
    ("sampler.alpha", "0.2", ("sampler=uniform",), ("sampler=sumtree",)),
    ("sampler.eps", "0.5", ("sampler=rank",), ("sampler=sumtree",)),
    ("sampler.beta0", "1.0", ("sampler=sumtree", "sampler.is_weights=false"), ("sampler=sumtree",)),
    ("sampler.beta_horizon", "5", ("sampler=sumtree", "sampler.is_weights=false"), ("sampler=sumtree",)),
    ("sampler.weight_norm", "buffer", ("sampler=sumtree", "sampler.is_weights=false"), ("sampler=sumtree",)),
    ("sampler.is_weights", "false", ("sampler=uniform",), ("sampler=sumtree",)),
    ("sampler.stratified", "false", ("sampler=uniform",), ("sampler=sumtree",)),
    ("sampler.new_priority", "zero", ("sampler=uniform",), ("sampler=sumtree",)),
    ("sampler.refresh", "full_episode", ("sampler=uniform",), ("sampler=sumtree",)),
    ("sampler.scan_off_by_one", "true", ("sampler=uniform",), ("sampler=linear_scan",)),
    ("warmup_episodes", "5", ("sampler=uniform",), ("sampler=sumtree",)),  # updates start in episode 3
    ("env.success_length", "9", ("env=acrobot_v1",), ("env=cartpole_v0",)),  # shaping: +1 from 9 steps
]


@functools.cache
def _series(overrides: tuple[str, ...]) -> dict[str, np.ndarray]:
    rows: list[dict] = []
    run_one(
        compose([*overrides, f"max_episodes={EPISODES}", "tracking.enabled=false"]),
        on_episode=lambda e, m: rows.append(m),
    )
    return {k: np.array([r.get(k, np.nan) for r in rows]) for k in LEARNING}


def _same(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k], equal_nan=True) for k in LEARNING)


def _params(overrides) -> dict[str, str]:
    return {k: str(v) for k, v in science_params(compose_resolved(list(overrides))).items()}


@pytest.mark.slow
@pytest.mark.parametrize("key,value,inert,effective", CASES, ids=[c[0] for c in CASES])
def test_a_key_the_report_leaves_out_changes_nothing_there_and_something_elsewhere(key, value, inert, effective):
    assert inert_reason(key, _params(inert)) is not None  # the analysis leaves it out here...
    assert inert_reason(key, _params(effective)) is None  # ...and lists it here
    assert _same(_series(inert), _series((*inert, f"{key}={value}")))
    assert not _same(_series(effective), _series((*effective, f"{key}={value}")))
