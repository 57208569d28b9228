"""Training throughput and learning of the engine, against baselines measured in the same run.

Lockstep (``--lockstep``): aggregate env steps/s of the engine with K runs
in lockstep (K = 1, 8, 32, 128), on one thread and on all cores (as threads
of one engine, and as one engine process per core with K / cores slots), against
today's single-run trainer (main's code at ``baseline.BASELINE_REF``,
one run per process, as before the engine) in the same run, for the
default config with ``sampler=uniform``, with ``sampler=sumtree``, and
``experiment=seed_notebook``. Every run trains ``--steps`` env steps
(finishing its last episode; solving does not stop it), so both sides do
the same work per step; the engine gets 2K runs for K slots, so continuous
batching keeps its slots full until the queue drains. The order of the
engine and baseline measurements flips between repeats (other processes
share the machine). Prints env steps/s, the ratio to the baseline, and the
update time against the matmul floor (0.72 MFLOP per update at the SGEMM
rate measured here).

Throughput (default): the engine at K = 1 (``experiment=seed_notebook``)
and the seed notebook's replica (``scripts/seed_replica.py``), ``--steps``
env steps each, alternating, ``--repeats`` times; where the time goes.

Learning (``--learning``): episodes-to-solve over ``--seeds`` seeds for each
of ``--kinds`` (``engine``: the fused engine, all seeds as one group;
``torch``: the engine with the torch reference; ``baseline``: today's
trainer from main's code, one process per seed; ``replica``), medians, IQR
and a Mann-Whitney U p-value against ``--reference``. ``--config default``
or ``seed_notebook``. ``--cache FILE`` keeps finished jobs (JSON lines).

One update (``--update-only``): CPU microseconds per DDQN update at batch
32 and per greedy action: eager torch, and the fused kernel at K = 1.

    python scripts/bench_train.py --lockstep --steps 3000 --repeats 2 --json lockstep.json
    python scripts/bench_train.py --learning --config default --seeds 20 --kinds baseline,engine --reference baseline
    python scripts/bench_train.py --steps 10000 --repeats 3 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

# isort: off
import per_exp  # noqa: E402, F401  before torch: it sets OpenMP's passive wait policy, read when torch loads libgomp
import torch  # noqa: E402

# isort: on
import baseline  # noqa: E402
import numpy as np  # noqa: E402
from seed_replica import run_replica  # noqa: E402

PARTS = ("act", "env", "sample", "update", "priority", "refresh")
REPLICA_PARTS = ("act", "env", "update", "refresh")  # replica "update" = sample + torch.cat + gradient step
CONFIGS = {
    "uniform": ["sampler=uniform"],
    "sumtree": ["sampler=sumtree"],
    "seed_notebook": ["experiment=seed_notebook"],
}


def compose(overrides: list[str]) -> Any:
    """The composed, validated config, exactly as ``per_exp.train`` builds it (tracking off)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from per_exp.config import register_configs, validate

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        c = hydra_compose("config", overrides=["tracking.enabled=false", *overrides])
    conf = OmegaConf.to_object(c)
    validate(conf)
    return conf


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "loadavg_1min_at_start": os.getloadavg()[0],
        "baseline": baseline.BASELINE_REF,
    }


# ----------------------------------------------------------------------------- the engine, timed
def time_engine(overrides: list[str], slots: int, threads: int, steps: int, runs: int, seed0: int = 0) -> dict:
    """``runs`` runs of ``steps`` env steps each on ``slots`` slots; aggregate figures."""
    from per_exp.engine.trainer import Engine, RunSpec

    ov = [*overrides, "max_episodes=1000000"]
    specs = [RunSpec(compose([*ov, f"seed={seed0 + i}"]), step_budget=steps) for i in range(runs)]
    # compile (or load numba's cache) outside the timed region
    Engine([RunSpec(compose([*ov, "seed=999"]), step_budget=64)], slots=1, threads=threads).run()
    eng = Engine(specs, slots=slots, threads=threads)
    c0, t0 = time.process_time(), time.perf_counter()
    res = eng.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if any(r.error is not None for r in res):
        raise RuntimeError(f"a benchmark run failed: {next(r.error for r in res if r.error is not None)!r}")
    n = sum(r.summary.total_env_steps for r in res)
    updates = sum(r.summary.updates for r in res)
    parts = {p: sum(r.summary.timings[p] for r in res) for p in PARTS}
    return {
        "env_steps": n,
        "updates": updates,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "env_steps_per_s": n / wall,
        "env_steps_per_cpu_s": n / cpu,
        # seconds of update work per update (the group's update calls, shared by the slots they served)
        "us_per_update": 1e6 * parts["update"] / max(updates, 1),
        "us_per_step": {p: 1e6 * v / n for p, v in parts.items()},
    }


