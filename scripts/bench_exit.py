"""Process exit: `python -m per_exp.train` (quick exit) against the same run ending the ordinary way.

    python scripts/bench_exit.py                 # 3 repeats of a 3-episode single run
    python scripts/bench_exit.py --repeats 5 --sweep

`python -m per_exp.train` ends with `processes.quick_exit()` after `main()`
returns: exit handlers, flushed output, `os._exit(0)`, skipping the
interpreter's module-by-module teardown. The baseline runs the same module
as `__main__` from `python -c` with `quick_exit` replaced by a no-op, so the
process ends the ordinary way. Everything else (start-up, training, logging) is the same,
so the difference of the walls is what the teardown cost. Modes alternate
and their order flips every repeat, so load from other processes hits both.
`--sweep` runs the README's main command (`-m`, 6 runs) instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from train_timing import TRAIN, timed_train  # scripts/: the folder of this script is on sys.path

# the same module run as __main__, with quick_exit made a no-op: the ordinary exit follows
ORDINARY = (
    "import runpy; from per_exp import processes; processes.quick_exit = lambda: None; "
    "runpy.run_module('per_exp.train', run_name='__main__', alter_sys=True)"
)


def run(mode: str, overrides: list[str], workdir: Path) -> float:
    head = TRAIN if mode == "quick" else [sys.executable, "-c", ORDINARY]
    return timed_train(head, overrides, workdir, f"{mode} run")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sweep", action="store_true", help="the README's main command instead of one short run")
    args = ap.parse_args()
    overrides = ["-m", "sampler=uniform,sumtree", "seed=0,1,2"] if args.sweep else ["max_episodes=3"]
    walls: dict[str, list[float]] = {"ordinary": [], "quick": []}
    load0 = os.getloadavg()[0]
    for i in range(args.repeats):
        order = ["ordinary", "quick"] if i % 2 == 0 else ["quick", "ordinary"]
        for mode in order:
            with tempfile.TemporaryDirectory(prefix="bench_exit_") as tmp:
                walls[mode].append(run(mode, overrides, Path(tmp)))
    load1 = os.getloadavg()[0]
    what = "the main command (6 runs)" if args.sweep else "one 3-episode run"
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"{what}, {args.repeats} repeats, {machine}, load {load0:.1f} -> {load1:.1f}")
    for mode, w in walls.items():
        print(f"  {mode:9s} wall s: median {statistics.median(w):6.2f}  ({', '.join(f'{x:.2f}' for x in w)})")
    ordinary, quick = statistics.median(walls["ordinary"]), statistics.median(walls["quick"])
    print(f"  quick exit saves {ordinary - quick:.2f} s per process ({ordinary / quick:.2f}x)")


if __name__ == "__main__":
    main()
