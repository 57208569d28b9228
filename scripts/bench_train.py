"""Training throughput on the seed-notebook configuration, against the seed replica in the same run.

Throughput (default): the trainer (``experiment=seed_notebook``: linear-scan
PER with the seed's switches, full TD refresh at every episode end, 30
uniform warm-up episodes, one update of batch 32 per env step) and the
notebook replica (``scripts/seed_replica.py``) each train for ``--steps``
env steps from the same seed, alternating, ``--repeats`` times. Prints env
steps/s, updates/s, where the time goes, and the ratio trainer/replica
(median over repeats); ``--json PATH`` writes it all, the ratio under
``speedup``. Both keep training after CartPole is solved, so both do the
same amount of work per step.

Learning (``--learning --seeds 10``): both train to solve (10 consecutive
episodes of >= 196 steps, at most 500 episodes) for each seed, one process
per job, ``--jobs`` at once (at most one per core); prints each side's
median episodes-to-solve and IQR and whether the trainer's median lies
within the replica's IQR. ``--cache FILE`` appends each finished job as a
JSON line and skips jobs already there, so a long study can be resumed or
run in parts (``--kinds replica`` now, ``--kinds fused`` later).

One update (``--update-only``): CPU microseconds per DDQN update at batch
32 and per greedy action, eager torch vs the fused kernel; ``--compile``
adds ``torch.compile`` of the loss (about a minute of compiling).

Figures are wall-clock (what a researcher waits for) and, next to them,
per CPU second, which other processes on a shared machine disturb less.

    python scripts/bench_train.py --steps 10000 --repeats 3 --torch-backend --json bench.json
    python scripts/bench_train.py --learning --seeds 10 --jobs 2 --cache learn.jsonl
    python scripts/bench_train.py --update-only --compile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from seed_replica import run_replica  # noqa: E402

# the replica times act, env, update (= sample + torch.cat + gradient step) and refresh
TRAINER_PARTS = ("act", "env", "sample", "update", "priority", "refresh", "logging")


def seed_notebook_config(seed: int, backend: str, extra: tuple[str, ...] = ()):
    """The composed, validated `experiment=seed_notebook` config, exactly as `per_exp.train` builds it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from per_exp.config import register_configs, validate

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        c = compose(
            "config",
            overrides=[
                "experiment=seed_notebook",
                "tracking.enabled=false",
                f"seed={seed}",
                f"update_backend={backend}",
                *extra,
            ],
        )
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
        "torch_threads": 1,
        "loadavg_1min_at_start": os.getloadavg()[0],
    }


# ----------------------------------------------------------------------------- throughput
def time_trainer(seed: int, steps: int, backend: str) -> dict:
    """Run Trainer episodes until `steps` env steps (finishing the last episode), as Trainer.run does."""
    from per_exp.engine.trainer import Trainer

    cfg = seed_notebook_config(seed, backend)
    rows: list[tuple[int, dict]] = []
    tr = Trainer(cfg, sink=lambda ep, m: rows.append((ep, m)))
    if backend == "fused":  # JIT compile (or load from numba's cache) outside the timed region
        tr.agent.act(np.zeros(tr.buffer.states.shape[1], np.float32), -1.0)
    t_log = 0.0
    c0, t0 = time.process_time(), time.perf_counter()
    while tr.total_steps < steps:
        m = tr.run_episode()
        t1 = time.perf_counter()
        tr.sink(tr.episode, m)
        t_log += time.perf_counter() - t1
        tr.episode += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    parts = {k: tr.timings[k] for k in TRAINER_PARTS if k != "logging"}
    parts["logging"] = t_log
    return _figures(f"trainer[{backend}]", tr.total_steps, tr.updates, tr.episode, wall, cpu, parts)


def time_replica(seed: int, steps: int) -> dict:
    c0 = time.process_time()
    r = run_replica(seed, max_env_steps=steps, stop_on_solve=False)
    cpu = time.process_time() - c0
    updates = max(r.total_env_steps - 31, 0)  # replay() starts once memory holds a batch
    return _figures("replica", r.total_env_steps, updates, r.episodes, r.wall_seconds, cpu, r.timings)


