"""The training loop: env + agent + replay + sampler, with no knowledge of MLflow.

Metrics leave through a `sink` callable (episode, dict) so the loop stays
testable without a tracking store; `per_exp.job` plugs the MLflow logger in.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from per_exp import contract as C
from per_exp.config import Config
from per_exp.engine.agent import DDQNAgent
from per_exp.engine.envs import env_dims, make_env, shaped_reward, stored_terminal
from per_exp.engine.priorities import beta_at
from per_exp.engine.replay import ReplayBuffer
from per_exp.engine.samplers import UniformSampler, make_sampler

log = logging.getLogger(__name__)

Sink = Callable[[int, dict], None]


def seed_everything(seed: int) -> None:
    """One seed feeds Python, NumPy's legacy global RNG and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epsilon_at(cfg: Config, episode: int, step: int) -> float:
    e = cfg.epsilon
    if e.schedule == "inverse_episode":
        return e.scale / (episode + 1)
    frac = min(step / e.decay_steps, 1.0)
    return e.start + frac * (e.end - e.start)


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


class Stopped(KeyboardInterrupt):
    """Training stopped between two episodes because `should_stop` asked; the checkpoint is written.

    A KeyboardInterrupt, like Ctrl-C: the job ends its run KILLED (resumable), not FAILED.
    """


