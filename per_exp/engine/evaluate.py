"""Greedy evaluation episodes, on their own env and their own start-state stream.

An evaluation must not change what the run learns: it steps a separate
VecEnv, draws its start states from a generator of its own (seeded from the
run's seed and a fixed tag, so never one of the training streams), and acts
through a greedy policy that draws no random number. So a run's training
series are the same with evaluation on or off (a test checks it), and an
evaluation is a pure function of the network's weights and that stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from per_exp.engine.vecenv import VecEnv

EVAL_TAG = 0x6576616C  # "eval": the second word of the eval stream's entropy, beside the run's seed


def eval_rng(seed: int) -> np.random.Generator:
    """The run's evaluation stream: independent of every stream spawned from `SeedSequence(seed)`."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), EVAL_TAG])))


def due(episode: int, every: int, last: bool) -> bool:
    """Whether an evaluation follows training episode `episode` (0-based): every N-th, and after the last."""
    return every > 0 and ((episode + 1) % every == 0 or last)


@dataclass(frozen=True)
class EvalResult:
    mean_return: float  # the env's own (unshaped) return
    mean_length: float


def evaluate(
    greedy: Callable[[np.ndarray], int], env: VecEnv, rng: np.random.Generator, episodes: int, max_steps: int
) -> EvalResult:
    """`episodes` greedy episodes one after another in slot 0 of `env`, each cut at `max_steps`."""
    active = np.zeros(env.num_slots, dtype=np.bool_)
    active[0] = True
    actions = np.zeros(env.num_slots, dtype=np.int64)
    returns, lengths = [], []
    for _ in range(episodes):
        env.reset(0, rng)
        ret, n = 0.0, 0
        while n < max_steps:
            actions[0] = greedy(env.obs[0])
            env.step(actions, active)
            ret += float(env.reward[0])
            n += 1
            if env.terminated[0]:
                break
        returns.append(ret)
        lengths.append(n)
    return EvalResult(float(np.mean(returns)), float(np.mean(lengths)))
