"""Time one `python -m per_exp.train` command as a user runs it, shared by the bench scripts.

The command writes into a fresh SQLite store and output folders inside `workdir` (a temporary
folder per run), with `MLFLOW_TRACKING_URI` unset so that nothing outside it is touched; a
command that fails ends the benchmark with its stderr, never a wall time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

TRAIN = [sys.executable, "-m", "per_exp.train"]


def timed_train(
    head: list[str], args: list[str], workdir: Path, what: str, extra_env: dict[str, str] | None = None
) -> tuple[float, str]:
    """(wall seconds, stderr) of `head + args` run in `workdir` (`extra_env` added to the environment);
    `what` names it if it fails."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | (extra_env or {})
    cmd = [
        *head,
        *args,
        f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
        f"hydra.run.dir={workdir / 'out'}",
        f"hydra.sweep.dir={workdir / 'sweep'}",
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{what} failed ({' '.join(cmd)}):\n{r.stderr[-3000:]}")
    return wall, r.stderr
