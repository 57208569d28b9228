"""The fused (numba) kernels are the torch reference: same numbers to a tolerance, same state, any K."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from per_exp.config import ConfigError, NetworkConfig, validate
from per_exp.engine.agent import Batch, DDQNAgent, SlotAgent
from per_exp.engine.networks import flatten_parameters
from per_exp.engine.storage import Storage
from tests.support.cli import compose

CAP = 200


def _reference(net: NetworkConfig, seed: int, obs_dim: int, n_actions: int, lr: float) -> DDQNAgent:
    torch.manual_seed(seed)
    return DDQNAgent(net, obs_dim, n_actions, lr, 0.99, False, np.random.default_rng(0))


def _slots_like(refs: list[DDQNAgent], net: NetworkConfig, obs_dim: int, n_actions: int, lr: float) -> SlotAgent:
    """A fused SlotAgent whose slot k starts as refs[k] (online, target, fresh Adam)."""
    a = SlotAgent(len(refs), net, obs_dim, n_actions, batch=32, backend="fused")
    for k, ref in enumerate(refs):
        a.theta[k] = torch.cat([p.detach().reshape(-1) for p in ref.online.parameters()]).numpy()
        a.theta_t[k] = torch.cat([p.detach().reshape(-1) for p in ref.target.parameters()]).numpy()
        a.lr[k], a.gamma[k] = lr, 0.99
    return a


def _storage(rng: np.random.Generator, k_slots: int, obs_dim: int, n_actions: int) -> Storage:
    st = Storage(k_slots, CAP, obs_dim)
    st.states[:] = rng.normal(size=st.states.shape)
    st.next_states[:] = rng.normal(size=st.states.shape)
    st.actions[:] = rng.integers(0, n_actions, st.actions.shape)
    st.rewards[:] = rng.choice([-1.0, 0.0, 1.0], st.rewards.shape)
    st.dones[:] = rng.random(st.dones.shape) < 0.2
    st.size[:] = CAP
    return st


def _batch(st: Storage, k: int, idx: np.ndarray) -> Batch:
    return Batch(st.states[k][idx], st.actions[k][idx], st.rewards[k][idx], st.next_states[k][idx], st.dones[k][idx])


def _flat(net: torch.nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).numpy()


@pytest.mark.parametrize(
    "name,hidden,layers,n_actions", [("dueling", 32, 3, 2), ("mlp", 8, 2, 3), ("dueling", 5, 1, 3)]
)
def test_fused_update_of_k_slots_equals_the_torch_update_of_each(name, hidden, layers, n_actions):
    net = NetworkConfig(name=name, hidden=hidden, layers=layers)
    refs = [_reference(net, 3 + k, 4, n_actions, 1e-3) for k in range(3)]
    fast = _slots_like(refs, net, 4, n_actions, 1e-3)
    rng = np.random.default_rng(1)
    st = _storage(rng, 3, 4, n_actions)
    td, loss = np.zeros((3, 32), np.float32), np.zeros(3)
    mask = np.array([True, False, True])  # slot 1 sits the first half out
    for step in range(30):
        if step == 15:
            mask[:] = True
        idx = rng.integers(0, CAP, (3, 32))
        w = rng.random((3, 32)).astype(np.float32)
        fast.update(st, idx, w, mask, td, loss)
        for k in np.flatnonzero(mask):
            l_ref, td_ref = refs[k].update(_batch(st, k, idx[k]), w[k])
            assert loss[k] == pytest.approx(l_ref, rel=1e-5, abs=1e-6)
            np.testing.assert_allclose(td[k], td_ref, rtol=1e-5, atol=1e-5)
    for k, ref in enumerate(refs):
        np.testing.assert_allclose(fast.theta[k], _flat(ref.online), rtol=0, atol=1e-5)
        p0 = next(ref.online.parameters())
        assert fast.step[k] == float(ref.optimizer.state[p0]["step"]) == (30.0 if k != 1 else 15.0)
        m_ref = torch.cat([ref.optimizer.state[p]["exp_avg"].reshape(-1) for p in ref.online.parameters()]).numpy()
        np.testing.assert_allclose(fast.exp_avg[k], m_ref, rtol=1e-4, atol=1e-7)
    # acting and the TD refresh go through the same parameters
    obs = rng.normal(size=(3, 4)).astype(np.float32)
    acts = np.zeros(3, np.int64)
    fast.act(obs, np.full(3, -1.0), np.ones(3, bool), acts)  # epsilon < 0: always greedy
    assert acts.tolist() == [refs[k].greedy(obs[k]) for k in range(3)]
    for k in range(3):
        np.testing.assert_allclose(
            fast.td_errors(k, st), refs[k].td_errors(_batch(st, k, np.arange(CAP))), rtol=1e-5, atol=1e-5
        )


def test_torch_backend_slots_view_the_arrays_and_match_the_fused_ones():
    net = NetworkConfig()
    a, b = (SlotAgent(2, net, 4, 2, 32, backend=be) for be in ("fused", "torch"))
    for agent in (a, b):
        for k in range(2):
            agent.init_slot(k, seed=7 + k, lr=1e-3, gamma=0.99, copy_at_start=False, rng_seed=np.random.SeedSequence(k))
    np.testing.assert_array_equal(a.theta, b.theta)
    rng = np.random.default_rng(4)
    st = _storage(rng, 2, 4, 2)
    td_a, td_b, la, lb = np.zeros((2, 32), np.float32), np.zeros((2, 32), np.float32), np.zeros(2), np.zeros(2)
    for _ in range(10):
        idx = rng.integers(0, CAP, (2, 32))
        w = np.ones((2, 32), np.float32)
        a.update(st, idx, w, np.ones(2, bool), td_a, la)
        b.update(st, idx, w, np.ones(2, bool), td_b, lb)
        np.testing.assert_allclose(td_a, td_b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.theta, b.theta, atol=1e-5)
    np.testing.assert_array_equal(a.step, b.step)  # the torch backend's Adam counts into the same array
    b.sync_target(1)
    np.testing.assert_array_equal(b.theta_t[1], b.theta[1])
    assert _flat(b._torch[1].agent.target).tolist() == b.theta[1].tolist()  # the torch modules are views


@pytest.mark.parametrize("src_backend", ["fused", "torch"])
def test_a_slot_resumes_from_its_state_dict_in_another_slot_and_group(src_backend):
    """A slot's state (from either backend) loaded into another agent's slot continues exactly like the original."""
    net = NetworkConfig()
    rng = np.random.default_rng(2)
    st1, st3 = _storage(rng, 1, 4, 2), Storage(3, CAP, 4)
    for f in ("states", "next_states", "actions", "rewards", "dones"):
        getattr(st3, f)[2] = getattr(st1, f)[0]
    st3.size[:] = CAP
    src = SlotAgent(1, net, 4, 2, 32, backend=src_backend)
    src.init_slot(0, 0, 1e-3, 0.99, False, np.random.SeedSequence(0))
    td, loss = np.zeros((1, 32), np.float32), np.zeros(1)
    batches = [(rng.integers(0, CAP, 32), rng.random(32).astype(np.float32)) for _ in range(12)]
    for idx, w in batches[:6]:
        src.update(st1, idx[None], w[None], np.ones(1, bool), td, loss)
    state = src.state_dict(0)
    dst = SlotAgent(3, net, 4, 2, 32, backend="fused")
    for k in range(3):
        dst.init_slot(k, 99 + k, 1e-3, 0.99, False, np.random.SeedSequence(5))  # everything must come from the state
    dst.load_state_dict(2, state, lr=1e-3, gamma=0.99)
    assert dst.step[2] == 6.0
    td3 = np.zeros((3, 32), np.float32)
    for idx, w in batches[6:]:
        src.update(st1, idx[None], w[None], np.ones(1, bool), td, loss)
        dst.update(st3, np.stack([idx] * 3), np.stack([w] * 3), np.array([False, False, True]), td3, np.zeros(3))
        np.testing.assert_allclose(td3[2], td[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dst.theta[2], src.theta[0], atol=1e-5)


def test_the_model_artifact_is_the_online_network():
    a = SlotAgent(2, NetworkConfig(), 4, 2, 32)
    a.init_slot(1, 3, 1e-3, 0.99, True, np.random.SeedSequence(0))
    sd = a.online_state_dict(1)
    from per_exp.engine.networks import build_network

    net = build_network(NetworkConfig(), 4, 2)
    net.load_state_dict(sd)
    np.testing.assert_array_equal(flatten_parameters(net).numpy(), a.theta[1])


def test_update_backend_is_validated():
    cfg = compose(["update_backend=jax", "tracking.enabled=false"])
    with pytest.raises(ConfigError, match=r"update_backend='jax'.*fused, torch"):
        validate(cfg)


def _bench(args: list[str], tmp_path) -> tuple[dict, str]:
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "bench.json"
    p = subprocess.run(
        [sys.executable, str(root / "scripts" / "bench_train.py"), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(out.read_text()), p.stdout


def test_bench_train_runs_and_writes_speedup(tmp_path):
    """The replica benchmark runs from a checkout (tiny budget; no figure is asserted, speed is not tested here)."""
    d, stdout = _bench(["--steps", "300", "--update-iters", "5"], tmp_path)
    assert d["speedup"] > 0 and set(d["median"]) == {"replica", "engine"}
    for name, m in d["median"].items():
        assert m["env_steps_per_s"] > 0, name
    # both sides really trained for the budget (the replica stops exactly on it)
    assert d["runs"]["replica"][0]["env_steps"] == 300
    assert d["runs"]["engine"][0]["env_steps"] >= 300
    assert "speedup" in stdout and d["one_update"]["update_us[fused]"] > 0


def test_bench_train_lockstep_measures_the_engine_against_todays_trainer(tmp_path):
    """--lockstep: today's trainer (main's code) and the engine at each K, on the same budget per run."""
    import os

    d, stdout = _bench(
        ["--lockstep", "--configs", "uniform", "--ks", "1,3", "--steps", "120", "--runs-per-slot", "1"], tmp_path
    )
    threads = [1, os.cpu_count()] if (os.cpu_count() or 1) > 1 else [1]
    got = {(r["who"], r["K"], r["threads"]) for r in d["rows"]}
    procs = {("engine-procs", 3, threads[-1])} if len(threads) > 1 else set()
    assert got == {("baseline", 1, 1)} | {("engine", k, t) for k in (1, 3) for t in threads} | procs
    for r in d["rows"]:
        runs = {"baseline": 1, "engine": r["K"], "engine-procs": r["threads"] * (r["K"] // r["threads"])}[r["who"]]
        assert r["env_steps"] >= 120 * runs and r["env_steps_per_s"] > 0  # every run did its budget
    assert d["floor"]["floor_us_per_update"] > 0
    assert [r["ratio"] for r in d["table"] if r["who"] == "today's trainer"] == [1.0]
    assert "| uniform | engine | 3 |" in stdout
