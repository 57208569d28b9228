"""The real config tree (Hydra composition) and the real command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from per_exp.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"


def compose_dictconfig(overrides: list[str] | None = None):
    """Compose the real config tree, as Hydra hands it to a job (a DictConfig)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from per_exp.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides or [])


def compose(overrides: list[str] | None = None) -> Config:
    """Compose the real config tree and return the typed `Config` object."""
    from per_exp.config import typed

    return typed(compose_dictconfig(overrides))


def compose_resolved(overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose the real config tree as the plain dict that is hashed and logged."""
    from per_exp.config import resolved

    return resolved(compose_dictconfig(overrides))


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
