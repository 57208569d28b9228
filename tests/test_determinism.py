"""One seed drives everything: same config and seed, same episode lengths."""

from __future__ import annotations

import pytest

from per_exp.engine.trainer import run_one
from tests.support.cli import compose


@pytest.mark.parametrize("preset", [["sampler=sumtree"], ["sampler=uniform"], ["experiment=seed_notebook"]])
def test_same_seed_same_episodes(preset):
    cfg = preset + ["max_episodes=12", "tracking.enabled=false", "seed=5"]
    a = run_one(compose(cfg)).episode_lengths
    b = run_one(compose(cfg)).episode_lengths
    assert a == b and len(a) == 12


def test_different_seeds_differ():
    base = ["max_episodes=12", "tracking.enabled=false"]
    a = run_one(compose(base + ["seed=1"])).episode_lengths
    b = run_one(compose(base + ["seed=2"])).episode_lengths
    assert a != b