def _figures(name: str, steps: int, updates: int, episodes: int, wall: float, cpu: float, parts: dict) -> dict:
    parts = dict(parts)
    parts["other"] = max(wall - sum(parts.values()), 0.0)
    return {
        "name": name,
        "env_steps": steps,
        "updates": updates,
        "episodes": episodes,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "env_steps_per_s": steps / wall,
        "env_steps_per_cpu_s": steps / cpu,
        "updates_per_s": updates / wall,
        "us_per_step": {k: 1e6 * v / steps for k, v in parts.items()},
    }


def throughput(args) -> dict:
    backends = ["fused"] + (["torch"] if args.torch_backend else [])
    runs: dict[str, list[dict]] = {"replica": [], **{f"trainer[{b}]": [] for b in backends}}
    for rep in range(args.repeats):
        seed = args.seed + rep
        # alternate the order so a load spike from other processes hits both sides alike
        order = ["replica", *backends] if rep % 2 == 0 else [*backends, "replica"]
        for who in order:
            r = time_replica(seed, args.steps) if who == "replica" else time_trainer(seed, args.steps, who)
            runs[r["name"]].append(r)
            print(
                f"  repeat {rep} seed {seed}: {r['name']:15s} {r['env_steps_per_s']:8.0f} env steps/s "
                f"({r['episodes']} episodes)",
                flush=True,
            )
    out = {
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
            "updates_per_s": statistics.median(r["updates_per_s"] for r in rs),
            "us_per_step": {k: statistics.median(r["us_per_step"][k] for r in rs) for k in rs[0]["us_per_step"]},
        }
    ratios = [f["env_steps_per_s"] / rp["env_steps_per_s"] for f, rp in zip(runs["trainer[fused]"], runs["replica"])]
    out["speedup_per_repeat"] = ratios
    out["speedup"] = statistics.median(ratios)
    # CPU time is what other processes on a shared machine disturb least
    out["speedup_cpu"] = statistics.median(
        f["env_steps_per_cpu_s"] / rp["env_steps_per_cpu_s"] for f, rp in zip(runs["trainer[fused]"], runs["replica"])
    )
    if args.torch_backend:
        out["speedup_torch_backend"] = statistics.median(
            t["env_steps_per_s"] / rp["env_steps_per_s"] for t, rp in zip(runs["trainer[torch]"], runs["replica"])
        )
    out["one_update"] = update_microbench(args.update_iters, with_compile=False)
    out["machine"]["loadavg_1min_at_end"] = os.getloadavg()[0]
    return out


def print_throughput(out: dict) -> None:
    m = out["machine"]
    print(
        f"\nseed-notebook config, {out['steps']} env steps x {out['repeats']} repeats, medians; "
        f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} (1 thread), numba {m['numba']}, "
        f"load {m['loadavg_1min_at_start']:.1f}->{m['loadavg_1min_at_end']:.1f}"
    )
    names = list(out["median"])
    parts = ["act", "env", "sample", "update", "priority", "refresh", "logging", "other"]
    print(f"| {'':24s} | " + " | ".join(f"{n:>15s}" for n in names) + " |")
    print("|" + "---|" * (len(names) + 1))
    print(
        f"| {'env steps/s':24s} | " + " | ".join(f"{out['median'][n]['env_steps_per_s']:15.0f}" for n in names) + " |"
    )
    print(
        f"| {'env steps per CPU s':24s} | "
        + " | ".join(f"{out['median'][n]['env_steps_per_cpu_s']:15.0f}" for n in names)
        + " |"
    )
    print(f"| {'updates/s':24s} | " + " | ".join(f"{out['median'][n]['updates_per_s']:15.0f}" for n in names) + " |")
    for p in parts:
        cells = []
        for n in names:
            v = out["median"][n]["us_per_step"].get(p)
            cells.append(
                f"{v:15.1f}" if v is not None else f"{'(in update)' if p in ('sample', 'priority') else '-':>15s}"
            )
        print(f"| {'us/step ' + p:24s} | " + " | ".join(cells) + " |")
    print(
        f"\nspeedup (trainer[fused] / replica env steps/s): {out['speedup']:.2f}x "
        f"(per repeat: {', '.join(f'{r:.2f}' for r in out['speedup_per_repeat'])}); "
        f"on CPU time: {out['speedup_cpu']:.2f}x"
    )
    print(
        "one update at batch 32 / one greedy action, CPU us: "
        + ", ".join(f"{k} {v:.1f}" for k, v in out["one_update"].items())
    )
    if "speedup_torch_backend" in out:
        print(f"speedup (trainer[torch] / replica): {out['speedup_torch_backend']:.2f}x")


