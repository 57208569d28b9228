"""Shared test helpers: real Hydra composition and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"


def compose(overrides: list[str] | None = None):
    """Compose the real config tree and return the typed `Config` object."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from per_exp.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_object(cfg)


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run `python -m per_exp.train ARGS` for real; returns CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "per_exp.train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A tracking URI for a real SQLite store in a temp folder (created on first use)."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
