"""Sweep wall time: grouped (the default) against one launcher job per run, in the same invocation.

    python scripts/bench_sweep.py                        # (a) the README's main command, (b) a 20-seed sweep
    python scripts/bench_sweep.py --repeats 3 --json sweep.json
    python scripts/bench_sweep.py --joblib               # also grouped on the joblib launcher (2 workers)

Each sweep runs as the user would run it (`python -m per_exp.train -m ...`, a
fresh SQLite store in a temporary folder), so the wall time includes start-up,
store creation, composition, logging and exit. "serial" is the launcher as it
was before grouped sweeps: Hydra's basic launcher, one job per run
(`group.enabled=false`); "grouped" is the default: one launcher job per group,
its runs trained `group.slots` at a time by the engine. Modes alternate and
their order flips every repeat, so load from other processes hits both; the
figure that matters is the speed-up, serial wall / grouped wall, per repeat
and as the median. `--json PATH` writes one record per (sweep, mode):
`sweep`, `mode`, `wall_s` (median), `speedup` (grouped over serial, of the
medians), plus the repeats' walls and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from train_timing import TRAIN, timed_train  # scripts/: the folder of this script is on sys.path

SWEEPS = {
    "main": ["sampler=uniform,sumtree", "seed=0,1,2"],  # the README's main command
    "20 seeds": ["seed=range(0,20)"],  # the default config, 20 seeds
}
MODES = {
    "serial": ["group.enabled=false"],
    "grouped": [],
    "grouped, joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "group.max_runs=10"],
}


def run_sweep(overrides: list[str], workdir: Path) -> float:
    wall, stderr = timed_train(TRAIN, ["-m", *overrides], workdir, "sweep")
    if "jobs FINISHED" not in stderr:
        sys.exit(f"no sweep summary from python -m per_exp.train -m {' '.join(overrides)}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--joblib", action="store_true", help="also the grouped sweep on the joblib launcher")
    ap.add_argument("--sweeps", default=",".join(SWEEPS), help=f"comma-separated, of: {', '.join(SWEEPS)}")
    ap.add_argument("--json", type=Path, default=None, help="write the records here")
    args = ap.parse_args()
    sweeps = [s.strip() for s in args.sweeps.split(",")]
    unknown = [s for s in sweeps if s not in SWEEPS]
    if unknown:
        sys.exit(f"error: --sweeps {','.join(unknown)}: allowed: {', '.join(SWEEPS)}")
    modes = ["serial", "grouped"] + (["grouped, joblib"] if args.joblib else [])
    load0 = os.getloadavg()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    walls: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeats):
        order = modes if rep % 2 == 0 else modes[::-1]
        for sweep in sweeps:
            for mode in order:
                with tempfile.TemporaryDirectory(prefix="bench_sweep_") as d:
                    w = run_sweep([*SWEEPS[sweep], *MODES[mode]], Path(d))
                walls.setdefault((sweep, mode), []).append(w)
                print(f"repeat {rep + 1}: {sweep:9s} {mode:16s} {w:7.1f} s", flush=True)
    load1 = os.getloadavg()
    print(f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}\n")
    records = []
    print("| sweep | mode | wall s (median) | x serial |")
    print("|---|---|---:|---:|")
    for sweep in sweeps:
        base = statistics.median(walls[(sweep, "serial")])
        for mode in modes:
            med = statistics.median(walls[(sweep, mode)])
            records.append(
                {
                    "sweep": sweep,
                    "mode": mode,
                    "wall_s": round(med, 2),
                    "speedup": round(base / med, 3),
                    "walls_s": [round(w, 2) for w in walls[(sweep, mode)]],
                    "load": [round(x, 2) for x in (*load0, *load1)],
                }
            )
            print(f"| {sweep} | {mode} | {med:.1f} | {base / med:.2f} |")
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