# ----------------------------------------------------------------------------- one update
def update_microbench(n: int, with_compile: bool) -> dict:
    """CPU microseconds per DDQN update at batch 32 (seed network): eager torch, fused, and torch.compile."""
    from per_exp.config import NetworkConfig
    from per_exp.engine.agent import DDQNAgent, double_dqn_targets, weighted_huber
    from per_exp.engine.replay import Batch

    rng = np.random.default_rng(0)
    b = Batch(
        rng.normal(size=(32, 4)).astype(np.float32),
        rng.integers(0, 2, 32),
        rng.choice([-1.0, 0.0, 1.0], 32).astype(np.float32),
        rng.normal(size=(32, 4)).astype(np.float32),
        (rng.random(32) < 0.1).astype(np.float32),
    )
    w = np.ones(32, np.float32)
    out: dict = {}

    def timed(step) -> float:
        for _ in range(20):
            step()
        c0 = time.process_time()
        for _ in range(n):
            step()
        return 1e6 * (time.process_time() - c0) / n

    for backend in ("torch", "fused"):
        a = DDQNAgent(NetworkConfig(), 4, 2, 1e-4, 0.99, False, np.random.default_rng(0), backend)
        out[f"update_us[{backend}]"] = timed(partial(a.update, b, w))
        out[f"act_us[{backend}]"] = timed(partial(a.act, b.states[0], 0.0))
    if with_compile:
        a = DDQNAgent(NetworkConfig(), 4, 2, 1e-4, 0.99, False, np.random.default_rng(0), "torch")

        def loss_fn(s, s2, act, r, d, wt):  # the agent's _targets + loss, for inductor to fuse
            q_all = a.online(torch.cat([s, s2], 0))
            q, qn = q_all[: s.shape[0]], q_all[s.shape[0] :].detach()
            with torch.no_grad():
                qt = a.target(s2)
            q_sa = q.gather(1, act.unsqueeze(1)).squeeze(1)
            return weighted_huber(q_sa, double_dqn_targets(r, d, 0.99, qn, qt), wt)

        compiled = torch.compile(loss_fn)
        args = [torch.from_numpy(x) for x in (b.states, b.next_states, b.actions, b.rewards, b.dones, w)]

        def step():
            loss = compiled(*args)
            a.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            a.optimizer.step()

        t0 = time.perf_counter()
        step()
        out["compile_wall_s[torch.compile]"] = time.perf_counter() - t0
        out["update_us[torch.compile]"] = timed(step)
    return out


