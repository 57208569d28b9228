"""Env stepping speed: the numba ports vs K gymnasium env objects (the adapter) vs a plain gymnasium loop.

    python scripts/bench_envs.py                 # full table (~1 min on 2 cores)
    python scripts/bench_envs.py --quick         # a few seconds, smoke check
    python scripts/bench_envs.py --json out.json # also write the records

For each ported id and K = 1, 32, 128 slots: microseconds per env step per
slot (the time of one ``step`` call over all K slots divided by K), for the
port (``backend="numba"``) and the adapter (``backend="gymnasium"``), both
through the same VecEnv loop; and for a plain ``env.step`` loop over one
``gym.make(id)`` env built as per_exp's trainer builds it (TimeLimit on,
checker off). Two columns each: ``step`` times the step calls alone; ``loop``
times the whole loop, with the resets at termination and at the id's time
limit (the engine's bookkeeping, done here with the same numpy calls for port
and adapter; at K = 1 those calls, ~3.5 us a step, dominate the port's loop
column and are the engine's cost, not the env's). Random actions, fixed per run. Median over repeats of the
per-repeat mean; ratios are gymnasium loop / port measured in the same run.
The numba compile (or cache load) happens in warm-up steps that are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from per_exp.engine.vecenv import PORTS, make_vecenv

IDS = list(PORTS)[1:]  # CartPole-v0 steps exactly as v1
SLOTS = (1, 32, 128)


def _vec_loop(env_id: str, k: int, backend: str, steps: int, limit: int, actions: np.ndarray) -> tuple[float, float]:
    """(step-only, whole-loop) seconds for `steps` VecEnv steps of k slots."""
    vec = make_vecenv(env_id, k, backend=backend)
    rngs = [seeding.np_random(s)[0] for s in range(k)]
    for slot in range(k):
        vec.reset(slot, rngs[slot])
    active = np.ones(k, dtype=bool)
    lengths = np.zeros(k, dtype=np.int64)
    vec.step(actions[0], active)  # warm-up: compile or load the numba cache
    in_step = 0.0
    clock = time.perf_counter
    t_loop = clock()
    for t in range(steps):
        t0 = clock()
        vec.step(actions[t], active)
        in_step += clock() - t0
        lengths += 1
        done = vec.terminated | (lengths >= limit)
        if done.any():
            for ended in np.flatnonzero(done):
                vec.reset(int(ended), rngs[ended])
                lengths[ended] = 0
    total = clock() - t_loop
    return in_step, total


def _gym_loop(env_id: str, steps: int, actions: np.ndarray) -> tuple[float, float]:
    # As per_exp's trainer builds its env: gymnasium's TimeLimit, no passive checker.
    env = gym.make(env_id, disable_env_checker=True)
    env.reset(seed=0)
    in_step = 0.0
    clock = time.perf_counter
    t_loop = clock()
    for t in range(steps):
        a = int(actions[t, 0])
        t0 = clock()
        _, _, term, trunc, _ = env.step(a)
        in_step += clock() - t0
        if term or trunc:
            env.reset()
    total = clock() - t_loop
    return in_step, total


def _median_us(runs: list[tuple[float, float]], slot_steps: int) -> tuple[float, float]:
    return (
        statistics.median(r[0] for r in runs) / slot_steps * 1e6,
        statistics.median(r[1] for r in runs) / slot_steps * 1e6,
    )


def run(quick: bool, repeats: int) -> list[dict]:
    slot_steps = 2_000 if quick else 24_000  # per repeat and K, for every backend
    rows = []
    for env_id in IDS:
        spec = gym.spec(env_id)
        limit = int(spec.max_episode_steps or 10**9)
        n_actions = PORTS[env_id].n_actions
        rng = np.random.default_rng(0)
        plain_steps = slot_steps
        acts1 = rng.integers(0, n_actions, size=(plain_steps, 1))
        plain = _median_us([_gym_loop(env_id, plain_steps, acts1) for _ in range(repeats)], plain_steps)
        rows.append({"env": env_id, "backend": "gymnasium loop", "K": 1, "us_step": plain[0], "us_loop": plain[1]})
        for k in SLOTS:
            steps = max(slot_steps // k, 50)
            acts = rng.integers(0, n_actions, size=(steps, k))
            for backend in ("numba", "gymnasium"):
                res = _median_us([_vec_loop(env_id, k, backend, steps, limit, acts) for _ in range(repeats)], steps * k)
                rows.append(
                    {
                        "env": env_id,
                        "backend": "port" if backend == "numba" else "adapter",
                        "K": k,
                        "us_step": res[0],
                        "us_loop": res[1],
                        "gym_loop_over_this_step": plain[0] / res[0],
                        "gym_loop_over_this_loop": plain[1] / res[1],
                    }
                )
    return rows


def _table(rows: list[dict]) -> str:
    head = ["env", "backend", "K", "us/step/slot (step)", "us/step/slot (loop)"]
    head += ["gym loop / this (step)", "gym loop / this (loop)"]
    out = ["| " + " | ".join(head) + " |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio_s = f"{r['gym_loop_over_this_step']:.1f}x" if "gym_loop_over_this_step" in r else "1.0x"
        ratio_l = f"{r['gym_loop_over_this_loop']:.1f}x" if "gym_loop_over_this_loop" in r else "1.0x"
        cells = [r["env"], r["backend"], str(r["K"]), f"{r['us_step']:.3f}", f"{r['us_loop']:.3f}", ratio_s, ratio_l]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _machine() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke check, not a measurement")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows = run(args.quick, 1 if args.quick else args.repeats)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    print(f"machine: {_machine()}; load avg {load0:.2f} before, {load1:.2f} after; {wall:.0f} s")
    print(_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": _machine(), "load_before": load0, "load_after": load1, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
