"""The engine's run lifecycle: continuous batching, failure isolation, handlers and summaries (real CartPole)."""

from __future__ import annotations

import numpy as np
import pytest

from per_exp import contract as C
from per_exp.engine.trainer import Engine, Result, RunSpec, run_one
from tests.support.cli import compose

TINY = ["sampler=sumtree", "capacity=400", "tracking.enabled=false"]


def _series(spec_out: list):
    return lambda e, m: spec_out.append((e, m[C.EPISODE_STEPS], m.get(C.TRAIN_LOSS)))


def test_a_slot_is_never_idle_while_runs_wait():
    specs = [RunSpec(compose([*TINY, f"seed={s}", f"max_episodes={1 + s % 4}"]), label=str(s)) for s in range(11)]
    eng = Engine(specs, slots=4)
    busy: list[tuple[int, int]] = []  # (active slots, runs not finished) before each lockstep step
    orig = eng._step

    def spy():
        busy.append((int(eng.active.sum()), len(eng.queue) + int(eng.active.sum())))
        orig()

    eng._step = spy
    results = eng.run()
    assert len(results) == 11 and all(r.error is None for r in results)
    assert all(active == min(4, left) for active, left in busy), busy
    # every run did exactly its own episodes
    assert sorted((int(r.spec.label), r.summary.episodes) for r in results) == [(s, 1 + s % 4) for s in range(11)]


def test_a_run_that_raises_ends_alone_and_its_neighbours_are_untouched():
    def cfgs(extra):
        return [compose([*TINY, f"seed={s}", "max_episodes=6", *extra(s)]) for s in range(5)]

    def no_fail(s):
        return []

    def fail_2(s):
        return ["fail_at_episode=3"] if s == 2 else []

    alone = []
    for cfg in cfgs(no_fail):
        out: list = []
        run_one(cfg, on_episode=_series(out))
        alone.append(out)
    errors: dict[int, BaseException] = {}
    got: list[list] = [[] for _ in range(5)]
    boom = RuntimeError("the sink of run 4 broke")

    def sink(s):
        inner = _series(got[s])

        def f(e, m):
            if s == 4 and e == 1:
                raise boom
            inner(e, m)

        return f

    specs = [
        RunSpec(c, label=str(s), on_episode=sink(s), on_error=lambda e, s=s: errors.__setitem__(s, e))
        for s, c in enumerate(cfgs(fail_2))
    ]
    results = Engine(specs, slots=3).run()
    by_label: dict[str, Result] = {r.spec.label: r for r in results}
    assert set(errors) == {2, 4} and errors[4] is boom
    assert "fail_at_episode=3" in str(errors[2])
    assert by_label["2"].error is errors[2] and by_label["2"].summary is None
    assert got[2] == alone[2][:3]  # it trained its first three episodes, then stopped
    assert got[4] == alone[4][:1]
    for s in (0, 1, 3):  # the neighbours: finished, and the same series as alone
        assert by_label[str(s)].error is None and got[s] == alone[s]


def test_on_end_gets_the_summary_and_the_final_network():
    cfg = compose([*TINY, "seed=1", "max_episodes=4"])
    seen: dict = {}

    def on_end(summary, view):
        seen["summary"] = summary
        seen["model"] = view.online_state_dict()
        seen["state"] = view.state_dict()

    s = run_one(cfg, on_end=on_end)
    assert seen["summary"] is s and s.episodes == 4 and len(s.episode_lengths) == 4
    assert s.total_env_steps == sum(s.episode_lengths) and s.updates > 0 and s.wall_seconds > 0
    assert set(s.timings) == {"act", "env", "sample", "update", "priority", "refresh", "eval"}
    flat = np.concatenate([t.numpy().ravel() for t in seen["model"].values()])
    np.testing.assert_array_equal(flat, seen["state"]["agent"]["online"])


def test_run_one_raises_the_runs_error_and_an_engine_needs_runs():
    with pytest.raises(RuntimeError, match="fail_at_episode=0"):
        run_one(compose([*TINY, "fail_at_episode=0"]))
    with pytest.raises(ValueError, match="at least one run"):
        Engine([])