class Trainer:
    def __init__(
        self,
        cfg: Config,
        sink: Sink | None = None,
        run_label: str = "",
        on_checkpoint: Callable[[Trainer], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.cfg = cfg
        self.sink = sink
        # called between episodes every cfg.checkpoint.every_episodes; per_exp.job saves state_dict() there
        self.on_checkpoint = on_checkpoint
        # asked between episodes (a stop signal arrived, see per_exp.signals): checkpoint, then raise Stopped
        self.should_stop = should_stop
        self.label = run_label
        torch.set_num_threads(cfg.torch_threads)
        seed_everything(cfg.seed)
        # Independent streams from one seed, so switching a sampler does not
        # change the agent's exploration draws.
        ss = np.random.SeedSequence(cfg.seed)
        agent_ss, sampler_ss, uniform_ss = ss.spawn(3)
        self.env = make_env(cfg.env)
        self.env.action_space.seed(cfg.seed)
        obs_dim, n_actions = env_dims(self.env)
        self.agent = DDQNAgent(
            cfg.network,
            obs_dim,
            n_actions,
            cfg.lr,
            cfg.gamma,
            cfg.target_sync.copy_at_start,
            np.random.default_rng(agent_ss),
            backend=cfg.update_backend,
        )
        self.buffer = ReplayBuffer(cfg.capacity, obs_dim)
        self.sampler = make_sampler(cfg.sampler, cfg.capacity, int(sampler_ss.generate_state(1)[0]))
        self.warmup_sampler = UniformSampler(cfg.capacity, int(uniform_ss.generate_state(1)[0]))
        self.prioritized = cfg.sampler.name != "uniform"
        # counters (the loop's whole state, besides the objects above)
        self.episode = 0
        self.total_steps = 0
        self.updates = 0
        self.consecutive = 0
        self.timings = {k: 0.0 for k in ("act", "env", "sample", "update", "priority", "refresh")}
        self.episode_lengths: list[int] = []
        self.wall_seconds_before = 0.0  # wall time spent before a resume
        self._run_started: float | None = None

    # ------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything `run()` needs to continue, between episodes, exactly as if never stopped."""
        from per_exp.checkpoint import global_rng_state

        elapsed = time.perf_counter() - self._run_started if self._run_started is not None else 0.0
        return {
            "agent": self.agent.state_dict(),
            "buffer": self.buffer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "warmup_sampler": self.warmup_sampler.state_dict(),
            "rng": global_rng_state(),
            # the env draws each reset's start state from its own generator
            "env_rng": self.env.unwrapped.np_random.bit_generator.state,
            "action_space_rng": self.env.action_space.np_random.bit_generator.state,
            "counters": {
                "episode": self.episode,
                "total_steps": self.total_steps,
                "updates": self.updates,
                "consecutive": self.consecutive,
            },
            "episode_lengths": list(self.episode_lengths),
            "timings": dict(self.timings),
            "wall_seconds": self.wall_seconds_before + elapsed,
        }

    def load_state_dict(self, s: dict) -> None:
        from per_exp.checkpoint import set_global_rng_state

        self.agent.load_state_dict(s["agent"])
        self.buffer.load_state_dict(s["buffer"])
        self.sampler.load_state_dict(s["sampler"])
        self.warmup_sampler.load_state_dict(s["warmup_sampler"])
        set_global_rng_state(s["rng"])
        self.env.unwrapped.np_random.bit_generator.state = s["env_rng"]
        self.env.action_space.np_random.bit_generator.state = s["action_space_rng"]
        c = s["counters"]
        self.episode, self.total_steps = int(c["episode"]), int(c["total_steps"])
        self.updates, self.consecutive = int(c["updates"]), int(c["consecutive"])
        self.episode_lengths = list(s["episode_lengths"])
        self.timings = dict(s["timings"])
        self.wall_seconds_before = float(s["wall_seconds"])

    # ------------------------------------------------------------------
    def _learn(self) -> tuple[float, float]:
        cfg, t = self.cfg, self.timings
        # a prioritized run replays uniformly during its warm-up episodes (the seed's first 30)
        in_warmup = self.prioritized and self.episode < cfg.warmup_episodes
        beta = beta_at(self.updates, cfg.sampler.beta0, cfg.sampler.beta_horizon)
        t0 = time.perf_counter()
        sampler = self.warmup_sampler if in_warmup else self.sampler
        sb = sampler.sample(cfg.batch_size, self.buffer.size, beta)
        batch = self.buffer.gather(sb.indices)
        t1 = time.perf_counter()
        loss, td = self.agent.update(batch, sb.weights)
        t2 = time.perf_counter()
        if self.prioritized and cfg.sampler.refresh == "sampled":
            self.sampler.update(sb.indices, td)
        t3 = time.perf_counter()
        t["sample"] += t1 - t0
        t["update"] += t2 - t1
        t["priority"] += t3 - t2
        self.updates += 1
        return loss, float(np.abs(td).mean())

    def _end_of_episode(self) -> None:
        cfg = self.cfg
        if self.prioritized and cfg.sampler.refresh == "full_episode" and self.buffer.size:
            t0 = time.perf_counter()
            # The seed recomputes every stored TD error with the current networks.
            td_all = self.agent.td_errors(self.buffer.all())
            self.sampler.update(np.arange(self.buffer.size), td_all)
            self.timings["refresh"] += time.perf_counter() - t0
        if cfg.target_sync.unit == "episodes" and self.episode % cfg.target_sync.every == 0:
            self.agent.sync_target()

    def run_episode(self) -> dict:
        cfg, t = self.cfg, self.timings
        obs, _ = self.env.reset(seed=cfg.seed if self.episode == 0 else None)
        eps = epsilon_at(cfg, self.episode, self.total_steps)
        losses, tds = [], []
        ep_return, length, t_start = 0.0, 0, time.perf_counter()
        learn_from = max(cfg.learning_starts, cfg.batch_size)
        while True:
            if cfg.epsilon.schedule != "inverse_episode":
                eps = epsilon_at(cfg, self.episode, self.total_steps)
            t0 = time.perf_counter()
            action = self.agent.act(obs, eps)
            t1 = time.perf_counter()
            obs2, env_r, terminated, truncated, _ = self.env.step(action)
            t["act"] += t1 - t0
            t["env"] += time.perf_counter() - t1
            length += 1
            self.total_steps += 1
            done = terminated or truncated
            r = shaped_reward(cfg.env.reward, float(env_r), done, length, cfg.env.success_length)
            ep_return += r
            slot = self.buffer.add(
                obs, action, r, obs2, stored_terminal(terminated, truncated, cfg.env.truncation_as_terminal)
            )
            self.sampler.add(slot)
            if self.buffer.size >= learn_from and self.total_steps % cfg.train_every == 0:
                loss, td_abs = self._learn()
                losses.append(loss)
                tds.append(td_abs)
            if cfg.target_sync.unit == "steps" and self.total_steps % cfg.target_sync.every == 0:
                self.agent.sync_target()
            obs = obs2
            if done:
                break
        self._end_of_episode()
        wall = time.perf_counter() - t_start
        m = {
            C.EPISODE_STEPS: float(length),
            C.EPISODE_RETURN: ep_return,
            C.EPISODE_EPSILON: eps,
            C.TRAIN_BETA: beta_at(self.updates, cfg.sampler.beta0, cfg.sampler.beta_horizon),
            C.TRAIN_UPDATES: float(self.updates),
            C.PERF_SPS: length / wall if wall > 0 else 0.0,
        }
        if losses:
            m[C.TRAIN_LOSS] = float(np.mean(losses))
            m[C.TRAIN_TD_ABS_MEAN] = float(np.mean(tds))
        m.update(self.sampler.stats())
        return m

    def run(self) -> Summary:
        cfg = self.cfg
        s = Summary()
        s.episode_lengths = self.episode_lengths  # the same list: it survives a checkpoint and resume
        t_start = self._run_started = time.perf_counter()
        recent: deque[int] = deque(self.episode_lengths[-10:], maxlen=10)
        while self.episode < cfg.max_episodes:
            if self.episode == cfg.fail_at_episode:
                raise RuntimeError(f"fail_at_episode={cfg.fail_at_episode}: failing on purpose (test hook)")
            m = self.run_episode()
            length = int(m[C.EPISODE_STEPS])
            s.episode_lengths.append(length)
            recent.append(length)
            self.consecutive = self.consecutive + 1 if length >= cfg.solve.min_length else 0
            if self.sink is not None:
                self.sink(self.episode, m)
            solved = self.consecutive >= cfg.solve.consecutive
            if self.episode % cfg.log_every_episodes == 0 or solved:
                log.info(
                    "%sep %4d | len %3d | mean10 %6.1f | eps %.3f | loss %s | %5.0f steps/s",
                    f"[{self.label}] " if self.label else "",
                    self.episode,
                    length,
                    float(np.mean(recent)),
                    m[C.EPISODE_EPSILON],
                    f"{m[C.TRAIN_LOSS]:.4f}" if C.TRAIN_LOSS in m else "  -   ",
                    self.total_steps / max(time.perf_counter() - t_start, 1e-9),
                )
            self.episode += 1
            if solved:
                s.solved, s.solved_episode = True, self.episode - 1
                log.info("%ssolved at episode %d", f"[{self.label}] " if self.label else "", s.solved_episode)
                break
            every = cfg.checkpoint.every_episodes
            if self.should_stop is not None and self.should_stop() and self.episode < cfg.max_episodes:
                # checkpoints off (every == 0) stay off: the run then resumes from episode 0, in place
                if self.on_checkpoint is not None and every:
                    self.on_checkpoint(self)
                raise Stopped(f"stopped before episode {self.episode} on request")
            if (
                self.on_checkpoint is not None
                and every
                and self.episode % every == 0
                and self.episode < cfg.max_episodes
            ):
                self.on_checkpoint(self)
        s.episodes = self.episode
        s.total_env_steps = self.total_steps
        s.updates = self.updates
        s.wall_seconds = self.wall_seconds_before + time.perf_counter() - t_start
        s.timings = dict(self.timings)
        self.env.close()
        return s
