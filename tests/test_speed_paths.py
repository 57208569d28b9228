"""The fused (numba) update is the torch update: same numbers, same state, same checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from per_exp.config import ConfigError, NetworkConfig, validate
from per_exp.engine.agent import DDQNAgent
from per_exp.engine.replay import Batch
from tests.support.cli import compose


def _pair(name: str, hidden: int, layers: int, obs_dim: int = 4, n_actions: int = 2):
    agents = []
    for backend in ("torch", "fused"):
        torch.manual_seed(3)
        agents.append(
            DDQNAgent(
                NetworkConfig(name=name, hidden=hidden, layers=layers),
                obs_dim,
                n_actions,
                1e-3,
                0.99,
                False,
                np.random.default_rng(0),
                backend=backend,
            )
        )
    return agents


def _batch(rng: np.random.Generator, n: int = 32, obs_dim: int = 4, n_actions: int = 2) -> tuple[Batch, np.ndarray]:
    b = Batch(
        rng.normal(size=(n, obs_dim)).astype(np.float32),
        rng.integers(0, n_actions, n).astype(np.int64),
        rng.choice([-1.0, 0.0, 1.0], n).astype(np.float32),
        rng.normal(size=(n, obs_dim)).astype(np.float32),
        (rng.random(n) < 0.2).astype(np.float32),
    )
    return b, rng.random(n).astype(np.float32)


def _assert_same_params(a: DDQNAgent, b: DDQNAgent, atol: float) -> None:
    for (name, p), q in zip(a.online.named_parameters(), b.online.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=atol, msg=name)


@pytest.mark.parametrize(
    "name,hidden,layers,n_actions", [("dueling", 32, 3, 2), ("mlp", 8, 2, 3), ("dueling", 5, 1, 3)]
)
def test_fused_update_equals_torch_update(name, hidden, layers, n_actions):
    ref, fast = _pair(name, hidden, layers, n_actions=n_actions)
    _assert_same_params(ref, fast, 0.0)
    rng = np.random.default_rng(1)
    for _ in range(30):
        b, w = _batch(rng, n_actions=n_actions)
        l_ref, td_ref = ref.update(b, w)
        l_fast, td_fast = fast.update(b, w)
        assert l_fast == pytest.approx(l_ref, rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(td_fast, td_ref, rtol=1e-5, atol=1e-5)
    _assert_same_params(ref, fast, 1e-5)
    # Adam's moments live in torch's optimizer state for both backends
    for p_ref, p_fast in zip(ref.online.parameters(), fast.online.parameters()):
        s_ref, s_fast = ref.optimizer.state[p_ref], fast.optimizer.state[p_fast]
        assert float(s_fast["step"]) == float(s_ref["step"]) == 30.0
        torch.testing.assert_close(s_fast["exp_avg"], s_ref["exp_avg"], rtol=1e-4, atol=1e-7)
    # acting and the target sync go through the same parameters
    s = rng.normal(size=4).astype(np.float32)
    assert fast.act(s, 0.0) == ref.act(s, 0.0)
    fast.sync_target()
    torch.testing.assert_close(fast.target(torch.from_numpy(s)[None]), fast.online(torch.from_numpy(s)[None]))


@pytest.mark.parametrize("src_backend", ["fused", "torch"])
def test_fused_agent_resumes_from_a_state_dict(src_backend):
    """A checkpoint (from either backend) loaded into a fused agent continues exactly like the original."""
    rng = np.random.default_rng(2)
    batches = [_batch(rng) for _ in range(12)]
    torch.manual_seed(0)
    src = DDQNAgent(NetworkConfig(), 4, 2, 1e-3, 0.99, False, np.random.default_rng(0), backend=src_backend)
    for b, w in batches[:6]:
        src.update(b, w)
    state = src.state_dict()
    torch.manual_seed(99)  # different init: everything must come from the state dict
    dst = DDQNAgent(NetworkConfig(), 4, 2, 1e-3, 0.99, False, np.random.default_rng(5), backend="fused")
    dst.load_state_dict(state)
    assert float(dst.optimizer.state[next(dst.online.parameters())]["step"]) == 6.0
    for b, w in batches[6:]:
        _, td_src = src.update(b, w)
        _, td_dst = dst.update(b, w)
        np.testing.assert_allclose(td_dst, td_src, rtol=1e-5, atol=1e-5)
    _assert_same_params(src, dst, 1e-5)


def test_update_backend_is_validated():
    cfg = compose(["update_backend=jax", "tracking.enabled=false"])
    with pytest.raises(ConfigError, match=r"update_backend='jax'.*fused, torch"):
        validate(cfg)


@pytest.mark.slow
def test_bench_train_runs_and_writes_speedup(tmp_path):
    """The benchmark runs from a checkout (tiny budget; no figure is asserted, speed is not tested here)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "bench.json"
    p = subprocess.run(
        [
            sys.executable,
            str(root / "scripts" / "bench_train.py"),
            "--steps",
            "300",
            "--update-iters",
            "5",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d["speedup"] > 0 and set(d["median"]) == {"replica", "trainer[fused]"}
    for name, m in d["median"].items():
        assert m["env_steps_per_s"] > 0, name
    # both sides really trained for the budget (the replica stops exactly on it)
    assert d["runs"]["replica"][0]["env_steps"] == 300
    assert d["runs"]["trainer[fused]"][0]["env_steps"] >= 300
    assert "speedup" in p.stdout
