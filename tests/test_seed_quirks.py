"""The seed preset really behaves like the notebook (real Trainer, real CartPole)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from per_exp.engine.envs import shaped_reward, stored_terminal
from per_exp.engine.trainer import Trainer
from tests.support.cli import compose

SEED = ["experiment=seed_notebook", "tracking.enabled=false"]


def _trainer(extra: list[str]) -> Trainer:
    return Trainer(compose(SEED + extra))


def test_reward_is_minus_one_plus_one_zero():
    assert shaped_reward("seed", 1.0, done=False, length=50, success_length=196) == 0.0
    assert shaped_reward("seed", 1.0, done=True, length=195, success_length=196) == -1.0
    assert shaped_reward("seed", 1.0, done=True, length=196, success_length=196) == 1.0
    assert shaped_reward("seed", 1.0, done=True, length=200, success_length=196) == 1.0
    assert shaped_reward("env", 1.0, done=True, length=10, success_length=196) == 1.0


def test_time_limit_is_terminal_only_in_the_seed_preset():
    assert stored_terminal(False, True, truncation_as_terminal=True) is True
    assert stored_terminal(False, True, truncation_as_terminal=False) is False
    assert stored_terminal(True, False, truncation_as_terminal=False) is True
    assert compose(SEED).env.truncation_as_terminal is True
    assert compose().env.truncation_as_terminal is False


def test_stored_rewards_follow_the_seed_scheme():
    t = _trainer(["max_episodes=6"])
    s = t.run()
    n = t.buffer.size
    r, d = t.buffer.rewards[:n], t.buffer.dones[:n]
    # early episodes all fail: exactly one -1 per episode, on its terminal transition
    assert all(length < 196 for length in s.episode_lengths)
    assert set(np.unique(r)) <= {0.0, -1.0}
    assert (r == -1.0).sum() == len(s.episode_lengths) == d.sum()
    assert np.array_equal(r == -1.0, d == 1.0)


def test_new_transitions_are_pushed_with_td_error_zero():
    t = _trainer([])
    eps = t.cfg.sampler.eps
    slot = t.buffer.add(np.zeros(4), 0, 0.0, np.zeros(4), False)
    t.sampler.add(slot)
    assert t.sampler.prios[slot] == pytest.approx(eps)  # (|0| + eps) ** 1


def test_full_td_refresh_at_episode_end():
    t = _trainer(["max_episodes=2"])  # episode 1 ends with a refresh and no target sync
    t.run()
    n = t.buffer.size
    td = t.agent.td_errors(t.buffer.all())
    np.testing.assert_allclose(t.sampler.prios[:n], np.abs(td) + t.cfg.sampler.eps, rtol=1e-5, atol=1e-7)


def test_uniform_replay_during_the_first_30_episodes_and_sync_every_2():
    t = _trainer(["max_episodes=32"])
    used: list[tuple[int, str]] = []
    synced: list[int] = []
    for name, sampler in (("uniform", t.warmup_sampler), ("prioritized", t.sampler)):
        orig = sampler.sample

        def spy(*a, _orig=orig, _name=name, **k):
            used.append((t.episode, _name))
            return _orig(*a, **k)

        sampler.sample = spy
    orig_sync = t.agent.sync_target

    def spy_sync():
        synced.append(t.episode)
        orig_sync()

    t.agent.sync_target = spy_sync
    t.run()
    assert {n for e, n in used if e < 30} == {"uniform"}
    assert {n for e, n in used if e >= 30} == {"prioritized"}
    assert synced == list(range(0, 32, 2))


def test_target_starts_from_its_own_init_in_the_seed_preset():
    seed_t, paper_t = _trainer([]), Trainer(compose(["tracking.enabled=false"]))

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))

    assert not same(seed_t.agent.online, seed_t.agent.target)
    assert same(paper_t.agent.online, paper_t.agent.target)


def test_scan_returns_the_successor_slot_only_with_the_seed_switch():
    from per_exp.engine.samplers import make_sampler

    for off_by_one, expected in ((False, 2), (True, 3)):
        cfg = compose(SEED + [f"sampler.scan_off_by_one={str(off_by_one).lower()}", "sampler.eps=0"]).sampler
        s = make_sampler(cfg, capacity=4, seed=0)
        for slot in range(4):
            s.add(slot)
        s.update(np.arange(4), np.array([0.0, 0.0, 1.0, 0.0]))
        idx = s.sample(64, 4, beta=1.0).indices
        assert set(idx.tolist()) == {expected}
