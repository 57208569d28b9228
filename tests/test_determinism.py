"""One seed drives everything: same config and seed, same episode lengths."""

from __future__ import annotations

import pytest

from per_exp.engine.trainer import Trainer
from tests.support.cli import compose


@pytest.mark.parametrize("preset", [["sampler=sumtree"], ["sampler=uniform"], ["experiment=seed_notebook"]])
def test_same_seed_same_episodes(preset):
    cfg = preset + ["max_episodes=12", "tracking.enabled=false", "seed=5"]
    a = Trainer(compose(cfg)).run().episode_lengths
    b = Trainer(compose(cfg)).run().episode_lengths
    assert a == b and len(a) == 12


def test_different_seeds_differ():
    base = ["max_episodes=12", "tracking.enabled=false"]
    a = Trainer(compose(base + ["seed=1"])).run().episode_lengths
    b = Trainer(compose(base + ["seed=2"])).run().episode_lengths
    assert a != b
