"""Sweep throughput: the README's main command, serially and with the shipped parallel launcher.

    python scripts/bench_sweep.py                       # the main command as is (500-episode budget)
    python scripts/bench_sweep.py --max-episodes 100    # a quicker look
    python scripts/bench_sweep.py --no-solve            # every job runs its whole budget (longer jobs)

Both runs happen in this one invocation, on this machine, each into a fresh
SQLite store in a temporary folder; the figure that matters is the ratio
serial / parallel. Every job already runs torch on one thread
(torch_threads=1), so the parallel launcher's speed-up is bounded by the
core count, minus the cost of starting worker processes (importing torch,
MLflow and Hydra), which dominates when jobs are short.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN = ["sampler=uniform,sumtree", "seed=0,1,2"]


def run_sweep(extra: list[str], workdir: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OMP_NUM_THREADS"] = "1"  # torch is on one thread per job; keep BLAS there too
    cmd = [
        sys.executable,
        "-m",
        "per_exp.train",
        "-m",
        *MAIN,
        *extra,
        f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
        f"hydra.sweep.dir={workdir / 'sweep'}",
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"sweep failed ({' '.join(cmd)}):\n{r.stderr[-3000:]}")
    summary = next((ln for ln in r.stderr.splitlines()[::-1] if "jobs FINISHED" in ln), "")
    return wall, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-episodes", type=int, default=None, help="episode budget per job (default: the config's)")
    ap.add_argument(
        "--no-solve",
        action="store_true",
        help="never stop early (solve.consecutive=10**6): every job runs its whole episode budget",
    )
    ap.add_argument("--n-jobs", type=int, default=-1, help="parallel workers (default -1: one per core)")
    args = ap.parse_args()
    budget = [f"max_episodes={args.max_episodes}"] if args.max_episodes else []
    if args.no_solve:
        budget.append("solve.consecutive=1000000")
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        serial_dir, par_dir = Path(tmp, "serial"), Path(tmp, "parallel")
        serial_dir.mkdir(), par_dir.mkdir()
        t_serial, s_sum = run_sweep(budget, serial_dir)
        t_par, p_sum = run_sweep(["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}", *budget], par_dir)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores, Python {platform.python_version()}")
    print(f"command: python -m per_exp.train -m {' '.join(MAIN + budget)}  (6 jobs)")
    print()
    print("| launcher | wall s | speed-up vs serial |")
    print("|---|---:|---:|")
    print(f"| basic (serial, one process) | {t_serial:.1f} | 1.00x |")
    print(f"| joblib (shipped, n_jobs={args.n_jobs}) | {t_par:.1f} | {t_serial / t_par:.2f}x |")
    print()
    print(f"serial:   {s_sum}\nparallel: {p_sum}")


if __name__ == "__main__":
    main()
