"""The seed preset really behaves like the notebook (real Trainer, real CartPole)."""

from __future__ import annotations

import numpy as np
import pytest

from per_exp.engine.envs import shaped_reward, stored_terminal
from per_exp.engine.trainer import Engine, RunSpec
from tests.support.cli import compose

SEED = ["experiment=seed_notebook", "tracking.enabled=false"]


def _engine(extra: list[str]) -> Engine:
    """A group of one seed-preset run, to run and then look inside (slot 0 keeps its state)."""
    return Engine([RunSpec(compose(SEED + extra))])


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
    eng = _engine(["max_episodes=6"])
    s = eng.run()[0].summary
    st = eng.replay.storage
    n = int(st.size[0])
    r, d = st.rewards[0, :n], st.dones[0, :n]
    # early episodes all fail: exactly one -1 per episode, on its terminal transition
    assert all(length < 196 for length in s.episode_lengths)
    assert set(np.unique(r)) <= {0.0, -1.0}
    assert (r == -1.0).sum() == len(s.episode_lengths) == d.sum()
    assert np.array_equal(r == -1.0, d == 1.0)


def test_new_transitions_are_pushed_with_td_error_zero():
    from per_exp.engine.samplers import make_sampler

    cfg = compose(SEED)
    s = make_sampler(cfg.sampler, cfg.capacity, seed=0)
    s.add(0)
    assert s.slots.prios[0, 0] == pytest.approx(cfg.sampler.eps)  # (|0| + eps) ** 1


def test_full_td_refresh_at_episode_end():
    eng = _engine(["max_episodes=2"])  # episode 1 ends with a refresh and no target sync
    eng.run()
    n = int(eng.replay.storage.size[0])
    td = eng.agent.td_errors(0, eng.replay.storage)
    eps = eng.cfg.sampler.eps
    np.testing.assert_allclose(eng.replay.sampler.prios[0, :n], np.abs(td) + eps, rtol=1e-5, atol=1e-7)


def test_uniform_replay_during_the_first_30_episodes_and_sync_every_2():
    eng = _engine(["max_episodes=32"])
    used: list[tuple[int, str]] = []
    synced: list[int] = []
    for name, sampler in (("uniform", eng.replay.warmup), ("prioritized", eng.replay.sampler)):
        orig = sampler.sample

        def spy(size, beta, mask, *a, _orig=orig, _name=name):
            if mask[0]:
                used.append((int(eng.episode[0]), _name))
            return _orig(size, beta, mask, *a)

        sampler.sample = spy
    orig_sync = eng.agent.sync_target

    def spy_sync(k):
        synced.append(int(eng.episode[k]))
        orig_sync(k)

    eng.agent.sync_target = spy_sync
    eng.run()
    assert {n for e, n in used if e < 30} == {"uniform"}
    assert {n for e, n in used if e >= 30} == {"prioritized"}
    assert synced == list(range(0, 32, 2))


def test_target_starts_from_its_own_init_in_the_seed_preset():
    seed_e, paper_e = _engine([]), Engine([RunSpec(compose(["tracking.enabled=false"]))])
    for eng in (seed_e, paper_e):
        cfg = eng.queue[0].cfg
        eng.agent.init_slot(0, cfg.seed, cfg.lr, cfg.gamma, cfg.target_sync.copy_at_start, np.random.SeedSequence(0))
    assert not np.array_equal(seed_e.agent.theta[0], seed_e.agent.theta_t[0])
    np.testing.assert_array_equal(paper_e.agent.theta[0], paper_e.agent.theta_t[0])


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
