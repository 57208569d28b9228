"""Today's single-run trainer, from main's code at a fixed commit, as the baseline the engine is measured against.

``BASELINE_REF`` is main at the last commit before the lockstep engine
(issue 12): the issue-10 layout (contract, codec checkpoints, stop signals), with ``per_exp.engine.trainer.Trainer``
training one run per process. ``tree()`` extracts that commit's ``per_exp``
and ``conf`` (``git archive``) into a cache folder; ``run_in_baseline``
runs a function of this module in a fresh interpreter that imports the
baseline's ``per_exp`` instead of the working tree's, so both sides run in
the same benchmark, on the same machine, at the same time.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "0da30dd"  # main just before the engine replaced the single-run Trainer


def tree(ref: str = BASELINE_REF) -> Path:
    """The folder holding ``per_exp/`` and ``conf/`` of ``ref`` (extracted once, then reused)."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", ref], capture_output=True, text=True, check=True)
    dest = Path(tempfile.gettempdir()) / f"per_exp-baseline-{sha.stdout.strip()[:12]}"
    if (dest / "per_exp" / "engine" / "trainer.py").exists():
        return dest
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "per_exp", "conf"], capture_output=True, check=True)
    tmp = Path(tempfile.mkdtemp(prefix="per_exp-baseline-"))
    with tarfile.open(fileobj=BytesIO(blob.stdout)) as tar:
        tar.extractall(tmp, filter="data")
    with contextlib.suppress(OSError):  # another process extracted it first
        tmp.rename(dest)
    return dest


def compose(base: Path, overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from per_exp.config import register_configs, validate

    register_configs()
    with initialize_config_dir(config_dir=str(base / "conf"), version_base="1.3"):
        cfg = OmegaConf.to_object(hydra_compose("config", overrides=["tracking.enabled=false", *overrides]))
    validate(cfg)
    return cfg


def train(overrides: list[str], steps: int | None = None) -> dict[str, Any]:
    """Inside the baseline: train one run (to solve, or for ``steps`` env steps); its figures and series."""
    import time

    import torch

    from per_exp import contract as C  # the baseline's own contract
    from per_exp.engine.trainer import Trainer

    torch.set_num_threads(1)
    cfg = compose(Path(os.environ["PER_EXP_BASELINE"]), overrides)
    rows: list[dict] = []
    tr = Trainer(cfg, sink=lambda ep, m: rows.append(m))
    if cfg.update_backend == "fused":  # compile (or load numba's cache) outside the timed region
        tr.agent.act(tr.buffer.states[0], -1.0)
    c0, t0 = time.process_time(), time.perf_counter()
    if steps is None:
        s = tr.run()
        solved, episodes = s.solved_episode, s.episodes
    else:  # keep training after CartPole is solved, so every run does the same work per step
        while tr.total_steps < steps:
            rows.append(tr.run_episode())
            tr.episode += 1
        solved, episodes = None, tr.episode
    return {
        "solved_episode": solved,
        "episodes": episodes,
        "env_steps": tr.total_steps,
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "lengths": [int(r[C.EPISODE_STEPS]) for r in rows],
    }


def run_in_baseline(fn: str, *args: Any, ref: str = BASELINE_REF, timeout: float = 3600) -> Any:
    """``fn(*args)`` of this module in a fresh interpreter importing the baseline's per_exp; its JSON result."""
    base = tree(ref)
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]); import baseline; "
        "print('\\n@@' + json.dumps(getattr(baseline, sys.argv[3])(*json.loads(sys.argv[4]))))"
    )
    env = {**os.environ, "PER_EXP_BASELINE": str(base), "PYTHONPATH": str(base)}
    p = subprocess.run(
        [sys.executable, "-c", code, str(base), str(ROOT / "scripts"), fn, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(base),
    )
    if p.returncode != 0:
        raise RuntimeError(f"baseline {fn}{args} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.rsplit("\n@@", 1)[1])
