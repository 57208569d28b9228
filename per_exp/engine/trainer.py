"""The training engine: K runs advance in lockstep over a leading slot axis, refilled from a queue.

One loop, written once over slots: every step acts for all active slots in
one call, steps the K environments as arrays, stores K transitions, draws
and learns for every slot that trains this step (one call each), and only
the rare per-run events (an episode ending, a run finishing, a checkpoint)
go through Python one slot at a time. K = 1 is the same code path: a single
job is a group of one.

Continuous batching: the engine holds a queue of runs; when a run solves,
reaches its cap or fails, its slot is refilled from the queue within the
same step, so no slot idles while work waits.

Per-run identity: a run's arithmetic touches only its own rows (parameters,
replay, streams, env slot), seeded from its own config, so its per-episode
series is the same alone, in any group, and whenever it entered
(tests/test_engine_identity.py).

The engine knows runs only as ``RunSpec``s: a typed config, a label, an
optional state to resume from, and handlers. It has no knowledge of Hydra
or MLflow (``per_exp.job`` wires those).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numba import njit

from per_exp import contract as C
from per_exp import solve
from per_exp.config import Config
from per_exp.engine import evaluate
from per_exp.engine.agent import SlotAgent
from per_exp.engine.replay import Replay

log = logging.getLogger(__name__)

STATE_FORMAT = "per_exp.run_state/2"  # version 1 was the single-run Trainer's state (torch-pickled objects)
# the first five are shared by the slots stepping together; refresh and eval are charged to their run alone
PHASES = ("act", "env", "sample", "update", "priority", "refresh", "eval")

# Keys that may differ between the runs of one group: the seed, scalar
# hyperparameters that live in per-slot arrays, and per-run bookkeeping.
# Everything else (shapes, env, sampler and its switches, schedules' kinds)
# is shared by a group.
PER_RUN_KEYS = (
    "seed",
    "lr",
    "gamma",
    "max_episodes",
    "warmup_episodes",
    "learning_starts",
    "train_every",
    "fail_at_episode",
    "log_every_episodes",
    "rerun",
    "sampler.alpha",
    "sampler.eps",
    "sampler.beta0",
    "sampler.beta_horizon",
    "epsilon.scale",
    "epsilon.start",
    "epsilon.end",
    "epsilon.decay_steps",
    "target_sync.every",
    "target_sync.copy_at_start",
    "solve",  # the solve rule and evaluation are per-run Python, between a run's episodes
    "eval",
    "tracking",
    "checkpoint",
    "group",
)


def group_key(cfg: Config) -> tuple:
    """What runs sharing a group must agree on: the config without PER_RUN_KEYS."""

    def walk(obj: Any, prefix: str) -> tuple:
        out = []
        for f in fields(obj):
            key = prefix + f.name
            if key in PER_RUN_KEYS:
                continue
            v = getattr(obj, f.name)
            out.append((key, walk(v, key + ".") if hasattr(v, "__dataclass_fields__") else v))
        return tuple(out)

    return walk(cfg, "")


class Stopped(KeyboardInterrupt):
    """A run stopped between two of its episodes because its ``should_stop`` asked; its checkpoint is written.

    A KeyboardInterrupt, like Ctrl-C: the job ends the run KILLED (resumable), not FAILED.
    """


class StateMismatch(ValueError):
    """A state given to resume from does not fit this run (another format, or arrays of other shapes).

    Raised when the run enters its slot, before its first episode: the caller may start it over.
    """


@dataclass
class Summary:
    solved: bool = False
    solved_episode: int | None = None
    episodes: int = 0
    total_env_steps: int = 0
    updates: int = 0
    wall_seconds: float = 0.0
    episode_lengths: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def sps(self) -> float:
        return self.total_env_steps / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass
class RunSpec:
    """One run for the engine: its config, a label for logs, a state to resume from, and what to call.

    on_episode(episode, metrics): after every episode (today's metric keys).
    on_checkpoint(state): every cfg.checkpoint.every_episodes episodes, with the
        run's state (plain arrays, ints, floats, lists, dicts; independent of the
        group) from which it can resume in any group, or alone.
    on_end(summary, run): when it solved or reached its cap; ``run`` gives the
        final state and the online network (``RunView``).
    on_error(exc): when it raised; it ends alone, the others continue.
        A run stopped on request ends here too, with ``Stopped``.
    should_stop(): asked after each of its episodes (a stop signal arrived, see
        per_exp.signals): the run checkpoints there and ends with ``Stopped``;
        a queued run whose should_stop() is true never starts.
    step_budget: end the run at the first episode end at or past this many env
        steps, solved or not (benchmarks: every slot busy for a fixed amount of work).
    on_enter(): asked when the run is about to take a slot, after should_stop();
        False leaves it out (no Result: its owner found nothing to do, e.g. it
        finished meanwhile or another process holds it). It may set ``state``.
        A grouped sweep opens the run's MLflow run and claim here, so a queued
        run holds nothing while it waits.
    on_state_mismatch(exc): ``state`` does not fit this code (StateMismatch);
        when given, it is called and the run starts over from scratch in the
        same slot; without it the run ends with the error.
    """

    cfg: Config
    label: str = ""
    state: dict[str, Any] | None = None
    on_episode: Callable[[int, dict[str, float]], None] | None = None
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None
    on_end: Callable[[Summary, RunView], None] | None = None
    on_error: Callable[[BaseException], None] | None = None
    should_stop: Callable[[], bool] | None = None
    step_budget: int | None = None
    on_enter: Callable[[], bool] | None = None
    on_state_mismatch: Callable[[StateMismatch], None] | None = None


@dataclass
class Result:
    spec: RunSpec
    summary: Summary | None = None
    error: BaseException | None = None


class RunView:
    """A finished run's slot, readable until the slot is refilled (inside on_end)."""

    def __init__(self, engine: Engine, k: int):
        self._engine, self._k = engine, k

    def state_dict(self) -> dict[str, Any]:
        return self._engine._state_dict(self._k)

    def online_state_dict(self) -> dict[str, Any]:
        return self._engine.agent.online_state_dict(self._k)


