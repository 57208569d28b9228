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
`sweep`, `mode`, `wall_s` (median), `speedup` (serial over this mode, of the
medians: for "grouped", grouped over serial), plus the repeats' walls and the load.

`--issue-time` adds the launcher as it was when issue 12 asked for these
targets ("today's serial launcher"): main's code at `BASELINE_REF` of
`scripts/baseline.py` (the last commit before the engine), run the same way
with that tree first on `PYTHONPATH`; with it every record carries
`x_issue_time`, the issue-time wall over this mode's. `--no-store` adds serial with
`tracking.enabled=false` (nothing logged; sweeps group only when they log), so
the share of the wall that is MLflow's shows.

`--engine-only` instead times the engine alone on the 20-seed sweep's runs, in
this process (no store, no start-up, no launcher): each run trained to its
solve on an engine of its own, one after another, against all of them in one
group; the same env steps both ways. That is grouping's own ceiling on this
sweep, whatever the store and the start-up cost.
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

ISSUE_TIME = "serial, issue time"

SWEEPS = {
    "main": ["sampler=uniform,sumtree", "seed=0,1,2"],  # the README's main command
    "20 seeds": ["seed=range(0,20)"],  # the default config, 20 seeds
}
MODES = {
    "serial": ["group.enabled=false"],
    "grouped": [],
    "grouped, joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "group.max_runs=10"],
    "serial, no store": ["group.enabled=false", "tracking.enabled=false"],
    ISSUE_TIME: [],  # the code at BASELINE_REF had no grouping: its sweeps were one job per run
}


def issue_time_env() -> dict[str, str]:
    """PYTHONPATH that makes `python -m per_exp.train` run main's code at BASELINE_REF."""
    from baseline import BASELINE_REF, tree

    base = str(tree(BASELINE_REF))
    return {"PYTHONPATH": os.pathsep.join([base, *filter(None, [os.environ.get("PYTHONPATH")])])}


def run_sweep(overrides: list[str], workdir: Path, env: dict[str, str] | None = None) -> float:
    wall, stderr = timed_train(TRAIN, ["-m", *overrides], workdir, "sweep", env)
    if "jobs FINISHED" not in stderr and "tracking.enabled=false" not in overrides:
        sys.exit(f"no sweep summary from python -m per_exp.train -m {' '.join(overrides)}")
    return wall


def warm(env: dict[str, str] | None) -> None:
    """One short untimed run, so numba's cache of that tree is filled before anything is timed."""
    with tempfile.TemporaryDirectory(prefix="bench_sweep_warm_") as d:
        timed_train(TRAIN, ["max_episodes=2", "sampler=sumtree"], Path(d), "warm-up", env)
        timed_train(TRAIN, ["max_episodes=2", "sampler=uniform"], Path(d), "warm-up", env)


def engine_only(repeats: int) -> None:
    """Grouping's own gain on the 20-seed sweep: the engine alone, one run at a time against one group."""
    import time

    from bench_train import compose

    from per_exp.engine.trainer import Engine, RunSpec

    seeds = range(20)
    Engine([RunSpec(compose(["seed=999"]), step_budget=64)]).run()  # numba's cache, outside the timings
    walls: dict[str, list[float]] = {"one at a time": [], "one group": []}
    for rep in range(repeats):
        for mode in list(walls) if rep % 2 == 0 else list(walls)[::-1]:
            specs = [RunSpec(compose([f"seed={s}"])) for s in seeds]
            t0 = time.perf_counter()
            if mode == "one at a time":
                results = [Engine([spec]).run()[0] for spec in specs]
            else:
                results = Engine(specs, slots=len(specs)).run()
            walls[mode].append(time.perf_counter() - t0)
            steps = sum(r.summary.total_env_steps for r in results if r.summary is not None)
            print(f"repeat {rep + 1}: {mode:13s} {walls[mode][-1]:6.2f} s, {steps} env steps", flush=True)
    alone, group = (statistics.median(w) for w in walls.values())
    print(f"engine alone, 20 seeds: one at a time {alone:.2f} s, one group {group:.2f} s: {alone / group:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--joblib", action="store_true", help="also the grouped sweep on the joblib launcher")
    ap.add_argument("--sweeps", default=",".join(SWEEPS), help=f"comma-separated, of: {', '.join(SWEEPS)}")
    ap.add_argument("--json", type=Path, default=None, help="write the records here")
    ap.add_argument("--issue-time", action="store_true", help="also serial on the code issue 12 measured against")
    ap.add_argument("--no-store", action="store_true", help="also serial with nothing logged (MLflow's share)")
    ap.add_argument("--engine-only", action="store_true", help="only the engine on the 20 seeds, in this process")
    args = ap.parse_args()
    if args.engine_only:
        engine_only(args.repeats)
        return
    sweeps = [s.strip() for s in args.sweeps.split(",")]
    unknown = [s for s in sweeps if s not in SWEEPS]
    if unknown:
        sys.exit(f"error: --sweeps {','.join(unknown)}: allowed: {', '.join(SWEEPS)}")
    modes = ["serial", "grouped"] + (["grouped, joblib"] if args.joblib else [])
    modes += (["serial, no store"] if args.no_store else []) + ([ISSUE_TIME] if args.issue_time else [])
    envs = {ISSUE_TIME: issue_time_env()} if args.issue_time else {}
    warm(None)
    for env in envs.values():
        warm(env)
    load0 = os.getloadavg()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    walls: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeats):
        order = modes if rep % 2 == 0 else modes[::-1]
        for sweep in sweeps:
            for mode in order:
                with tempfile.TemporaryDirectory(prefix="bench_sweep_") as d:
                    w = run_sweep([*SWEEPS[sweep], *MODES[mode]], Path(d), envs.get(mode))
                walls.setdefault((sweep, mode), []).append(w)
                print(f"repeat {rep + 1}: {sweep:9s} {mode:18s} {w:7.1f} s", flush=True)
    load1 = os.getloadavg()
    print(f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}\n")
    records = []
    issue_time = args.issue_time
    print("| sweep | mode | wall s (median) | x serial |" + (" x issue time |" if issue_time else ""))
    print("|---|---|---:|---:|" + ("---:|" if issue_time else ""))
    for sweep in sweeps:
        base = statistics.median(walls[(sweep, "serial")])
        then = statistics.median(walls[(sweep, ISSUE_TIME)]) if issue_time else None
        for mode in modes:
            med = statistics.median(walls[(sweep, mode)])
            rec = {
                "sweep": sweep,
                "mode": mode,
                "wall_s": round(med, 2),
                "speedup": round(base / med, 3),
                "walls_s": [round(w, 2) for w in walls[(sweep, mode)]],
                "load": [round(x, 2) for x in (*load0, *load1)],
            }
            if then is not None:
                rec["x_issue_time"] = round(then / med, 3)
            records.append(rec)
            extra = f" {then / med:.2f} |" if then is not None else ""
            print(f"| {sweep} | {mode} | {med:.1f} | {base / med:.2f} |{extra}")
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
