"""How often does a stopping rule call two *equal* groups different? (and how often a real effect decided)

Simulates many studies of two groups whose runs come from the same
distribution (no effect) and counts how often each design ends with "the CI
on P(X better than Y) excludes 0.5". Each look is the report's own decision
(``analysis.stats.compare``, percentile stratified bootstrap) and each plan the
report's own (``analysis.plan.plan_comparisons``):

- ``fixed-N``:         one look at N seeds per group, 95% CI (the CI's own calibration);
- ``sequential``:      add 5 seeds per group and look again, 95% CI, until decided or 50 seeds;
- ``2 looks, 95%``:    pilot, then the planned top-up, both looks at 95% (no correction);
- ``2 looks, 97.5%``:  the report's rule (Bonferroni over two looks).

With ``--effect P`` the groups differ (P(X better than Y) = P, normal scores)
and the rate is the power. Scores are either normal or episodes-to-solve-like
(log-normal, rounded, unsolved runs at a cap: ties).

    python scripts/sim_stopping_rule.py --studies 1000 --reps 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.plan import TOP_UP, StoppingRule, plan_comparisons
from analysis.stats import compare


def draw(rng, n: int, kind: str, shift: float = 0.0) -> np.ndarray:
    if kind == "normal":
        return rng.normal(shift, 1.0, n)
    # episodes to solve: median ~120, 10% of runs never solve (the cap, 300)
    x = np.round(np.exp(rng.normal(np.log(120) + 0.3 * shift, 0.35, n)))
    x[rng.random(n) < 0.1] = 300
    return np.minimum(x, 300)


def decided(x, y, level: float, reps: int, seed: int) -> bool:
    return compare(x, y, levels=(level,), reps=reps, seed=seed).excludes_half(level)


def two_looks(rng, kind, shift, pilot, level, reps, seed, max_seeds) -> tuple[bool, int]:
    x, y = draw(rng, pilot, kind), draw(rng, pilot, kind, shift)
    rule = StoppingRule(looks=2, alpha=2 * (1 - level), max_seeds=max_seeds, pilot=5)
    plan = plan_comparisons({"x": x, "y": y}, rule=rule, reps=reps, seed=seed)
    pp = plan.pairs[0]
    if pp.status != TOP_UP:
        return pp.status == "decided", pilot
    n = int(pp.seeds)
    x = np.concatenate([x, draw(rng, n - len(x), kind)])
    y = np.concatenate([y, draw(rng, n - len(y), kind, shift)])
    return decided(x, y, level, reps, seed), n


def sequential(rng, kind, shift, reps, seed, start=5, step=5, stop=50) -> tuple[bool, int]:
    x, y = draw(rng, start, kind), draw(rng, start, kind, shift)
    while True:
        if decided(x, y, 0.95, reps, seed):
            return True, len(x)
        if len(x) >= stop:
            return False, len(x)
        x, y = np.concatenate([x, draw(rng, step, kind)]), np.concatenate([y, draw(rng, step, kind, shift)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--studies", type=int, default=1000)
    p.add_argument("--reps", type=int, default=1000, help="bootstrap resamples per look")
    p.add_argument("--kind", choices=("normal", "episodes"), default="normal")
    p.add_argument("--effect", type=float, default=0.5, help="true P(X better than Y) (normal scores only)")
    p.add_argument("--pilot", type=int, default=10)
    p.add_argument("--fixed-n", type=int, default=20)
    p.add_argument("--max-seeds", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--design",
        action="append",
        choices=("fixed-N", "sequential", "2 looks, 95%", "2 looks, 97.5%"),
        help="simulate only these designs (repeatable; default: all)",
    )
    args = p.parse_args(argv)
    # P(X > Y) for X ~ N(0,1), Y ~ N(s,1) is Phi(-s / sqrt 2): the shift giving the asked effect
    shift = -np.sqrt(2) * scipy.stats.norm.ppf(args.effect)
    designs = {
        "fixed-N": lambda r, s: (
            decided(draw(r, args.fixed_n, args.kind), draw(r, args.fixed_n, args.kind, shift), 0.95, args.reps, s),
            args.fixed_n,
        ),
        "sequential": lambda r, s: sequential(r, args.kind, shift, args.reps, s),
        "2 looks, 95%": lambda r, s: two_looks(r, args.kind, shift, args.pilot, 0.95, args.reps, s, args.max_seeds),
        "2 looks, 97.5%": lambda r, s: two_looks(r, args.kind, shift, args.pilot, 0.975, args.reps, s, args.max_seeds),
    }
    print(
        f"{args.studies} studies per design, {args.kind} scores, true P(X better than Y) = {args.effect}, "
        f"pilot {args.pilot}, {args.reps} bootstrap resamples per look"
    )
    for name, run in designs.items():
        if args.design and name not in args.design:
            continue
        rng = np.random.default_rng(args.seed)
        t0 = time.perf_counter()
        hits, seeds = 0, []
        for i in range(args.studies):
            ok, n = run(rng, args.seed + i)
            hits += ok
            seeds.append(n)
        rate = hits / args.studies
        se = np.sqrt(rate * (1 - rate) / args.studies)
        print(
            f"{name:>15}: decided {rate:6.1%} (+- {1.96 * se:.1%}), seeds per group median {np.median(seeds):.0f}, "
            f"mean {np.mean(seeds):.1f}, max {np.max(seeds)}  [{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