# ----------------------------------------------------------------------------- learning
def _learning_job(job: tuple[str, int]) -> dict:
    kind, seed = job
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if kind == "replica":
        r = run_replica(seed)
        solved, episodes, steps = r.solved_episode, r.episodes, r.total_env_steps
    else:
        from per_exp.engine.trainer import Trainer

        s = Trainer(seed_notebook_config(seed, kind)).run()
        solved, episodes, steps = s.solved_episode, s.episodes, s.total_env_steps
    return {
        "kind": kind,
        "seed": seed,
        "solved_episode": solved,
        "episodes": episodes,
        "env_steps": steps,
        "wall_seconds": time.perf_counter() - t0,
    }


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
    have = {(d["kind"], d["seed"]) for d in done}
    todo = [(k, s) for s in seeds for k in kinds if (k, s) not in have]
    jobs = max(1, min(args.jobs, os.cpu_count() or 1))
    print(f"learning: {len(todo)} jobs to run ({len(done)} cached), {jobs} at a time", flush=True)
    with mp.get_context("spawn").Pool(jobs) as pool:
        for r in pool.imap_unordered(_learning_job, todo):
            done.append(r)
            print(
                f"  {r['kind']:8s} seed {r['seed']:3d}: solved at {r['solved_episode']} "
                f"({r['env_steps']} steps, {r['wall_seconds']:.0f} s)",
                flush=True,
            )
            if cache:
                with cache.open("a") as f:
                    f.write(json.dumps(r) + "\n")
    out: dict = {"config": "experiment=seed_notebook", "seeds": seeds, "machine": machine(), "kinds": {}}
    for k in kinds:
        rs = sorted((d for d in done if d["kind"] == k and d["seed"] in seeds), key=lambda d: d["seed"])
        # an unsolved run counts as 500 episodes (censored at the cap)
        eps = [d["solved_episode"] if d["solved_episode"] is not None else 500 for d in rs]
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
    if "replica" in out["kinds"]:
        ref = out["kinds"]["replica"]
        for k, v in out["kinds"].items():
            if k != "replica":
                v["median_within_replica_iqr"] = ref["q1"] <= v["median"] <= ref["q3"]
                if len(ref["episodes_to_solve"]) > 1 and len(v["episodes_to_solve"]) > 1:
                    from scipy.stats import mannwhitneyu  # two-sided: do the two distributions differ?

                    v["mannwhitney_p"] = float(mannwhitneyu(ref["episodes_to_solve"], v["episodes_to_solve"]).pvalue)
                v["steps_per_s_ratio"] = (v["env_steps"] / v["wall_seconds"]) / (ref["env_steps"] / ref["wall_seconds"])
    return out


def print_learning(out: dict) -> None:
    print(f"\nepisodes to solve, seeds {out['seeds'][0]}..{out['seeds'][-1]} (unsolved counted as 500)")
    print("| run | median | IQR | unsolved | env steps/s over the study | per seed |")
    print("|---|---|---|---|---|---|")
    for k, v in out["kinds"].items():
        sps = v["env_steps"] / v["wall_seconds"] if v["wall_seconds"] else 0.0
        print(
            f"| {k} | {v['median']:.1f} | {v['q1']:.1f}-{v['q3']:.1f} | {v['unsolved']} | {sps:.0f} | "
            f"{' '.join(str(e) for e in v['episodes_to_solve'])} |"
        )
    for k, v in out["kinds"].items():
        if "median_within_replica_iqr" in v:
            print(
                f"{k}: median within the replica's IQR: {v['median_within_replica_iqr']}; "
                f"Mann-Whitney U p={v.get('mannwhitney_p', float('nan')):.2f}; "
                f"env steps/s {v['steps_per_s_ratio']:.2f}x the replica's"
            )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000, help="env steps per timed run (throughput mode)")
    ap.add_argument(
        "--repeats", type=int, default=1, help="alternating replica/trainer runs, seeds seed..seed+repeats-1"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-backend", action="store_true", help="also time the trainer with update_backend=torch")
    ap.add_argument("--learning", action="store_true", help="train both to solve over --seeds seeds")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=1, help="learning mode: processes at once (capped at the core count)")
    ap.add_argument("--kinds", default="replica,fused", help="learning mode: replica, fused, torch (comma-separated)")
    ap.add_argument("--cache", default=None, help="learning mode: JSON-lines file of finished jobs (resumable)")
    ap.add_argument("--update-only", action="store_true", help="time one update per backend (CPU us) and exit")
    ap.add_argument("--update-iters", type=int, default=2000, help="timed calls per backend in the one-update figures")
    ap.add_argument("--compile", action="store_true", help="with --update-only: also torch.compile (takes ~1 min)")
    ap.add_argument("--json", default=None, help="write the figures to this path")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # 2 threads on 2 cores ran 5.6x slower
    if args.update_only:
        out = {"machine": machine(), **update_microbench(args.update_iters, args.compile)}
        for k, v in out.items():
            if k != "machine":
                print(f"{k:32s} {v:10.1f}")
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
