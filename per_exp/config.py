"""Structured configuration: the typed schema Hydra composes into, and its checks.

Every ablation axis is a field here, so Hydra type-checks overrides and the
algorithm receives dataclasses, never ``cfg["a"]["b"]`` strings. Defaults are
the *paper's* PER (Schaul et al., 2016) on top of the seed notebook's agent;
``conf/experiment/seed_notebook.yaml`` switches every seed quirk back on.

A run's identity is its `config_hash`: the science params (the resolved config
flattened, minus what does not change what is learned), hashed. Two kinds of
key stay out of it, declared on the field itself:

- `bookkeeping()`: keys that change how a run is kept, never what it learns
  (tracking.*, checkpoint.*, log_every_episodes, rerun);
- `added(default, neutral=...)`: a key added after runs exist, left out while
  it holds `neutral`, the value that behaves exactly as the code did before the
  key existed. Adding a key this way never changes the hash of an existing
  config, so FINISHED runs are still found and skipped, and the report still
  groups old and new runs together.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from per_exp.errors import ConfigError as ConfigError  # re-exported: callers import it from here

SAMPLERS = ("uniform", "linear_scan", "sumtree", "rank")
NETWORKS = ("dueling", "mlp")
NEW_PRIORITY = ("max", "zero")
REFRESH = ("sampled", "full_episode")
WEIGHT_NORM = ("batch", "buffer")
EPSILON_SCHEDULES = ("inverse_episode", "linear_steps")
SYNC_UNITS = ("episodes", "steps")
REWARD_SCHEMES = ("seed", "env")


# --------------------------------------------------------------------------- what the hash covers
_HASH_ROLE = "per_exp.hash"  # field metadata key
_BOOKKEEPING = "bookkeeping"
_NEUTRAL = "per_exp.neutral"  # field metadata key: the value that behaves as before the key existed


def bookkeeping(**field_kwargs: Any) -> Any:
    """A field that changes how a run is kept, not what it learns: out of the hash and the params.

    On a dataclass-valued field the whole group is bookkeeping.
    """
    return field(metadata={_HASH_ROLE: _BOOKKEEPING}, **field_kwargs)


def added(default: Any, *, neutral: Any = dataclasses.MISSING) -> Any:
    """A key added after runs exist: out of the hash (and params) while it holds `neutral`.

    `neutral` (default: `default`) must be the value under which the code
    behaves exactly as it did before the key existed, so that an existing
    run's config, which lacks the key, and the same config with the key at
    `neutral` are one run. Any other value is hashed like every key.
    """
    value = default if neutral is dataclasses.MISSING else neutral
    return field(default=default, metadata={_NEUTRAL: value})


@dataclass
class SamplerConfig:
    """How transitions are drawn from replay. Paper values are the defaults."""

    name: str = "sumtree"  # uniform | linear_scan | sumtree | rank
    alpha: float = 0.6  # priority exponent: p_i = (|delta_i| + eps) ** alpha; rank: p_i = rank(i) ** -alpha
    eps: float = 1e-6  # keeps zero-error transitions drawable (proportional samplers only)
    beta0: float = 0.4  # IS exponent at the start of the anneal
    beta_horizon: int = 20_000  # updates over which beta goes linearly beta0 -> 1, then stays at 1
    is_weights: bool = True  # scale the loss by importance-sampling weights
    weight_norm: str = "batch"  # divide w by max over the batch (paper), or over the buffer (baselines, cpprb)
    stratified: bool = True  # one draw per equal-mass segment of the CDF (paper) or i.i.d.
    new_priority: str = "max"  # new transitions: max priority seen so far (paper) or that of TD error 0 (seed)
    refresh: str = "sampled"  # update sampled priorities per step (paper) or all at episode end (seed)
    scan_off_by_one: bool = False  # seed bug (linear_scan only): the scan returns the successor slot


@dataclass
class NetworkConfig:
    name: str = "dueling"  # dueling (V + A - mean A) | mlp (plain Q head)
    hidden: int = 32
    layers: int = 3  # hidden layers in the body


@dataclass
class EnvConfig:
    name: str = "cartpole_v0"
    id: str = "CartPole-v0"  # the gymnasium id built (CartPole-v0 and -v1 differ only in their time limit)
    max_steps: int = 200  # time limit, replacing the id's registered one (v0: 200, v1: 500)
    success_length: int = 196  # an episode this long counts as a success (seed: step index >= 195)
    reward: str = "seed"  # seed: -1 on failure, +1 on success, 0 otherwise | env: gymnasium's +1 per step
    truncation_as_terminal: bool = False  # seed bug: time-limit end stored as terminal (no bootstrap)


@dataclass
class EpsilonConfig:
    schedule: str = "inverse_episode"  # inverse_episode: scale/(episode+1) | linear_steps
    scale: float = 0.5  # inverse_episode numerator (seed: 0.5)
    start: float = 1.0  # linear_steps
    end: float = 0.05
    decay_steps: int = 10_000


@dataclass
class TargetSyncConfig:
    every: int = 2  # sync the target network every N units
    unit: str = "episodes"  # episodes (seed) | steps
    copy_at_start: bool = True  # seed: target starts from its own random init, first sync after episode 0


@dataclass
class SolveConfig:
    min_length: int = "${env.success_length}"  # type: ignore[assignment]
    consecutive: int = 10  # stop after this many successes in a row


@dataclass
class TrackingConfig:
    uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the launch folder
    experiment: str = "per-cartpole"
    enabled: bool = True
    flush_every_episodes: int = 25  # metrics are sent in batches, not one call per number
    log_model: bool = True


@dataclass
class CheckpointConfig:
    """Periodic job checkpoints, so a killed or preempted job resumes into its own MLflow run."""

    every_episodes: int = 25  # 0 turns checkpoints off; a killed job redoes at most this many episodes
    # None: <folder of the sqlite store>/checkpoints, or ./checkpoints in the launch folder for a
    # server URI. Files are keyed by config hash, so a re-launch finds them whatever Hydra's sweep dir.
    dir: str | None = None
    keep: bool = False  # keep the file after the run FINISHED (it is deleted by default)


@dataclass
class Config:
    sampler: SamplerConfig = MISSING
    network: NetworkConfig = MISSING
    env: EnvConfig = MISSING
    epsilon: EpsilonConfig = field(default_factory=EpsilonConfig)
    target_sync: TargetSyncConfig = field(default_factory=TargetSyncConfig)
    solve: SolveConfig = field(default_factory=SolveConfig)
    tracking: TrackingConfig = bookkeeping(default_factory=TrackingConfig)
    checkpoint: CheckpointConfig = bookkeeping(default_factory=CheckpointConfig)

    seed: int = 0
    max_episodes: int = 500
    batch_size: int = 32
    capacity: int = 10_000
    gamma: float = 0.99
    lr: float = 1e-4
    warmup_episodes: int = 0  # uniform replay before prioritized replay starts (seed: 30)
    learning_starts: int = 32  # env steps stored before the first update (seed: batch size)
    train_every: int = 1  # env steps per gradient update
    torch_threads: int = 1  # per job: 2 threads on 2 cores ran 5.6x slower
    # fused: one numba call per update (same math, ~5x faster) | torch: eager autograd reference
    update_backend: str = "fused"
    log_every_episodes: int = bookkeeping(default=10)  # console progress line interval
    fail_at_episode: int = -1  # test hook: raise at this episode to exercise failure handling
    # run again even if a FINISHED run with the same config hash exists
    rerun: bool = bookkeeping(default=False)


@dataclass(frozen=True)
class HashRules:
    """Which flattened keys of a schema stay out of the hash: bookkeeping groups/keys, neutral values."""

    bookkeeping: tuple[str, ...]  # dotted keys; a group covers every key under it
    neutral: dict[str, Any]  # dotted key -> its neutral value

    def is_bookkeeping(self, key: str) -> bool:
        return any(key == b or key.startswith(b + ".") for b in self.bookkeeping)

    def is_neutral(self, key: str, value: Any) -> bool:
        return key in self.neutral and value == self.neutral[key]


@functools.cache
def hash_rules(schema: type) -> HashRules:
    """The hash rules declared on the fields of `schema` (and its nested dataclasses)."""
    bk: list[str] = []
    neutral: dict[str, Any] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = get_type_hints(cls)
        for f in fields(cls):
            key = prefix + f.name
            if f.metadata.get(_HASH_ROLE) == _BOOKKEEPING:
                bk.append(key)
            elif _NEUTRAL in f.metadata:
                neutral[key] = f.metadata[_NEUTRAL]
            if dataclasses.is_dataclass(hints.get(f.name)):
                walk(hints[f.name], key + ".")

    walk(schema, "")
    return HashRules(tuple(bk), neutral)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> one dict with dotted keys (`sampler.alpha`)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def science_params(resolved: dict[str, Any], schema: type | None = None) -> dict[str, Any]:
    """The flattened config minus what does not change what is learned: the run's params, hashed."""
    rules = hash_rules(schema or Config)
    return {k: v for k, v in flatten(resolved).items() if not rules.is_bookkeeping(k) and not rules.is_neutral(k, v)}


