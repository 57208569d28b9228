"""Take docs/img/runs_table.png: the main job's runs table in a real `mlflow ui`, in headless Chromium.

    python scripts/screenshot_runs.py                      # fresh sweep in a temp folder -> docs/img/runs_table.png
    python scripts/screenshot_runs.py --workdir DIR        # reuse the sweep in DIR/mlflow.db (runs it if absent)

Needs Chromium (Debian: `apt-get install chromium`) and playwright-core from npm, installed once
into a folder given as --playwright (default ~/.cache/per_exp-playwright):

    npm install --prefix ~/.cache/per_exp-playwright playwright-core

The README's clicks are what scripts/screenshot_runs.js does: open the sweep's runs address,
unfold the sweep, show the summary metrics as columns.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB = ["-m", "sampler=uniform,sumtree", "seed=0,1,2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow ui exited with {proc.returncode} before serving {base}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"mlflow ui did not answer at {base} within {timeout:.0f} s")


def _sweep_runs_url(workdir: Path, base: str) -> str:
    from mlflow.tracking import MlflowClient

    from per_exp import contract as C

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("per-cartpole")
    if exp is None:
        raise SystemExit(f"no experiment per-cartpole in {workdir / 'mlflow.db'}")
    sweeps = C.search_runs(client, exp.experiment_id, C.tag_equals(C.TAG_ROLE, C.ROLE_SWEEP))
    if not sweeps:
        raise SystemExit(f"no sweep in {workdir / 'mlflow.db'}")
    newest = max(sweeps, key=lambda r: r.info.start_time or 0)
    return C.runs_url(base, exp.experiment_id, newest.info.run_id)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "runs_table.png")
    ap.add_argument("--workdir", type=Path, help="folder holding (or to hold) the sweep's mlflow.db")
    ap.add_argument("--playwright", type=Path, default=Path.home() / ".cache" / "per_exp-playwright")
    args = ap.parse_args()

    node_modules = args.playwright / "node_modules"
    if not (node_modules / "playwright-core").is_dir():
        print(
            f"error: no playwright-core in {node_modules}; allowed: a folder where "
            f"`npm install --prefix {args.playwright} playwright-core` ran (--playwright)",
            file=sys.stderr,
        )
        return 2
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="per_exp-shot-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "mlflow.db").exists():
        print(f"running the main job in {workdir} ...", flush=True)
        subprocess.run([sys.executable, "-m", "per_exp.train", *MAIN_JOB], cwd=workdir, check=True)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # its own session, so that stopping it also stops the server workers it starts
    ui = subprocess.Popen(
        ["mlflow", "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_healthy(base, ui)
        url = _sweep_runs_url(workdir, base)
        env = {**os.environ, "NODE_PATH": str(node_modules)}
        subprocess.run(
            ["node", str(ROOT / "scripts" / "screenshot_runs.js"), url, str(args.out.resolve())], env=env, check=True
        )
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
