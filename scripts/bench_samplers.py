"""Sampler speed: one operation = sample B indices with IS weights + write B new priorities.

    python scripts/bench_samplers.py                 # full table (~1-2 min on 2 cores)
    python scripts/bench_samplers.py --quick         # a few seconds, smoke check
    python scripts/bench_samplers.py --json out.json # also write the records

Sizes (N stored transitions, batch B): 10,000/32, 2^17/64, 2^20/256. Rows:
every sampler of per_exp (paper defaults: stratified, batch-normalised
weights; `sumtree+buffer_norm` adds the min tree cpprb always maintains),
`seed_scan` (a pure-Python replica of the seed notebook's scan, the
baseline) and `cpprb` (cpprb.PrioritizedReplayBuffer, the public reference,
when installed: `pip install -e ".[bench]"`). Reported: microseconds per
operation (CPU time of the benchmarking thread, median over repeats; wall
time alongside), and the ratio to cpprb measured in the same process. The
JIT compile of the numba kernels happens in warm-up ops that are not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np

SIZES = [(10_000, 32), (2**17, 64), (2**20, 256)]
SEED_EPS = 1e-4  # the notebook's TD_ERROR_EPSILON


def seed_scan_indices(memory: list, batch_size: int, rng: np.random.Generator, u: np.ndarray | None = None) -> list:
    """The notebook's TDerrorMemory.get_prioritized_indexes, line for line.

    Only the random source differs: a Generator (or given uniforms `u` in
    [0, 1), for tests) instead of NumPy's global RNG.
    """
    sum_absolute_td_error = np.sum(np.absolute(memory))
    sum_absolute_td_error += SEED_EPS * len(memory)
    if u is None:
        rand_list = rng.uniform(0, sum_absolute_td_error, batch_size)
    else:
        rand_list = np.asarray(u) * sum_absolute_td_error
    rand_list = np.sort(rand_list)
    indexs = []
    idx = 0
    tmp_sum_absolute_td_error = 0
    for rand_num in rand_list:
        while tmp_sum_absolute_td_error < rand_num:
            tmp_sum_absolute_td_error += abs(memory[idx]) + SEED_EPS
            idx += 1
        if idx >= len(memory):
            idx = len(memory) - 1
        indexs.append(idx)
    return indexs


def _time_op(op: Callable[[], None], repeats: int, target_s: float, warmup: int) -> tuple[float, float]:
    """(CPU us/op, wall us/op): medians over `repeats` loops sized to take ~target_s.

    CPU time of this thread is the headline: on a shared machine wall time
    also counts the time the process waits for a core, which says more about
    the neighbours than about the sampler. Wall time is reported alongside.
    """
    for _ in range(warmup):
        op()
    t0 = time.perf_counter()
    op()
    one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(target_s / one))
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        for _ in range(n):
            op()
        cpu.append((time.thread_time() - c0) / n * 1e6)
        wall.append((time.perf_counter() - w0) / n * 1e6)
    return statistics.median(cpu), statistics.median(wall)


def _per_exp_op(name: str, n: int, b: int, td0: np.ndarray, rng: np.random.Generator, **switches):
    from per_exp.config import SamplerConfig
    from per_exp.engine.samplers import make_sampler

    cfg = replace(SamplerConfig(name=name), **switches)
    s = make_sampler(cfg, n, seed=0)
    s.add(np.arange(n))
    s.update(np.arange(n), td0)
    new_td = rng.exponential(size=(64, b))
    k = [0]

    def op():
        batch = s.sample(b, n, 0.5)
        s.update(batch.indices, new_td[k[0] & 63])
        k[0] += 1

    return op


def _seed_op(n: int, b: int, td0: np.ndarray, rng: np.random.Generator):
    memory = td0.tolist()  # the seed keeps TD errors in a Python list
    new_td = rng.exponential(size=(64, b)).tolist()
    k = [0]

    def op():
        idx = seed_scan_indices(memory, b, rng)
        for i, td in zip(idx, new_td[k[0] & 63]):
            memory[i] = td
        k[0] += 1

    return op


def _cpprb_op(n: int, b: int, td0: np.ndarray, rng: np.random.Generator):
    import cpprb

    rb = cpprb.PrioritizedReplayBuffer(n, {"done": {"dtype": np.uint8}}, alpha=0.6, eps=1e-6)
    rb.add(done=np.zeros(n, dtype=np.uint8), priorities=td0)
    new_td = rng.exponential(size=(64, b))
    k = [0]

    def op():
        batch = rb.sample(b, beta=0.5)
        rb.update_priorities(batch["indexes"], new_td[k[0] & 63])
        k[0] += 1

    return op


def _have_cpprb() -> bool:
    try:
        import cpprb  # noqa: F401
    except ImportError:
        return False
    return True


def run(quick: bool, sizes: list[tuple[int, int]] = SIZES) -> list[dict]:
    import torch  # imported by per_exp; one thread, as in a real job

    torch.set_num_threads(1)
    repeats, target = (3, 0.02) if quick else (7, 0.25)
    rows: list[dict] = []
    for n, b in sizes:
        rng = np.random.default_rng(0)
        td0 = rng.exponential(size=n)  # |TD|-like priorities
        makers: list[tuple[str, Callable]] = [
            ("uniform", partial(_per_exp_op, "uniform", n, b, td0, rng)),
            ("linear_scan", partial(_per_exp_op, "linear_scan", n, b, td0, rng)),
            ("sumtree", partial(_per_exp_op, "sumtree", n, b, td0, rng)),
            ("sumtree+buffer_norm", partial(_per_exp_op, "sumtree", n, b, td0, rng, weight_norm="buffer")),
            ("rank", partial(_per_exp_op, "rank", n, b, td0, rng, alpha=0.7)),
        ]
        if not quick or n == sizes[0][0]:
            makers.append(("seed_scan", partial(_seed_op, n, b, td0, rng)))
        if _have_cpprb():
            makers.append(("cpprb", partial(_cpprb_op, n, b, td0, rng)))
        times = {}
        for name, make in makers:
            slow = name in ("seed_scan", "linear_scan", "rank")
            times[name] = _time_op(
                make(), repeats=3 if slow and not quick else repeats, target_s=target, warmup=3 if slow else 50
            )
        ref = times.get("cpprb", (None,))[0]
        for name, (us, wall) in times.items():
            rows.append(
                {
                    "sampler": name,
                    "N": n,
                    "B": b,
                    "us_per_op": round(us, 2),
                    "ratio_to_cpprb": round(us / ref, 3) if ref else None,
                    "wall_us_per_op": round(wall, 2),
                }
            )
    return rows


def _table(rows: list[dict]) -> str:
    seed = {r["N"]: r["us_per_op"] for r in rows if r["sampler"] == "seed_scan"}
    lines = [
        "| sampler | N | B | us/op (CPU) | ratio to cpprb | speed-up vs seed scan | wall us/op |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "-" if r["ratio_to_cpprb"] is None else f"{r['ratio_to_cpprb']:.2f}"
        vs_seed = f"{seed[r['N']] / r['us_per_op']:.0f}x" if r["N"] in seed else "-"
        lines.append(
            f"| {r['sampler']} | {r['N']} | {r['B']} | {r['us_per_op']:.1f} | {ratio} | {vs_seed} "
            f"| {r['wall_us_per_op']:.1f} |"
        )
    return "\n".join(lines)


def _machine() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.machine()
    import os

    return f"{model}, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few, short repeats; seed scan at the first size only")
    ap.add_argument("--json", metavar="PATH", help="write the records (sampler, N, B, us_per_op, ratio_to_cpprb)")
    ap.add_argument("--sizes", default=None, help="N:B pairs, e.g. 1000:16,4096:32 (default: the issue's three)")
    args = ap.parse_args(argv)
    sizes = SIZES
    if args.sizes:
        sizes = [(int(n), int(b)) for n, b in (pair.split(":") for pair in args.sizes.split(","))]
    rows = run(args.quick, sizes)
    print(
        f"# {_machine()}, Python {platform.python_version()}, numpy {np.__version__}; "
        "median CPU us/op (sample B with IS weights + write B priorities)"
    )
    if not _have_cpprb():
        print("# cpprb not installed: ratio_to_cpprb is null (pip install -e '.[bench]')")
    print(_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