def _engine_proc(job: tuple[list[str], int, int, int]) -> dict:
    ov, slots, steps, seed0 = job
    torch.set_num_threads(1)
    return time_engine(ov, slots, 1, steps, runs=slots, seed0=seed0)


def time_engine_procs(overrides: list[str], slots: int, procs: int, steps: int, seed0: int = 0) -> dict:
    """``procs`` engine processes at once, each with slots/procs slots and runs: all cores without threads.

    Each process compiles (or loads numba's cache) first; the aggregate rate is
    all env steps over the longest of the processes' timed windows, which run side by side.
    """
    import multiprocessing as mp

    per = max(1, slots // procs)
    ctx = mp.get_context("spawn")
    with ctx.Pool(procs, initializer=_warm_engine, initargs=(overrides,)) as pool:
        pool.map(_noop, range(procs))  # every worker up and warm
        rs = pool.map(_engine_proc, [(overrides, per, steps, seed0 + 1000 * i) for i in range(procs)])
    wall = max(r["wall_seconds"] for r in rs)  # the timed windows run side by side
    n = sum(r["env_steps"] for r in rs)
    cpu = sum(r["cpu_seconds"] for r in rs)
    updates = sum(r["updates"] for r in rs)
    return {
        "env_steps": n,
        "updates": updates,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "env_steps_per_s": n / wall,
        "env_steps_per_cpu_s": n / cpu,
        "us_per_update": statistics.median(r["us_per_update"] for r in rs),
        "us_per_step": {p: statistics.median(r["us_per_step"][p] for r in rs) for p in PARTS},
    }


def _warm_engine(overrides: list[str]) -> None:
    from per_exp.engine.trainer import Engine, RunSpec

    torch.set_num_threads(1)
    Engine([RunSpec(compose([*overrides, "max_episodes=1000000", "seed=999"]), step_budget=64)]).run()


def _noop(_: int) -> None:
    time.sleep(0.2)


def time_baseline(overrides: list[str], steps: int, seed: int) -> dict:
    r = baseline.run_in_baseline("train", [*overrides, "max_episodes=1000000", f"seed={seed}"], steps)
    return {
        "env_steps": r["env_steps"],
        "wall_seconds": r["wall_seconds"],
        "cpu_seconds": r["cpu_seconds"],
        "env_steps_per_s": r["env_steps"] / r["wall_seconds"],
        "env_steps_per_cpu_s": r["env_steps"] / r["cpu_seconds"],
    }


def sgemm_floor() -> dict:
    """0.72 MFLOP per update (4-32-32-32 dueling, B = 32) at numpy's one-thread SGEMM rate on (8192, 32) @ (32, 32)."""
    import scipy.linalg.cython_blas  # noqa: F401  numba's BLAS: load it before limiting threads
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_kernels

    with threadpool_limits(1):
        rate = bench_kernels.sgemm_rate()
    flop = bench_kernels.flops_per_update()
    return {"sgemm_gflops": rate, "mflop_per_update": flop / 1e6, "floor_us_per_update": flop / (rate * 1e9) * 1e6}


# ----------------------------------------------------------------------------- lockstep
def lockstep(args) -> dict:
    ks = [int(k) for k in args.ks.split(",")]
    all_cores = os.cpu_count() or 1
    threads = [1] + ([all_cores] if all_cores > 1 else [])
    configs = args.configs.split(",")
    out: dict[str, Any] = {"steps_per_run": args.steps, "repeats": args.repeats, "machine": machine(), "rows": []}
    out["floor"] = sgemm_floor()
    for name in configs:
        ov = CONFIGS[name]
        for rep in range(args.repeats):
            # flip the order between repeats: a load spike from other processes hits both sides alike
            plan: list[tuple[str, int, int]] = [("baseline", 1, 1)] + [("engine", k, t) for t in threads for k in ks]
            if all_cores > 1:  # all cores as processes: one engine per core, K / cores slots each
                plan += [("engine-procs", k, all_cores) for k in ks if k >= all_cores]
            if rep % 2:
                plan.reverse()
            for who, k, t in plan:
                if who == "baseline":
                    r = time_baseline(ov, args.steps, seed=rep)
                elif who == "engine-procs":
                    r = time_engine_procs(ov, k, t, args.steps, seed0=100 * rep)
                else:
                    r = time_engine(ov, k, t, args.steps, runs=args.runs_per_slot * k, seed0=100 * rep)
                row = {"config": name, "who": who, "K": k, "threads": t, "repeat": rep, **r}
                out["rows"].append(row)
                if args.json:  # a partial file after every row: a long run that is stopped keeps what it measured
                    Path(args.json).write_text(json.dumps(out, indent=2))
                print(
                    f"  {name:13s} rep {rep} {who:8s} K={k:<4d} threads={t}: {r['env_steps_per_s']:9.0f} env steps/s "
                    f"({r['env_steps_per_cpu_s']:.0f} per CPU s), load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    out["machine"]["loadavg_1min_at_end"] = os.getloadavg()[0]
    out["table"] = lockstep_table(out)
    return out


def lockstep_table(out: dict) -> list[dict]:
    rows = out["rows"]
    table = []
    for name in dict.fromkeys(r["config"] for r in rows):
        base = [r for r in rows if r["config"] == name and r["who"] == "baseline"]
        b_sps = statistics.median(r["env_steps_per_s"] for r in base)
        b_cpu = statistics.median(r["env_steps_per_cpu_s"] for r in base)
        table.append(
            {
                "config": name,
                "who": "today's trainer",
                "K": 1,
                "threads": 1,
                "env_steps_per_s": b_sps,
                "ratio": 1.0,
                "env_steps_per_cpu_s": b_cpu,
                "ratio_cpu": 1.0,
            }
        )
        keys = dict.fromkeys(
            (r["who"], r["K"], r["threads"]) for r in rows if r["config"] == name and r["who"] != "baseline"
        )
        for who, k, t in keys:
            rs = [r for r in rows if r["config"] == name and (r["who"], r["K"], r["threads"]) == (who, k, t)]
            sps = statistics.median(r["env_steps_per_s"] for r in rs)
            cps = statistics.median(r["env_steps_per_cpu_s"] for r in rs)
            us = statistics.median(r["us_per_update"] for r in rs)
            table.append(
                {
                    "config": name,
                    "who": "engine" if who == "engine" else f"engine, {t} processes",
                    "K": k,
                    "threads": t,
                    "env_steps_per_s": sps,
                    "ratio": sps / b_sps,
                    "env_steps_per_cpu_s": cps,
                    "ratio_cpu": cps / b_cpu,
                    "us_per_update": us,
                    "x_floor": us / out["floor"]["floor_us_per_update"],
                }
            )
    return table


def print_lockstep(out: dict) -> None:
    m, f = out["machine"], out["floor"]
    print(
        f"\n{out['steps_per_run']} env steps per run, median of {out['repeats']} repeats; {m['cpu']}, {m['cores']} "
        f"cores, load {m['loadavg_1min_at_start']:.1f}->{m['loadavg_1min_at_end']:.1f}; baseline main@{m['baseline']}"
    )
    print(
        f"matmul floor: {f['mflop_per_update']:.2f} MFLOP/update at {f['sgemm_gflops']:.0f} GFLOP/s (one-thread "
        f"SGEMM here) = {f['floor_us_per_update']:.1f} us/update"
    )
    print("| config | run | K | threads | env steps/s | x today | per CPU s | x today (CPU) | us/update | x floor |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in out["table"]:
        us = f"{r['us_per_update']:.1f}" if "us_per_update" in r else "-"
        xf = f"{r['x_floor']:.1f}" if "x_floor" in r else "-"
        print(
            f"| {r['config']} | {r['who']} | {r['K']} | {r['threads']} | {r['env_steps_per_s']:.0f} | "
            f"{r['ratio']:.2f} | {r['env_steps_per_cpu_s']:.0f} | {r['ratio_cpu']:.2f} | {us} | {xf} |"
        )


# ----------------------------------------------------------------------------- throughput vs the replica
def throughput(args) -> dict:
    ov = CONFIGS["seed_notebook"]
    runs: dict[str, list[dict]] = {"replica": [], "engine": []}
    for rep in range(args.repeats):
        seed = args.seed + rep
        order = ["replica", "engine"] if rep % 2 == 0 else ["engine", "replica"]
        for who in order:
            if who == "replica":
                c0 = time.process_time()
                r = run_replica(seed, max_env_steps=args.steps, stop_on_solve=False)
                cpu = time.process_time() - c0
                fig = {
                    "env_steps": r.total_env_steps,
                    "wall_seconds": r.wall_seconds,
                    "cpu_seconds": cpu,
                    "env_steps_per_s": r.total_env_steps / r.wall_seconds,
                    "env_steps_per_cpu_s": r.total_env_steps / cpu,
                    "episodes": r.episodes,
                    "us_per_step": {k: 1e6 * v / r.total_env_steps for k, v in r.timings.items()},
                }
            else:
                fig = time_engine(ov, 1, 1, args.steps, runs=1, seed0=seed)
            runs[who].append(fig)
            print(f"  repeat {rep} seed {seed}: {who:8s} {fig['env_steps_per_s']:8.0f} env steps/s", flush=True)
    out: dict[str, Any] = {
        "config": "experiment=seed_notebook",
        "steps": args.steps,
        "repeats": args.repeats,
        "machine": machine(),
        "runs": runs,
        "median": {},
    }
    for name, rs in runs.items():
        out["median"][name] = {
            "env_steps_per_s": statistics.median(r["env_steps_per_s"] for r in rs),
            "env_steps_per_cpu_s": statistics.median(r["env_steps_per_cpu_s"] for r in rs),
            "us_per_step": {k: statistics.median(r["us_per_step"][k] for r in rs) for k in rs[0]["us_per_step"]},
        }
    ratios = [e["env_steps_per_s"] / r["env_steps_per_s"] for e, r in zip(runs["engine"], runs["replica"])]
    out["speedup_per_repeat"] = ratios
    out["speedup"] = statistics.median(ratios)
    out["speedup_cpu"] = statistics.median(
        e["env_steps_per_cpu_s"] / r["env_steps_per_cpu_s"] for e, r in zip(runs["engine"], runs["replica"])
    )
    out["one_update"] = update_microbench(args.update_iters)
    out["machine"]["loadavg_1min_at_end"] = os.getloadavg()[0]
    return out


def print_throughput(out: dict) -> None:
    m = out["machine"]
    print(
        f"\nseed-notebook config, {out['steps']} env steps x {out['repeats']} repeats, medians; {m['cpu']}, "
        f"{m['cores']} cores, load {m['loadavg_1min_at_start']:.1f}->{m['loadavg_1min_at_end']:.1f}"
    )
    for name, v in out["median"].items():
        parts = ", ".join(f"{k} {x:.1f}" for k, x in v["us_per_step"].items())
        print(
            f"{name:8s} {v['env_steps_per_s']:8.0f} env steps/s, {v['env_steps_per_cpu_s']:8.0f} per CPU s; "
            f"us/step: {parts}"
        )
    print(
        f"speedup (engine K=1 / replica env steps/s): {out['speedup']:.2f}x "
        f"(per repeat: {', '.join(f'{r:.2f}' for r in out['speedup_per_repeat'])}); "
        f"on CPU time: {out['speedup_cpu']:.2f}x"
    )
    print(
        "one update at batch 32 / one greedy action, CPU us: "
        + ", ".join(f"{k} {v:.1f}" for k, v in out["one_update"].items())
    )


# ----------------------------------------------------------------------------- one update
def update_microbench(n: int) -> dict:
    """CPU microseconds per DDQN update at batch 32 (seed network): the torch reference and the fused kernel (K = 1)."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    from per_exp.config import NetworkConfig
    from per_exp.engine.agent import Batch, DDQNAgent, SlotAgent
    from per_exp.engine.storage import Storage

    rng = np.random.default_rng(0)
    st = Storage(1, 1000, 4)
    st.states[0] = rng.normal(size=(1000, 4))
    st.next_states[0] = rng.normal(size=(1000, 4))
    st.actions[0] = rng.integers(0, 2, 1000)
    st.rewards[0] = rng.choice([-1.0, 0.0, 1.0], 1000)
    st.size[0] = 1000
    idx = rng.integers(0, 1000, (1, 32))
    w = np.ones((1, 32), np.float32)
    b = Batch(
        st.states[0, idx[0]],
        st.actions[0, idx[0]],
        st.rewards[0, idx[0]],
        st.next_states[0, idx[0]],
        st.dones[0, idx[0]],
    )

    def timed(step) -> float:
        for _ in range(20):
            step()
        c0 = time.process_time()
        for _ in range(n):
            step()
        return 1e6 * (time.process_time() - c0) / n

    out: dict = {}
    ref = DDQNAgent(NetworkConfig(), 4, 2, 1e-4, 0.99, False, np.random.default_rng(0))
    out["update_us[torch]"] = timed(lambda: ref.update(b, w[0]))
    out["act_us[torch]"] = timed(lambda: ref.greedy(b.states[0]))
    fast = SlotAgent(1, NetworkConfig(), 4, 2, 32)
    fast.init_slot(0, 0, 1e-4, 0.99, False, np.random.SeedSequence(0))
    td, loss, mask, acts = np.zeros((1, 32), np.float32), np.zeros(1), np.ones(1, bool), np.zeros(1, np.int64)
    with threadpool_limits(1):
        out["update_us[fused]"] = timed(lambda: fast.update(st, idx, w, mask, td, loss))
        out["act_us[fused]"] = timed(lambda: fast.act(st.states[0, :1], np.full(1, -1.0), mask, acts))
    return out


# ----------------------------------------------------------------------------- learning
def _learning_job(job: tuple[str, str, int]) -> dict:
    kind, config, seed = job
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ov = CONFIGS["sumtree"] if config == "default" else CONFIGS[config]
    if kind == "replica":
        r = run_replica(seed)
        solved, episodes, steps = r.solved_episode, r.episodes, r.total_env_steps
    elif kind == "baseline":
        r = baseline.run_in_baseline("train", [*ov, f"seed={seed}"])
        solved, episodes, steps = r["solved_episode"], r["episodes"], r["env_steps"]
    else:
        from per_exp.engine.trainer import run_one

        s = run_one(compose([*ov, f"seed={seed}", f"update_backend={'torch' if kind == 'torch' else 'fused'}"]))
        solved, episodes, steps = s.solved_episode, s.episodes, s.total_env_steps
    return {
        "kind": kind,
        "config": config,
        "seed": seed,
        "solved_episode": solved,
        "episodes": episodes,
        "env_steps": steps,
        "wall_seconds": time.perf_counter() - t0,
    }


def _engine_group(config: str, seeds: list[int], slots: int) -> list[dict]:
    """Every seed of the fused engine as one group (what a grouped sweep does)."""
    from per_exp.engine.trainer import Engine, RunSpec

    ov = CONFIGS["sumtree"] if config == "default" else CONFIGS[config]
    specs = [RunSpec(compose([*ov, f"seed={s}"]), label=str(s)) for s in seeds]
    t0 = time.perf_counter()
    res = Engine(specs, slots=slots).run()
    wall = time.perf_counter() - t0
    out = []
    for r in sorted(res, key=lambda r: r.spec.cfg.seed):
        if r.error is not None:
            raise RuntimeError(f"seed {r.spec.cfg.seed} failed: {r.error!r}")
        s = r.summary
        out.append(
            {
                "kind": "engine",
                "config": config,
                "seed": r.spec.cfg.seed,
                "solved_episode": s.solved_episode,
                "episodes": s.episodes,
                "env_steps": s.total_env_steps,
                "wall_seconds": wall / len(res),
            }
        )
    return out


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(xs, dtype=float), [25, 50, 75])
    return float(q1), float(med), float(q3)


def learning(args) -> dict:
    import multiprocessing as mp

    kinds = args.kinds.split(",")
    seeds = list(range(args.seed, args.seed + args.seeds))
    cache = Path(args.cache) if args.cache else None
    done: list[dict] = []
    if cache and cache.exists():
        done = [json.loads(line) for line in cache.read_text().splitlines() if line.strip()]
    have = {(d["kind"], d.get("config", "seed_notebook"), d["seed"]) for d in done}

    def record(r: dict) -> None:
        done.append(r)
        print(
            f"  {r['kind']:8s} seed {r['seed']:3d}: solved at {r['solved_episode']} ({r['env_steps']} steps, "
            f"{r['wall_seconds']:.0f} s)",
            flush=True,
        )
        if cache:
            with cache.open("a") as f:
                f.write(json.dumps(r) + "\n")

    if "engine" in kinds:
        todo_e = [s for s in seeds if ("engine", args.config, s) not in have]
        if todo_e:
            for r in _engine_group(args.config, todo_e, args.slots):
                record(r)
    todo = [(k, args.config, s) for s in seeds for k in kinds if k != "engine" and (k, args.config, s) not in have]
    jobs = max(1, min(args.jobs, os.cpu_count() or 1))
    print(f"learning ({args.config}): {len(todo)} single-run jobs to run, {jobs} at a time", flush=True)
    if todo:
        with mp.get_context("spawn").Pool(jobs) as pool:
            for r in pool.imap_unordered(_learning_job, todo):
                record(r)
    out: dict[str, Any] = {"config": args.config, "seeds": seeds, "machine": machine(), "kinds": {}}
    for k in kinds:
        rs = sorted(
            (
                d
                for d in done
                if d["kind"] == k and d.get("config", "seed_notebook") == args.config and d["seed"] in seeds
            ),
            key=lambda d: d["seed"],
        )
        # an unsolved run counts as its episode cap (censored)
        eps = [d["solved_episode"] if d["solved_episode"] is not None else d["episodes"] for d in rs]
        q1, med, q3 = _quartiles(eps) if eps else (float("nan"),) * 3
        out["kinds"][k] = {
            "episodes_to_solve": eps,
            "median": med,
            "q1": q1,
            "q3": q3,
            "unsolved": sum(d["solved_episode"] is None for d in rs),
            "env_steps": sum(d["env_steps"] for d in rs),
            "wall_seconds": sum(d["wall_seconds"] for d in rs),
        }
    ref = out["kinds"].get(args.reference)
    if ref is not None:
        from scipy.stats import mannwhitneyu  # two-sided: do the two distributions differ?

        for k, v in out["kinds"].items():
            if k != args.reference and len(ref["episodes_to_solve"]) > 1 and len(v["episodes_to_solve"]) > 1:
                v["median_within_reference_iqr"] = ref["q1"] <= v["median"] <= ref["q3"]
                v["mannwhitney_p"] = float(mannwhitneyu(ref["episodes_to_solve"], v["episodes_to_solve"]).pvalue)
    out["reference"] = args.reference
    return out


def print_learning(out: dict) -> None:
    print(
        f"\nepisodes to solve, {out['config']} config, seeds {out['seeds'][0]}..{out['seeds'][-1]} "
        "(unsolved counted at the episode cap)"
    )
    print("| run | median | IQR | unsolved | Mann-Whitney p vs " + out["reference"] + " | per seed |")
    print("|---|---|---|---|---|---|")
    for k, v in out["kinds"].items():
        p = f"{v['mannwhitney_p']:.2f}" if "mannwhitney_p" in v else "-"
        print(
            f"| {k} | {v['median']:.1f} | {v['q1']:.1f}-{v['q3']:.1f} | {v['unsolved']} | {p} | "
            f"{' '.join(str(e) for e in v['episodes_to_solve'])} |"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lockstep", action="store_true", help="engine at K slots vs today's trainer")
    ap.add_argument("--ks", default="1,8,32,128", help="lockstep: slot counts")
    ap.add_argument("--configs", default="uniform,sumtree,seed_notebook", help="lockstep: " + ", ".join(CONFIGS))
    ap.add_argument("--runs-per-slot", type=int, default=2, help="lockstep: runs queued per slot")
    ap.add_argument("--steps", type=int, default=3000, help="env steps per run")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learning", action="store_true", help="episodes-to-solve over --seeds seeds")
    ap.add_argument("--config", default="seed_notebook", choices=("seed_notebook", "default"), help="learning mode")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--slots", type=int, default=32, help="learning mode: slots of the engine's group")
    ap.add_argument("--jobs", type=int, default=1, help="learning mode: processes at once (capped at the core count)")
    ap.add_argument("--kinds", default="baseline,engine", help="learning: engine, torch, baseline, replica")
    ap.add_argument("--reference", default="baseline", help="learning mode: the kind the others are tested against")
    ap.add_argument("--cache", default=None, help="learning mode: JSON-lines file of finished jobs (resumable)")
    ap.add_argument("--update-only", action="store_true", help="time one update per backend (CPU us) and exit")
    ap.add_argument("--update-iters", type=int, default=2000, help="timed calls per backend in the one-update figures")
    ap.add_argument("--json", default=None, help="write the figures to this path")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.update_only:
        out: dict[str, Any] = {"machine": machine(), **update_microbench(args.update_iters)}
        for k, v in out.items():
            if k != "machine":
                print(f"{k:32s} {v:10.1f}")
    elif args.lockstep:
        out = lockstep(args)
        print_lockstep(out)
    elif args.learning:
        out = learning(args)
        print_learning(out)
    else:
        out = throughput(args)
        print_throughput(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
