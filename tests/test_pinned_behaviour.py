"""Behaviour pinned before the issue-10 refactor: episode lengths and config hashes.

Every number these tests expect (tests/support/pinned.py) was RECORDED on the
untouched code at commit 0ca87329ca3ee882f155c278a5e305c1e888cbc9 (main,
2026-11-25), before any module moved or any name changed, by running the real
Trainer on real CartPole with tracking off and hashing real Hydra
compositions. They are literals on purpose: a refactor that changes one
episode length or one config hash has changed behaviour (or the identity of
existing MLflow runs), and must say so.

The lengths are exact for one CPU family and BLAS kernel family; another
rounds differently, so tests/support/pinned.py holds one recording per family
seen (AMD for the torch reference, OpenBLAS's Haswell kernels for the fused
backend) and says how each was made.
"""

from __future__ import annotations

import pytest

from per_exp import contract as C
from per_exp.config import config_hash
from per_exp.engine.trainer import Engine, RunSpec, run_one
from per_exp.engine.vecenv.cartpole import CartPoleVecEnv
from tests.support.cli import compose, compose_resolved, run_cli
from tests.support.pinned import PINNED_HASHES, PINNED_LENGTHS, pinned_lengths


@pytest.mark.parametrize("name", sorted(PINNED_LENGTHS))
def test_episode_lengths_are_the_pinned_ones(name):
    overrides, episodes, _ = PINNED_LENGTHS[name]
    lengths = pinned_lengths(name)  # per BLAS kernels and CPU vendor: tests/support/pinned.py says why
    s = run_one(compose([*overrides, f"max_episodes={episodes}", "tracking.enabled=false"]))
    assert s.episode_lengths == lengths


@pytest.mark.parametrize("overrides, expected", PINNED_HASHES, ids=[" ".join(o) or "default" for o, _ in PINNED_HASHES])
def test_config_hash_is_the_pinned_one(overrides, expected):
    assert config_hash(compose_resolved(overrides)) == expected


@pytest.mark.slow
def test_the_command_line_run_logs_the_pinned_lengths_and_hash(tmp_path, store):
    """The whole path (CLI -> Hydra -> job -> engine -> MLflow) gives the same numbers."""
    from mlflow.tracking import MlflowClient

    r = run_cli(["sampler=uniform", "max_episodes=20", f"tracking.uri={store}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    c = MlflowClient(store)
    exp_id = c.get_experiment_by_name("per-cartpole").experiment_id
    (run,) = c.search_runs([exp_id], C.tag_equals(C.TAG_ROLE, C.ROLE_JOB))  # not the claims registry
    steps = sorted(c.get_metric_history(run.info.run_id, C.EPISODE_STEPS), key=lambda m: m.step)
    assert [int(m.value) for m in steps] == pinned_lengths("uniform")[:20]
    assert run.data.tags[C.TAG_CONFIG_HASH] == "eee06726f9b998d8"


def test_env_id_selects_the_env_and_v1_at_200_steps_trains_as_the_pinned_v0():
    """`env.id` is now what gymnasium builds. CartPole-v1 with v0's 200-step limit has v0's dynamics, so
    the default run (env=cartpole_v0, now really CartPole-v0) and this one give the pinned lengths: the
    value of `env.id` means what it meant before, and the config hash did not need a new version."""
    lengths = pinned_lengths("default")
    engine = Engine([RunSpec(compose(["env.id=CartPole-v1", "max_episodes=30", "tracking.enabled=false"]))])
    assert isinstance(engine.env, CartPoleVecEnv)  # the numba port of gymnasium's CartPole (v0 and v1 dynamics)
    (result,) = engine.run()
    assert result.summary is not None and result.summary.episode_lengths == lengths[:30]
