"""Per-run identity: a run's series depends only on its own config and seed, never on K, its batch mates,
or when it entered its slot (real engine, real CartPole, every metric but the clock ones)."""

from __future__ import annotations

import pytest

from per_exp import contract as C
from per_exp.engine.trainer import Engine, RunSpec, group_key, run_one
from tests.support.cli import compose


def _deterministic(m: dict) -> dict:
    return {k: v for k, v in m.items() if k not in C.CLOCK_METRICS}


def _series(cfg, **engine_kw) -> tuple[list, object]:
    rows: list = []
    s = run_one(cfg, on_episode=lambda e, m: rows.append((e, _deterministic(m))))
    return rows, s


PRESETS = [
    ["sampler=sumtree"],
    ["experiment=seed_notebook", "capacity=600"],
    ["sampler=rank", "sampler.weight_norm=buffer", "sampler.stratified=false"],
    ["sampler=uniform", "epsilon.schedule=linear_steps", "epsilon.decay_steps=500", "target_sync.unit=steps"],
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("preset", PRESETS, ids=[p[0] for p in PRESETS])
def test_seed_3_alone_equals_seed_3_entering_late_in_a_batch_of_16(preset, threads):
    cfg = compose([*preset, "seed=3", "max_episodes=14", "tracking.enabled=false"])
    alone, s_alone = _series(cfg)

    mates = [
        RunSpec(compose([*preset, f"seed={100 + i}", f"max_episodes={2 + i % 5}", "tracking.enabled=false"]))
        for i in range(20)
    ]
    rows: list = []
    target = RunSpec(cfg, label="seed3", on_episode=lambda e, m: rows.append((e, _deterministic(m))))
    entered: list = []
    queue = [*mates[:18], target, *mates[18:]]  # 18 runs ahead of it: it waits for a slot to free
    eng = Engine(queue, slots=16, threads=threads)
    orig = eng._enter

    def spy(k, spec):
        entered.append((spec.label, int(eng.total_steps.sum())))
        return orig(k, spec)

    eng._enter = spy
    results = eng.run()
    assert all(r.error is None for r in results) and len(results) == 21
    assert dict(entered)["seed3"] > 0  # it entered late, after the group had stepped
    assert rows == alone
    mine = next(r.summary for r in results if r.spec is target)
    assert mine.episode_lengths == s_alone.episode_lengths
    assert (mine.total_env_steps, mine.updates, mine.solved_episode) == (
        s_alone.total_env_steps,
        s_alone.updates,
        s_alone.solved_episode,
    )


def test_runs_differing_in_scalar_hyperparameters_share_a_group_and_keep_their_series():
    base = ["sampler=sumtree", "max_episodes=10", "tracking.enabled=false"]
    variants = [
        ["seed=3"],
        ["seed=4", "lr=3e-4", "gamma=0.95"],
        ["seed=5", "sampler.alpha=0.9", "sampler.beta0=0.7", "sampler.eps=0.01"],
        ["seed=6", "epsilon.scale=0.2", "target_sync.every=3", "learning_starts=64"],
    ]
    cfgs = [compose(base + v) for v in variants]
    assert len({group_key(c) for c in cfgs}) == 1
    alone = [_series(c)[0] for c in cfgs]
    together: list[list] = [[] for _ in cfgs]
    specs = [
        RunSpec(c, on_episode=lambda e, m, out=out: out.append((e, _deterministic(m))))
        for c, out in zip(cfgs, together)
    ]
    Engine(specs, slots=4).run()
    assert together == alone


def test_runs_that_differ_in_shape_or_switch_are_refused_as_one_group():
    a = compose(["sampler=sumtree", "tracking.enabled=false"])
    for other in (["sampler=rank"], ["batch_size=16"], ["sampler.stratified=false"], ["network=mlp"]):
        b = compose(["sampler=sumtree", "tracking.enabled=false", *other])
        assert group_key(a) != group_key(b)
        with pytest.raises(ValueError, match="cannot share a group"):
            Engine([RunSpec(a), RunSpec(b)], slots=2)


def test_episode_means_are_numpys_to_the_bit():
    """The engine's per-episode means (train/loss, train/td_abs_mean) reproduce np.mean exactly."""
    import numpy as np

    from per_exp.engine.trainer import _sum_f32, mean_f64

    rng = np.random.default_rng(0)
    for n in [1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 200, 255, 256, 500, 1000]:
        x = np.zeros(1200)
        x[:n] = rng.lognormal(size=n) * 10.0 ** rng.integers(-8, 3, n)
        assert mean_f64(x, n) == np.mean(x[:n]), n
    for n in [1, 5, 8, 31, 32, 33, 64, 128]:
        y = np.abs(rng.normal(size=n)).astype(np.float32) * np.float32(10.0) ** rng.integers(-5, 2, n).astype(
            np.float32
        )
        assert _sum_f32(y) / np.float32(n) == np.float32(np.abs(y).mean()), n
