"""CartPole construction and the seed's reward scheme, as pure functions where possible."""

from __future__ import annotations

import warnings

import gymnasium as gym

from per_exp.config import EnvConfig


def make_env(cfg: EnvConfig) -> gym.Env:
    """gymnasium's `env.id`, with `env.max_steps` as its time limit."""
    with warnings.catch_warnings():
        # CartPole-v0 is the seed's env, chosen on purpose (same dynamics as v1, 200 steps);
        # gymnasium's advice to move to v1 says nothing here.
        warnings.filterwarnings(
            "ignore", message=r".*The environment CartPole-v0 is out of date", category=DeprecationWarning
        )
        # The passive checker costs ~10 us a step and checks nothing our own loop can get wrong.
        return gym.make(cfg.id, max_episode_steps=cfg.max_steps, disable_env_checker=True)


def env_dims(env: gym.Env) -> tuple[int, int]:
    """(observation size, number of actions): the agent needs a flat Box observation and Discrete actions."""
    obs, act = env.observation_space, env.action_space
    if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1 and isinstance(act, gym.spaces.Discrete)):
        raise ValueError(f"the agent needs a 1-D Box observation and Discrete actions; this env has {obs} and {act}")
    return int(obs.shape[0]), int(act.n)


def shaped_reward(scheme: str, env_reward: float, done: bool, length: int, success_length: int) -> float:
    """Seed: -1 when the episode ends before `success_length` steps, +1 when it ends at or after, else 0."""
    if scheme == "env":
        return float(env_reward)
    if not done:
        return 0.0
    return 1.0 if length >= success_length else -1.0


def stored_terminal(terminated: bool, truncated: bool, truncation_as_terminal: bool) -> bool:
    """Whether the transition is stored without bootstrap.

    A time-limit end is not a real terminal state: bootstrapping from it is
    correct. The seed stores it as terminal; that quirk is a switch.
    """
    return bool(terminated or (truncated and truncation_as_terminal))