class _Run:
    """Python-side bookkeeping of the run in one slot."""

    def __init__(self, spec: RunSpec, k: int):
        self.spec, self.cfg, self.k = spec, spec.cfg, k
        self.env_rng: np.random.Generator | None = None
        self.lengths: list[int] = []
        self.returns: list[float] = []  # the mean-return rule's input (a resume rebuilds the rule's state)
        self.recent: deque[int] = deque(maxlen=10)
        self.consecutive = 0
        self.rule = solve.rule_from(self.cfg.solve)
        self.solve_state = solve.SolveState()
        # evaluation episodes: their own start-state stream, never one of the training streams
        self.eval_rng = evaluate.eval_rng(self.cfg.seed)
        self.wall_before = 0.0
        self.timings_before = dict.fromkeys(PHASES, 0.0)
        self.t_enter = 0.0
        self.t_episode = 0.0
        self.share_at_enter = np.zeros(len(PHASES))


@njit(cache=True, nogil=True)
def _after_env_step(
    active,
    env_reward,
    terminated,
    length,
    total_steps,
    ep_return,
    max_steps,
    env_reward_scheme,
    success_length,
    truncation_as_terminal,
    size,
    capacity,
    learn_from,
    train_every,
    sync_steps,
    sync_every,
    reward_out,
    stored_done,
    done,
    learn,
    sync,
):  # pragma: no cover - compiled
    """Per-slot bookkeeping of one env step: time limit, shaped reward, what to store, who learns or syncs.

    The seed's reward: 0 mid-episode, -1 when the episode ends before
    success_length steps, +1 at or after; "env" keeps gymnasium's reward. A
    time-limit end is stored as terminal only with truncation_as_terminal.
    ``size`` is each slot's stored count before this step's transition.
    Returns (number of slots learning, syncing, ending an episode).
    """
    n_learn = 0
    n_sync = 0
    n_done = 0
    for k in range(active.shape[0]):
        learn[k] = False
        sync[k] = False
        done[k] = False
        if not active[k]:
            continue
        length[k] += 1
        total_steps[k] += 1
        term = terminated[k]
        trunc = length[k] >= max_steps
        d = term or trunc
        if env_reward_scheme:
            r = env_reward[k]
        elif not d:
            r = 0.0
        else:
            r = 1.0 if length[k] >= success_length else -1.0
        reward_out[k] = r
        ep_return[k] += r
        stored_done[k] = 1.0 if (term or (trunc and truncation_as_terminal)) else 0.0
        done[k] = d
        n_done += d
        stored = min(size[k] + 1, capacity)  # after this step's transition is stored
        if stored >= learn_from[k] and total_steps[k] % train_every[k] == 0:
            learn[k] = True
            n_learn += 1
        if sync_steps and total_steps[k] % sync_every[k] == 0:
            sync[k] = True
            n_sync += 1
    return n_learn, n_sync, n_done