def config_hash(resolved: dict[str, Any], schema: type | None = None) -> str:
    """Stable identity of a run's science: same config and seed, same hash."""
    blob = json.dumps(science_params(resolved, schema), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def typed(cfg: DictConfig) -> Config:
    """The composed config as the typed `Config` the code reads."""
    conf = OmegaConf.to_object(cfg)
    if not isinstance(conf, Config):
        raise TypeError(f"expected a composed per_exp config, got {type(conf).__name__}")
    return conf


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain nested dicts, interpolations resolved (what is hashed and logged)."""
    d = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(d, dict):
        raise TypeError(f"expected a config mapping, got {type(d).__name__}")
    return {str(k): v for k, v in d.items()}


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore so YAML files are checked against it."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(group="sampler", name="sampler_schema", node=SamplerConfig)
    cs.store(group="network", name="network_schema", node=NetworkConfig)
    cs.store(group="env", name="env_schema", node=EnvConfig)


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, value, "one of " + ", ".join(allowed))


def _registered_cartpole_ids() -> list[str]:
    """The CartPole ids gymnasium registers (the trainer's reward scheme and solve rule are CartPole's)."""
    import gymnasium

    return sorted(k for k in gymnasium.registry if k.startswith("CartPole-"))


def validate(cfg: Config) -> None:
    """Reject values the trainer cannot honour, before any run is created."""
    s = cfg.sampler
    _one_of("sampler.name", s.name, SAMPLERS)
    _one_of("network.name", cfg.network.name, NETWORKS)
    _one_of("sampler.new_priority", s.new_priority, NEW_PRIORITY)
    _one_of("sampler.refresh", s.refresh, REFRESH)
    _one_of("sampler.weight_norm", s.weight_norm, WEIGHT_NORM)
    _one_of("epsilon.schedule", cfg.epsilon.schedule, EPSILON_SCHEDULES)
    _one_of("target_sync.unit", cfg.target_sync.unit, SYNC_UNITS)
    _one_of("env.reward", cfg.env.reward, REWARD_SCHEMES)
    _one_of("update_backend", cfg.update_backend, ("fused", "torch"))
    cartpoles = _registered_cartpole_ids()
    if cfg.env.id not in cartpoles:
        raise ConfigError("env.id", cfg.env.id, "a registered gymnasium CartPole id: " + ", ".join(cartpoles))
    checks = [
        ("batch_size", cfg.batch_size, cfg.batch_size >= 1, "an integer >= 1"),
        ("capacity", cfg.capacity, cfg.capacity >= 1, "an integer >= 1"),
        (
            "capacity",
            cfg.capacity,
            cfg.capacity >= cfg.batch_size,
            f"an integer >= batch_size ({cfg.batch_size})",
        ),
        ("gamma", cfg.gamma, 0.0 <= cfg.gamma <= 1.0, "a number in [0, 1]"),
        ("lr", cfg.lr, cfg.lr > 0 and math.isfinite(cfg.lr), "a finite number > 0"),
        ("max_episodes", cfg.max_episodes, cfg.max_episodes >= 1, "an integer >= 1"),
        ("warmup_episodes", cfg.warmup_episodes, cfg.warmup_episodes >= 0, "an integer >= 0"),
        ("learning_starts", cfg.learning_starts, cfg.learning_starts >= 0, "an integer >= 0"),
        ("train_every", cfg.train_every, cfg.train_every >= 1, "an integer >= 1"),
        ("torch_threads", cfg.torch_threads, cfg.torch_threads >= 1, "an integer >= 1"),
        ("sampler.alpha", s.alpha, s.alpha >= 0 and math.isfinite(s.alpha), "a finite number >= 0"),
        ("sampler.eps", s.eps, s.eps >= 0 and math.isfinite(s.eps), "a finite number >= 0"),
        ("sampler.beta0", s.beta0, 0.0 <= s.beta0 <= 1.0, "a number in [0, 1]"),
        ("sampler.beta_horizon", s.beta_horizon, s.beta_horizon >= 1, "an integer >= 1"),
        (
            "sampler.scan_off_by_one",
            s.scan_off_by_one,
            # uniform ignores every priority switch, so `experiment=seed_notebook sampler=uniform`
            # (the seed's own baseline) must compose; the tree samplers would silently ignore it.
            not s.scan_off_by_one or s.name in ("linear_scan", "uniform"),
            f"false unless sampler.name is linear_scan (got sampler.name={s.name}; add sampler.scan_off_by_one=false)",
        ),
        ("network.hidden", cfg.network.hidden, cfg.network.hidden >= 1, "an integer >= 1"),
        ("network.layers", cfg.network.layers, cfg.network.layers >= 1, "an integer >= 1"),
        ("env.max_steps", cfg.env.max_steps, cfg.env.max_steps >= 1, "an integer >= 1"),
        (
            "env.success_length",
            cfg.env.success_length,
            1 <= cfg.env.success_length <= cfg.env.max_steps,
            f"an integer in [1, env.max_steps={cfg.env.max_steps}]",
        ),
        ("solve.consecutive", cfg.solve.consecutive, cfg.solve.consecutive >= 1, "an integer >= 1"),
        ("target_sync.every", cfg.target_sync.every, cfg.target_sync.every >= 1, "an integer >= 1"),
        ("epsilon.scale", cfg.epsilon.scale, cfg.epsilon.scale >= 0.0, "a number >= 0"),
        ("epsilon.decay_steps", cfg.epsilon.decay_steps, cfg.epsilon.decay_steps >= 1, "an integer >= 1"),
        ("tracking.experiment", cfg.tracking.experiment, bool(cfg.tracking.experiment), "a non-empty name"),
        (
            "tracking.flush_every_episodes",
            cfg.tracking.flush_every_episodes,
            cfg.tracking.flush_every_episodes >= 1,
            "an integer >= 1",
        ),
        (
            "checkpoint.every_episodes",
            cfg.checkpoint.every_episodes,
            cfg.checkpoint.every_episodes >= 0,
            "an integer >= 0 (0 turns checkpoints off)",
        ),
        (
            "checkpoint.dir",
            cfg.checkpoint.dir,
            cfg.checkpoint.dir is None or bool(cfg.checkpoint.dir),
            "null or a path",
        ),
    ]
    for key, value, ok, allowed in checks:
        if not ok:
            raise ConfigError(key, value, allowed)


# Top-level names a command-line override may start with.
_GROUPS = ("sampler", "network", "env", "experiment", "hydra")


def top_level_keys() -> list[str]:
    return sorted({f.name for f in fields(Config)} | set(_GROUPS))


def check_override_keys(overrides: list[str]) -> None:
    """Catch a typo'd top-level key before Hydra composes anything.

    Hydra's own message ("Key 'x' is not in struct") names neither the
    allowed keys nor the likely intended one; this one does both.
    """
    allowed = top_level_keys()
    for ov in overrides:
        if ov.startswith("-") or "=" not in ov:
            continue
        key = ov.split("=", 1)[0].lstrip("+~")
        top = key.split(".", 1)[0].split("@", 1)[0]
        if top in allowed or key.startswith("hydra"):
            continue
        close = difflib.get_close_matches(top, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(key, ov.split("=", 1)[1], "a key of the config" + hint + ": " + ", ".join(allowed))