@njit(cache=True, nogil=True)
def _sum_f32(x):  # pragma: no cover - compiled
    """NumPy's pairwise float32 sum (what np.mean of a float32 array accumulates), for len(x) <= 128."""
    n = x.shape[0]
    if n < 8:
        s = np.float32(0.0)
        for i in range(n):
            s += x[i]
        return s
    r = np.empty(8, np.float32)
    for j in range(8):
        r[j] = x[j]
    m = n - n % 8
    for i in range(8, m, 8):
        for j in range(8):
            r[j] += x[i + j]
    s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for i in range(m, n):
        s += x[i]
    return s


def mean_f64(x: np.ndarray, n: int) -> float:
    """np.mean(x[:n]) bit for bit: the same add.reduce (pairwise) and true division, without np.mean's overhead.

    (Not a numba twin: a recursive numba function crashes when loaded from numba's cache.)
    """
    return float(np.add.reduce(x[:n])) / n


@njit(cache=True, nogil=True)
def _after_update(mask, loss, td, updates, n_learned, losses, td_means, scratch):  # pragma: no cover - compiled
    """Count the update and keep its loss and mean |TD error| for the episode's metrics."""
    b = td.shape[1]
    for k in range(mask.shape[0]):
        if mask[k]:
            updates[k] += 1
            for i in range(b):
                scratch[i] = abs(td[k, i])
            j = n_learned[k]
            if j < losses.shape[1]:
                losses[k, j] = loss[k]
                td_means[k, j] = _sum_f32(scratch) / np.float32(b) if b <= 128 else np.mean(scratch)
            n_learned[k] = j + 1


class Engine:
    """Trains every run of ``runs`` (one group: see ``group_key``) on ``slots`` slots."""

    def __init__(self, runs: Iterable[RunSpec], slots: int = 1, threads: int = 1, report_errors: bool = True):
        # report_errors=False: the caller takes each run's error from its Result and says it (run_one)
        self.report_errors = report_errors
        self.queue: deque[RunSpec] = deque(runs)
        if not self.queue:
            raise ValueError("the engine needs at least one run")
        first = self.queue[0].cfg
        key = group_key(first)
        for spec in self.queue:
            if group_key(spec.cfg) != key:
                diff = [a[0] for a, b in zip(key, group_key(spec.cfg)) if a != b]
                raise ValueError(f"run {spec.label or spec.cfg.seed} cannot share a group: it differs in {diff}")
        self.cfg = first
        k_slots = max(1, min(int(slots), len(self.queue)))
        self.num_slots = k_slots
        self.threads = max(1, int(threads))
        self.results: list[Result] = []

        import torch

        torch.set_num_threads(first.torch_threads)
        from per_exp.engine.vecenv import make_vecenv

        self.env = make_vecenv(_env_id(first), k_slots)
        obs_dim, n_actions = self.env.obs_dim, self.env.n_actions
        self.agent = SlotAgent(
            k_slots,
            first.network,
            obs_dim,
            n_actions,
            first.batch_size,
            backend=first.update_backend,
            threads=self.threads,
        )
        self.replay = Replay(first, k_slots, obs_dim)

        i8, f8 = np.int64, np.float64
        self.active = np.zeros(k_slots, bool)
        self.episode = np.zeros(k_slots, i8)
        self.total_steps = np.zeros(k_slots, i8)
        self.updates = np.zeros(k_slots, i8)
        self.length = np.zeros(k_slots, i8)
        self.ep_return = np.zeros(k_slots, f8)
        self.epsilon = np.zeros(k_slots, f8)
        # each update's loss and mean |TD error| in the running episode (at most one update per step)
        self.ep_losses = np.zeros((k_slots, first.env.max_steps), f8)
        self.ep_td_means = np.zeros((k_slots, first.env.max_steps), f8)
        self.n_learned = np.zeros(k_slots, i8)
        self._abs_td = np.zeros(first.batch_size, np.float32)
        self.learn_from = np.zeros(k_slots, i8)
        self.train_every = np.ones(k_slots, i8)
        self.sync_every = np.ones(k_slots, i8)
        self.eps_start = np.zeros(k_slots, f8)
        self.eps_end = np.zeros(k_slots, f8)
        self.eps_decay = np.ones(k_slots, f8)
        # step scratch
        self.actions = np.zeros(k_slots, i8)
        self.prev_obs = np.zeros((k_slots, obs_dim), np.float32)
        self.reward = np.zeros(k_slots, np.float32)
        self.stored_done = np.zeros(k_slots, np.float32)
        self.done = np.zeros(k_slots, bool)
        self.learn = np.zeros(k_slots, bool)
        self.sync = np.zeros(k_slots, bool)
        b = first.batch_size
        self.idx = np.zeros((k_slots, b), i8)
        self.w = np.ones((k_slots, b), np.float32)
        self.td = np.zeros((k_slots, b), np.float32)
        self.loss = np.zeros(k_slots, f8)
        # time spent per phase, shared equally by the slots active at the time (a clock metric)
        self.share = np.zeros(len(PHASES))
        self.runs: list[_Run | None] = [None] * k_slots
        self._linear_eps = first.epsilon.schedule == "linear_steps"
        self._sync_steps = first.target_sync.unit == "steps"
        self._env_reward = first.env.reward == "env"
        self._eval_env: Any = None  # one slot of the env, built at the first evaluation

    # ------------------------------------------------------------------ run lifecycle
    def run(self) -> list[Result]:
        """Train until the queue is empty and every slot has finished; one Result per run, in finishing order."""
        import numba
        import scipy.linalg.cython_blas  # noqa: F401  the BLAS the kernels call: load it before limiting it
        from threadpoolctl import threadpool_limits

        prev_threads = numba.get_num_threads()
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
        try:
            # BLAS inside the kernels runs on the calling thread; parallelism is over slots
            with threadpool_limits(1):
                for k in range(self.num_slots):
                    self._fill(k)
                while self.active.any():
                    self._step()
        finally:
            numba.set_num_threads(prev_threads)
        return self.results

    def _fill(self, k: int) -> None:
        """Start the next queued run in slot k (runs that end at once are finished and the next tried)."""
        while self.queue:
            spec = self.queue.popleft()
            if spec.should_stop is not None and spec.should_stop():
                # not started: its checkpoint (if any) is untouched, and it resumes from there
                self._fail(k, spec, Stopped("stopped before it started, on request"))
                continue
            try:
                if spec.on_enter is not None and not spec.on_enter():
                    continue
                if self._enter_or_start_over(k, spec):
                    return
            except Exception as e:
                self._fail(k, spec, e)
        self.active[k] = False
        self.runs[k] = None

    def _enter_or_start_over(self, k: int, spec: RunSpec) -> bool:
        try:
            return self._enter(k, spec)
        except StateMismatch as e:
            if spec.on_state_mismatch is None or spec.state is None:
                raise
            spec.on_state_mismatch(e)
            spec.state = None
            return self._enter(k, spec)

    def _enter(self, k: int, spec: RunSpec) -> bool:
        """Put a run in slot k; False if it has nothing left to do (and has been finished)."""
        from gymnasium.utils import seeding

        cfg = spec.cfg
        run = _Run(spec, k)
        self.runs[k] = run
        self.active[k] = False
        self.learn_from[k] = max(cfg.learning_starts, cfg.batch_size)
        self.train_every[k] = cfg.train_every
        self.sync_every[k] = cfg.target_sync.every
        self.eps_start[k], self.eps_end[k] = cfg.epsilon.start, cfg.epsilon.end
        self.eps_decay[k] = float(cfg.epsilon.decay_steps)
        self.n_learned[k] = 0
        agent_ss = np.random.SeedSequence(cfg.seed).spawn(3)[0]
        if spec.state is None:
            self.agent.init_slot(k, cfg.seed, cfg.lr, cfg.gamma, cfg.target_sync.copy_at_start, agent_ss)
            self.replay.start(k, cfg)
            run.env_rng = seeding.np_random(cfg.seed)[0]
            self.episode[k] = self.total_steps[k] = self.updates[k] = 0
        else:
            try:
                self._load(k, run, spec.state)
            except Exception as e:
                raise StateMismatch(f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from e
        run.t_enter = time.perf_counter()
        run.share_at_enter = self.share.copy()
        self.replay.sampler.stats(k)  # drop counters a previous occupant left
        if self.episode[k] >= cfg.max_episodes:
            self._finish(k)
            return False
        self._begin_episode(k)
        return True

    def _begin_episode(self, k: int) -> None:
        run = self.runs[k]
        assert run is not None and run.env_rng is not None
        cfg = run.cfg
        if self.episode[k] == cfg.fail_at_episode:
            raise RuntimeError(f"fail_at_episode={cfg.fail_at_episode}: failing on purpose (test hook)")
        self.env.reset(k, run.env_rng)
        self.length[k] = 0
        self.ep_return[k] = 0.0
        if not self._linear_eps:
            self.epsilon[k] = cfg.epsilon.scale / (self.episode[k] + 1)
        self.n_learned[k] = 0
        run.t_episode = time.perf_counter()
        self.active[k] = True

    # ------------------------------------------------------------------ one lockstep step
    def _step(self) -> None:
        active = self.active
        n_active = int(np.count_nonzero(active))
        t0 = time.perf_counter()
        if self._linear_eps:  # epsilon_at(cfg, episode, total_steps) before the step, per slot
            frac = np.minimum(self.total_steps / self.eps_decay, 1.0)
            np.add(self.eps_start, frac * (self.eps_end - self.eps_start), out=self.epsilon)
        self.agent.act(self.env.obs, self.epsilon, active, self.actions)
        np.copyto(self.prev_obs, self.env.obs)
        t1 = time.perf_counter()
        self.env.step(self.actions, active)
        cfg = self.cfg
        n_learn, n_sync, n_done = _after_env_step(
            active,
            self.env.reward,
            self.env.terminated,
            self.length,
            self.total_steps,
            self.ep_return,
            cfg.env.max_steps,
            self._env_reward,
            cfg.env.success_length,
            cfg.env.truncation_as_terminal,
            self.replay.storage.size,
            self.replay.storage.capacity,
            self.learn_from,
            self.train_every,
            self._sync_steps,
            self.sync_every,
            self.reward,
            self.stored_done,
            self.done,
            self.learn,
            self.sync,
        )
        self.replay.add(self.prev_obs, self.actions, self.reward, self.env.obs, self.stored_done, active)
        t3 = time.perf_counter()
        share = self.share
        share[0] += (t1 - t0) / n_active
        share[1] += (t3 - t1) / n_active
        if n_learn:
            learn = self.learn
            self.replay.sample(learn, self.episode, self.updates, self.idx, self.w)
            t4 = time.perf_counter()
            self.agent.update(self.replay.storage, self.idx, self.w, learn, self.td, self.loss)
            t5 = time.perf_counter()
            bad = self.replay.learned(self.idx, self.td, learn)
            _after_update(
                learn, self.loss, self.td, self.updates, self.n_learned, self.ep_losses, self.ep_td_means, self._abs_td
            )
            t6 = time.perf_counter()
            share[2] += (t4 - t3) / n_active
            share[3] += (t5 - t4) / n_active
            share[4] += (t6 - t5) / n_active
            if bad is not None and (bad >= 0).any():
                for k in np.flatnonzero(bad >= 0):
                    self._bad_td(int(k), int(bad[k]))
        if n_sync:
            for k in np.flatnonzero(self.sync & self.active):
                self.agent.sync_target(int(k))
        if n_done:
            for k in np.flatnonzero(self.done & self.active):
                self._episode_end(int(k))

    def _bad_td(self, k: int, i: int) -> None:
        run = self.runs[k]
        assert run is not None
        slot = int(self.idx[k, i])
        err = ValueError(
            f"TD error at index {i} (slot {slot}) is {float(self.td[k, i])!r}; "
            "priorities must be finite and >= 0 (nothing was written)"
        )
        self._fail(k, run.spec, err)
        self._fill(k)

    # ------------------------------------------------------------------ per-run events
    def _episode_end(self, k: int) -> None:
        run = self.runs[k]
        assert run is not None
        cfg = run.cfg
        try:
            t0 = time.perf_counter()
            self.replay.end_episode(k, lambda kk: self.agent.td_errors(kk, self.replay.storage))
            self._charge(k, 5, time.perf_counter() - t0)
            if cfg.target_sync.unit == "episodes" and self.episode[k] % cfg.target_sync.every == 0:
                self.agent.sync_target(k)
            ep = int(self.episode[k])
            length = int(self.length[k])
            wall = time.perf_counter() - run.t_episode
            beta0, horizon = cfg.sampler.beta0, cfg.sampler.beta_horizon
            m = {
                C.EPISODE_STEPS: float(length),
                C.EPISODE_RETURN: float(self.ep_return[k]),
                C.EPISODE_EPSILON: float(self.epsilon[k]),
                C.TRAIN_BETA: beta0 + min(max(int(self.updates[k]), 0) / float(horizon), 1.0) * (1.0 - beta0),
                C.TRAIN_UPDATES: float(self.updates[k]),
                C.PERF_SPS: length / wall if wall > 0 else 0.0,
            }
            n = int(self.n_learned[k])
            if n:  # np.mean over the episode's updates, as the single-run trainer computed it
                m[C.TRAIN_LOSS] = float(mean_f64(self.ep_losses[k], n))
                m[C.TRAIN_TD_ABS_MEAN] = float(mean_f64(self.ep_td_means[k], n))
            m.update(self.replay.stats(k))
            run.lengths.append(length)
            run.returns.append(m[C.EPISODE_RETURN])
            run.recent.append(length)
            run.solve_state = solve.advance(run.rule, run.solve_state, length, m[C.EPISODE_RETURN])
            run.consecutive = run.solve_state.streak
            solved = run.solve_state.solved
            budget = run.spec.step_budget
            last = (solved and budget is None) or ep + 1 >= cfg.max_episodes
            last = last or (budget is not None and self.total_steps[k] >= budget)
            if evaluate.due(ep, cfg.eval.every_episodes, last):
                m.update(self._evaluate(k))
            if run.spec.on_episode is not None:
                run.spec.on_episode(ep, m)
            if ep % cfg.log_every_episodes == 0 or solved:
                log.info(
                    "%sep %4d | len %3d | mean10 %6.1f | eps %.3f | loss %s | %5.0f steps/s",
                    f"[{run.spec.label}] " if run.spec.label else "",
                    ep,
                    length,
                    float(np.mean(run.recent)),
                    m[C.EPISODE_EPSILON],
                    f"{m[C.TRAIN_LOSS]:.4f}" if C.TRAIN_LOSS in m else "  -   ",
                    self.total_steps[k] / max(time.perf_counter() - run.t_enter, 1e-9),
                )
            self.episode[k] += 1
            if budget is not None:
                solved = False
            if solved:
                log.info("%ssolved at episode %d", f"[{run.spec.label}] " if run.spec.label else "", ep)
            if solved or self.episode[k] >= cfg.max_episodes or (budget is not None and self.total_steps[k] >= budget):
                self._finish(k, solved_episode=ep if solved else None)
                self._fill(k)
                return
            every = cfg.checkpoint.every_episodes
            if run.spec.should_stop is not None and run.spec.should_stop():
                # checkpoints off (every == 0) stay off: the run then resumes from episode 0, in place
                if run.spec.on_checkpoint is not None and every:
                    run.spec.on_checkpoint(self._state_dict(k))
                self._fail(k, run.spec, Stopped(f"stopped before episode {int(self.episode[k])} on request"))
                self._fill(k)
                return
            if run.spec.on_checkpoint is not None and every and self.episode[k] % every == 0:
                run.spec.on_checkpoint(self._state_dict(k))
            self._begin_episode(k)
        except Exception as e:
            self._fail(k, run.spec, e)
            self._fill(k)

    def _evaluate(self, k: int) -> dict[str, float]:
        """Greedy episodes of slot k's run on the evaluation env; training state is not touched."""
        run = self.runs[k]
        assert run is not None
        if self._eval_env is None:
            from per_exp.engine.vecenv import make_vecenv

            self._eval_env = make_vecenv(_env_id(self.cfg), 1)
        t0 = time.perf_counter()
        r = evaluate.evaluate(
            lambda obs: self.agent.greedy(k, obs),
            self._eval_env,
            run.eval_rng,
            run.cfg.eval.episodes,
            run.cfg.env.max_steps,
        )
        self._charge(k, PHASES.index("eval"), time.perf_counter() - t0)
        return {C.EVAL_RETURN: r.mean_return, C.EVAL_LENGTH: r.mean_length}

    def _charge(self, k: int, phase: int, dt: float) -> None:
        run = self.runs[k]
        if run is not None:
            run.timings_before[PHASES[phase]] += dt

    def _timings(self, k: int) -> dict[str, float]:
        run = self.runs[k]
        assert run is not None
        shares = self.share - run.share_at_enter
        return {p: run.timings_before[p] + (float(shares[i]) if i < 5 else 0.0) for i, p in enumerate(PHASES)}

    def _summary(self, k: int, solved_episode: int | None) -> Summary:
        run = self.runs[k]
        assert run is not None
        return Summary(
            solved=solved_episode is not None,
            solved_episode=solved_episode,
            episodes=int(self.episode[k]),
            total_env_steps=int(self.total_steps[k]),
            updates=int(self.updates[k]),
            wall_seconds=run.wall_before + time.perf_counter() - run.t_enter,
            episode_lengths=run.lengths,
            timings=self._timings(k),
        )

    def _finish(self, k: int, solved_episode: int | None = None) -> None:
        run = self.runs[k]
        assert run is not None
        self.active[k] = False
        s = self._summary(k, solved_episode)
        try:
            if run.spec.on_end is not None:
                run.spec.on_end(s, RunView(self, k))
        except Exception as e:
            self._fail(k, run.spec, e)
            return
        self.results.append(Result(run.spec, summary=s))

    def _fail(self, k: int, spec: RunSpec, e: BaseException) -> None:
        self.active[k] = False
        if not self.report_errors:
            pass
        elif isinstance(e, Stopped):
            log.info("run %s: %s", spec.label or spec.cfg.seed, e)
        else:
            log.error("run %s failed: %s: %s", spec.label or spec.cfg.seed, type(e).__name__, e)
        self.results.append(Result(spec, error=e))
        if spec.on_error is not None:
            try:
                spec.on_error(e)
            except Exception as e2:  # a failing error handler must not take the group down
                log.error("run %s: on_error raised %s: %s", spec.label or spec.cfg.seed, type(e2).__name__, e2)
        run = self.runs[k]
        if run is not None and run.spec is spec:
            self.runs[k] = None

    # ------------------------------------------------------------------ state
    def _state_dict(self, k: int) -> dict[str, Any]:
        """Run k's state between two of its episodes: plain data, the same in any group."""
        run = self.runs[k]
        assert run is not None and run.env_rng is not None
        elapsed = time.perf_counter() - run.t_enter
        return {
            "format": STATE_FORMAT,
            "agent": self.agent.state_dict(k),
            "replay": self.replay.state_dict(k),
            "env_rng": run.env_rng.bit_generator.state,
            "counters": {
                "episode": int(self.episode[k]),
                "total_steps": int(self.total_steps[k]),
                "updates": int(self.updates[k]),
                "consecutive": run.consecutive,
            },
            "episode_lengths": list(run.lengths),
            "episode_returns": list(run.returns),
            "eval_rng": run.eval_rng.bit_generator.state,
            "timings": self._timings(k),
            "wall_seconds": run.wall_before + elapsed,
        }

    def _load(self, k: int, run: _Run, s: dict[str, Any]) -> None:
        if s.get("format") != STATE_FORMAT:
            raise ValueError(f"run state format {s.get('format')!r} is not {STATE_FORMAT!r}")
        cfg = run.cfg
        self.agent.load_state_dict(k, s["agent"], cfg.lr, cfg.gamma)
        self.replay.load_state_dict(k, s["replay"], cfg)
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = s["env_rng"]
        run.env_rng = rng
        c = s["counters"]
        self.episode[k], self.total_steps[k] = int(c["episode"]), int(c["total_steps"])
        self.updates[k] = int(c["updates"])
        run.consecutive = int(c["consecutive"])
        run.lengths = [int(x) for x in s["episode_lengths"]]
        # states written before the mean-return rule hold no returns; the length rule never reads them
        run.returns = [float(x) for x in s.get("episode_returns", [0.0] * len(run.lengths))]
        run.solve_state = solve.replay(run.rule, run.lengths, run.returns)
        if "eval_rng" in s:
            run.eval_rng.bit_generator.state = s["eval_rng"]
        run.recent.extend(run.lengths[-10:])
        run.timings_before = {p: float(s["timings"].get(p, 0.0)) for p in PHASES}
        run.wall_before = float(s["wall_seconds"])


def _env_id(cfg: Config) -> str:
    # CartPole-v0 and -v1 share dynamics and differ only in the time limit, which the engine applies
    return cfg.env.id


def run_one(
    cfg: Config,
    on_episode: Callable[[int, dict[str, float]], None] | None = None,
    label: str = "",
    state: dict[str, Any] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    on_end: Callable[[Summary, RunView], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_state_mismatch: Callable[[StateMismatch], None] | None = None,
) -> Summary:
    """A single run through the engine (a group of one); re-raises its error (``Stopped`` on a stop request)."""
    spec = RunSpec(
        cfg,
        label,
        state,
        on_episode=on_episode,
        on_checkpoint=on_checkpoint,
        on_end=on_end,
        should_stop=should_stop,
        on_state_mismatch=on_state_mismatch,
    )
    res = Engine([spec], slots=1, report_errors=False).run()[0]
    if res.error is not None:
        raise res.error
    assert res.summary is not None
    return res.summary


def run_many(specs: Sequence[RunSpec], slots: int, threads: int = 1) -> list[Result]:
    """Every spec, grouped by group_key (in first-seen order), each group on up to ``slots`` slots."""
    groups: dict[tuple, list[RunSpec]] = {}
    for s in specs:
        groups.setdefault(group_key(s.cfg), []).append(s)
    out: list[Result] = []
    for members in groups.values():
        out += Engine(members, slots=slots, threads=threads).run()
    return out
