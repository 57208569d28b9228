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
- `added(default, doc, neutral=...)`: a key added after runs exist, left out while
  it holds `neutral`, the value that behaves exactly as the code did before the
  key existed. Adding a key this way never changes the hash of an existing
  config, so FINISHED runs are still found and skipped, and the report still
  groups old and new runs together.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from per_exp import contract as C
from per_exp.errors import ConfigError as ConfigError  # re-exported: callers import it from here

NETWORKS = ("dueling", "mlp")
NEW_PRIORITY = ("max", "zero")
REFRESH = ("sampled", "full_episode")
WEIGHT_NORM = ("batch", "buffer")
EPSILON_SCHEDULES = ("inverse_episode", "linear_steps")
SYNC_UNITS = ("episodes", "steps")
REWARD_SCHEMES = ("seed", "env")
SOLVE_RULES = (C.SOLVE_RULE_LENGTH, C.SOLVE_RULE_MEAN_RETURN)
UPDATE_BACKENDS = ("fused", "torch")
SEED_MAX = 2**32 - 1  # numpy's and gymnasium's seeds are unsigned 32-bit

_T = TypeVar("_T")


# --------------------------------------------------------------------------- what the hash covers
_HASH_ROLE = "per_exp.hash"  # field metadata key
_BOOKKEEPING = "bookkeeping"
_NEUTRAL = "per_exp.neutral"  # field metadata key: the value that behaves as before the key existed


_DOC = "doc"  # field metadata key: the key's one description (docs/configuration.md is rendered from it)


def setting(default: _T, doc: str, **meta: Any) -> _T:
    """A schema field and its documentation, kept together.

    `doc` (and `choices`, where the value is one of a fixed set, or a function returning
    that set when a registry holds it) live in the
    dataclass field's metadata; `python -m per_exp.config_reference` renders
    them into docs/configuration.md, and a test fails when that page is stale.
    Further metadata keys (`**meta`) are allowed for other readers of the schema.
    """
    return field(default=default, metadata={_DOC: doc, **meta})


def bookkeeping(default: Any = dataclasses.MISSING, doc: str = "", **field_kwargs: Any) -> Any:
    """A field that changes how a run is kept, not what it learns: out of the hash and the params.

    On a dataclass-valued field the whole group is bookkeeping. `doc` as for `setting`.
    """
    meta: dict[str, Any] = {_HASH_ROLE: _BOOKKEEPING}
    if doc:
        meta[_DOC] = doc
    return field(default=default, metadata=meta, **field_kwargs)


def added(default: Any, doc: str = "", *, neutral: Any = dataclasses.MISSING) -> Any:
    """A key added after runs exist: out of the hash (and params) while it holds `neutral`.

    `neutral` (default: `default`) must be the value under which the code
    behaves exactly as it did before the key existed, so that an existing
    run's config, which lacks the key, and the same config with the key at
    `neutral` are one run. Any other value is hashed like every key. `doc` as for `setting`.
    """
    value = default if neutral is dataclasses.MISSING else neutral
    return field(default=default, metadata={_NEUTRAL: value, **({_DOC: doc} if doc else {})})


def _sampler_names() -> tuple[str, ...]:
    """The sampler registry's names (read when the reference is rendered: the registry imports this module)."""
    from per_exp.engine import samplers

    return samplers.names()


@dataclass
class SamplerConfig:
    """How transitions are drawn from replay (`sampler=<name>` picks a preset). Paper values are the defaults."""

    name: str = setting("sumtree", "which sampler draws the batch", choices=_sampler_names)
    alpha: float = setting(
        0.6, "priority exponent: p_i = (|delta_i| + eps) ** alpha; `rank`: p_i = rank(i) ** -alpha (0: uniform)"
    )
    eps: float = setting(1e-6, "added to |delta| so zero-error transitions stay drawable (ignored by `rank`)")
    beta0: float = setting(0.4, "importance-sampling exponent at the start of the anneal, in [0, 1]")
    beta_horizon: int = setting(20_000, "updates over which beta rises linearly from `beta0` to 1; it stays at 1 after")
    is_weights: bool = setting(True, "multiply each item's loss by its importance-sampling weight (seed: false)")
    weight_norm: str = setting(
        "batch",
        "divide the IS weights by their max over the `batch` (paper), or over the whole `buffer` "
        "(the weight of the smallest P, as OpenAI baselines and cpprb do)",
        choices=WEIGHT_NORM,
    )
    stratified: bool = setting(
        True, "one draw from each of B equal-mass segments of the CDF (paper), or B i.i.d. draws (seed)"
    )
    new_priority: str = setting(
        "max",
        "priority of a new transition: the largest priority seen so far (paper), or that of TD error 0 (seed)",
        choices=NEW_PRIORITY,
    )
    refresh: str = setting(
        "sampled",
        "which priorities are rewritten: the sampled ones after each update (paper), "
        "or every stored one at episode end (seed)",
        choices=REFRESH,
    )
    scan_off_by_one: bool = setting(
        False,
        "the seed's bug: the scan returns the successor of the chosen slot (slot 0 is never drawn); "
        "`linear_scan` only (`uniform` ignores it, the tree samplers refuse it)",
    )


@dataclass
class NetworkConfig:
    """The Q-network (`network=<name>` picks a preset)."""

    name: str = setting("dueling", "`dueling`: V + A - mean(A) head; `mlp`: a plain linear Q head", choices=NETWORKS)
    hidden: int = setting(32, "width of each hidden layer")
    layers: int = setting(3, "hidden layers in the body")


@dataclass
class EnvConfig:
    """The task (`env=<name>` picks a preset; each preset also sets its solve rule and `max_episodes`)."""

    name: str = setting("cartpole_v0", "the preset's name, for run names and the params table")
    id: str = setting(
        "CartPole-v0",
        "the gymnasium id trained on: CartPole-v0/-v1, Acrobot-v1, MountainCar-v0 (numba ports), or any "
        "registered id with Discrete actions and a 1-D Box observation (`env=gym_id env.id=...`)",
    )
    max_steps: int = setting(
        200, "time limit in env steps, replacing the id's registered one (CartPole v0: 200, v1: 500)"
    )
    success_length: int = setting(
        196,
        "an episode at least this long counts as a success (seed: last step index >= 195); "
        "read by `reward: seed` and the `length` solve rule only",
    )
    reward: str = setting(
        "seed",
        "the shaping: `seed`: -1 when the episode ends before `success_length`, +1 at or after, 0 mid-episode; "
        "`env`: gymnasium's own reward, no shaping",
        choices=REWARD_SCHEMES,
    )
    truncation_as_terminal: bool = setting(
        False, "the seed's bug: a time-limit end is stored as terminal (no bootstrap from it)"
    )


@dataclass
class EpsilonConfig:
    """Exploration: the epsilon of epsilon-greedy acting."""

    schedule: str = setting(
        "inverse_episode",
        "`inverse_episode`: `scale` / (episode + 1) (seed); `linear_steps`: `start` to `end` over `decay_steps`",
        choices=EPSILON_SCHEDULES,
    )
    scale: float = setting(0.5, "numerator of `inverse_episode`")
    start: float = setting(1.0, "`linear_steps`: epsilon at env step 0")
    end: float = setting(0.05, "`linear_steps`: epsilon from `decay_steps` on")
    decay_steps: int = setting(10_000, "`linear_steps`: env steps of the linear decay")


@dataclass
class TargetSyncConfig:
    """When the target network copies the online one."""

    every: int = setting(2, "sync the target network every N units")
    unit: str = setting(
        "episodes", "`episodes` (seed: after the episode's TD refresh) or env `steps`", choices=SYNC_UNITS
    )
    copy_at_start: bool = setting(
        True, "start the target as a copy of the online network (seed: false, its own random init)"
    )


@dataclass
class SolveConfig:
    """When a run counts as solved, and stops (`per_exp.solve`; each env preset sets its rule)."""

    rule: str = added(
        C.SOLVE_RULE_LENGTH,
        "`length`: `consecutive` episodes in a row at least `min_length` long (CartPole); `mean_return`: "
        "the mean return of the last `window` episodes >= `return_threshold` (gymnasium's reward_threshold)",
    )
    min_length: int = setting("${env.success_length}", "`length` rule: an episode at least this long is a success")  # type: ignore[assignment]
    consecutive: int = setting(
        10, "`length` rule: stop after this many successes in a row; `solved_episode` is the last of them"
    )
    return_threshold: float | None = added(
        None, "`mean_return` rule: the mean return that solves (Acrobot-v1: -100, MountainCar-v0: -110)"
    )
    window: int = added(100, "`mean_return` rule: episodes averaged; `solved_episode` is the last of them")


@dataclass
class EvalConfig:
    """Greedy evaluation episodes between training episodes (off by default).

    They run on their own env and start-state stream, so the training series
    is the same with evaluation on or off; their return is the env's own.
    """

    every_episodes: int = added(
        0, "evaluate after every N-th training episode and after the last one; 0: no evaluation"
    )
    episodes: int = added(10, "greedy episodes per evaluation (`eval/return`, `eval/length` are their means)")


@dataclass
class TrackingConfig:
    """Where runs are logged."""

    uri: str | None = setting(
        None, "MLflow store; null: `$MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db` in the launch folder"
    )
    experiment: str = setting("per-cartpole", "MLflow experiment, one per study")
    enabled: bool = setting(True, "false trains without logging anything")
    flush_every_episodes: int = setting(
        25, "metrics are sent in batches every N episodes (and at the end), not one call per number"
    )
    log_model: bool = setting(True, "log the final online network as `model/model.pt`")
    heartbeat_seconds: float = setting(
        10.0, "how often a job renews its claim on its config hash (docs/trust.md, the claim protocol)"
    )
    stale_after_seconds: float = setting(
        120.0,
        "a RUNNING run whose claim has not been renewed for this long counts as abandoned and is taken over "
        "by the next launch (at least 2 * `heartbeat_seconds`)",
    )
    server_timeout_seconds: float = setting(
        60.0,
        "how long a job waits for a store that stopped answering before it ends with one line, its "
        "checkpoint kept (MLflow's HTTP timeout and retries are set from it; at least 5)",
    )


@dataclass
class CheckpointConfig:
    """Periodic job checkpoints, so a killed or preempted job resumes into its own MLflow run."""

    every_episodes: int = setting(
        25, "save a resumable checkpoint every N episodes; 0 turns them off (a killed job redoes at most N episodes)"
    )
    dir: str | None = setting(
        None,
        "checkpoint folder; null: `checkpoints/` beside the SQLite store, or `./checkpoints` in the launch folder "
        "for a server URI. Files are keyed by config hash, so a re-launch finds them whatever Hydra's sweep folder",
    )
    keep: bool = setting(False, "keep the checkpoint after the run FINISHED (deleted by default)")


@dataclass
class GroupConfig:
    """Many runs per process in a sweep (docs/speed.md, "Grouped sweeps").

    How runs are scheduled, never what they learn: a run's series is the same
    alone or in any group (tests/test_engine_identity.py), so these keys are
    out of the config hash.
    """

    enabled: bool = setting(
        True,
        "a sweep (`-m`) trains the runs that differ only in per-run keys (seed, lr, gamma, ...) together, "
        "one launcher job per group; false: one launcher job per run",
    )
    slots: int = setting(
        32,
        "runs of a group trained at once (the engine's K); the group's other runs wait and take the slot of a "
        "run that ends (continuous batching)",
    )
    max_runs: int = setting(
        0,
        "runs per launcher job at most, 0: no limit. A parallel launcher (joblib, Ray, Slurm) runs one job per "
        "worker: N workers want at least N jobs, so a 20-seed sweep on 2 workers wants 10",
    )


@dataclass
class Config:
    """Top-level keys; each group above is a key holding its dataclass."""

    sampler: SamplerConfig = MISSING
    network: NetworkConfig = MISSING
    env: EnvConfig = MISSING
    epsilon: EpsilonConfig = field(default_factory=EpsilonConfig)
    target_sync: TargetSyncConfig = field(default_factory=TargetSyncConfig)
    solve: SolveConfig = field(default_factory=SolveConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = bookkeeping(default_factory=TrackingConfig)
    checkpoint: CheckpointConfig = bookkeeping(default_factory=CheckpointConfig)
    group: GroupConfig = bookkeeping(default_factory=GroupConfig)

    seed: int = setting(
        0, "one seed for Python, NumPy, torch and the env: the same seed gives the same episode lengths"
    )
    max_episodes: int = setting(500, "episode cap")
    batch_size: int = setting(32, "transitions per update")
    capacity: int = setting(10_000, "replay ring size (at least `batch_size`)")
    gamma: float = setting(0.99, "discount, in [0, 1]")
    lr: float = setting(1e-4, "Adam learning rate")
    warmup_episodes: int = setting(0, "episodes of uniform replay before prioritized replay starts (seed: 30)")
    learning_starts: int = setting(
        32, "transitions stored before the first update (the first update waits for `batch_size` at least)"
    )
    train_every: int = setting(1, "env steps per gradient update")
    torch_threads: int = setting(1, "torch threads per job (2 threads on 2 cores ran 5.6x slower)")
    update_backend: str = setting(
        "fused",
        "`fused`: one compiled numba call per update (the same math, proven equal by a test); "
        "`torch`: the eager autograd reference",
        choices=UPDATE_BACKENDS,
    )
    log_every_episodes: int = bookkeeping(10, "console progress line interval")
    fail_at_episode: int = setting(-1, "test hook: raise at this episode, to exercise failure handling (-1: never)")
    rerun: bool = bookkeeping(False, "run a job again even if a FINISHED run with the same config hash exists")
    resume_across_commits: bool = bookkeeping(
        False,
        "continue an unfinished run written by another code version (git commit); both versions are recorded "
        "in the run's code history",
    )


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
    # `${gym_spec:<id>,<attr>}`: the env=gym_id preset's time limit and threshold, from gymnasium's registry
    OmegaConf.register_new_resolver("gym_spec", gym_spec, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(group="sampler", name="sampler_schema", node=SamplerConfig)
    cs.store(group="network", name="network_schema", node=NetworkConfig)
    cs.store(group="env", name="env_schema", node=EnvConfig)


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, value, "one of " + ", ".join(allowed))


def _check_env_id(env_id: Any) -> None:
    """The id must be one the engine can step: a numba port, or gymnasium's env with Discrete actions and a 1-D Box."""
    from per_exp.engine.vecenv import PORTS, EnvRefused, resolve_backend

    allowed = (
        f"{', '.join(PORTS)}, or any registered gymnasium id with Discrete actions and a 1-D Box observation "
        "(env=gym_id env.id=<id>)"
    )
    if not env_id:
        raise ConfigError("env.id", env_id, allowed)
    try:
        resolve_backend(env_id)
    except EnvRefused as e:
        # EnvRefused's one line is "env.id=X is not allowed: <why>; allowed: ...": keep the why
        why = str(e).split(" is not allowed: ", 1)[-1].split("; allowed", 1)[0]
        raise ConfigError("env.id", env_id, f"{allowed}; this one: {why}") from None


def gym_spec(env_id: str, attr: str) -> Any:
    """A value of gymnasium's registration of `env_id` (`max_episode_steps`, `reward_threshold`).

    The `env=gym_id` preset reads its time limit and threshold from here, so
    that the resolved config (hashed and logged) holds the numbers themselves.
    An unknown id gives 0 (None for the threshold): `validate` then refuses the id in one line.
    """
    import gymnasium

    spec = gymnasium.registry.get(env_id)
    value = getattr(spec, attr, None) if spec is not None else None
    if attr == "max_episode_steps":
        return int(value) if value else 0
    return float(value) if value is not None else None


def validate(cfg: Config) -> None:
    """Reject values the trainer cannot honour, before any run is created."""
    s = cfg.sampler
    from per_exp.engine import samplers  # the one registry of samplers (imports this module: not at the top)

    _one_of("sampler.name", s.name, samplers.names())
    for key, value, allowed in samplers.get(s.name).problems(s):
        raise ConfigError(key, value, allowed)
    _one_of("network.name", cfg.network.name, NETWORKS)
    _one_of("sampler.new_priority", s.new_priority, NEW_PRIORITY)
    _one_of("sampler.refresh", s.refresh, REFRESH)
    _one_of("sampler.weight_norm", s.weight_norm, WEIGHT_NORM)
    _one_of("epsilon.schedule", cfg.epsilon.schedule, EPSILON_SCHEDULES)
    _one_of("target_sync.unit", cfg.target_sync.unit, SYNC_UNITS)
    _one_of("env.reward", cfg.env.reward, REWARD_SCHEMES)
    _one_of("update_backend", cfg.update_backend, UPDATE_BACKENDS)
    _check_env_id(cfg.env.id)
    _one_of("solve.rule", cfg.solve.rule, SOLVE_RULES)
    if cfg.solve.rule == C.SOLVE_RULE_MEAN_RETURN:
        thr = cfg.solve.return_threshold
        if thr is None or not math.isfinite(thr):
            registered = gym_spec(cfg.env.id, "reward_threshold")
            hint = f" (gymnasium registers {registered:g} for {cfg.env.id})" if registered is not None else ""
            raise ConfigError("solve.return_threshold", thr, "a finite number under solve.rule=mean_return" + hint)
        if cfg.env.reward != "env":
            raise ConfigError(
                "env.reward", cfg.env.reward, "env under solve.rule=mean_return (the rule judges the env's own return)"
            )
    t = cfg.tracking
    checks = [
        ("seed", cfg.seed, 0 <= cfg.seed <= SEED_MAX, f"an integer in [0, {SEED_MAX}]"),
        ("tracking.heartbeat_seconds", t.heartbeat_seconds, t.heartbeat_seconds > 0, "a number of seconds > 0"),
        (
            "tracking.stale_after_seconds",
            t.stale_after_seconds,
            t.stale_after_seconds >= 2 * t.heartbeat_seconds,
            f"a number of seconds >= 2 * tracking.heartbeat_seconds ({2 * t.heartbeat_seconds:g})",
        ),
        (
            "tracking.server_timeout_seconds",
            t.server_timeout_seconds,
            t.server_timeout_seconds >= 5,
            "a number of seconds >= 5",
        ),
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
        ("network.hidden", cfg.network.hidden, cfg.network.hidden >= 1, "an integer >= 1"),
        ("network.layers", cfg.network.layers, cfg.network.layers >= 1, "an integer >= 1"),
        ("env.max_steps", cfg.env.max_steps, cfg.env.max_steps >= 1, "an integer >= 1"),
        (
            "env.success_length",
            cfg.env.success_length,
            # read only by the seed's shaping and the length rule
            1 <= cfg.env.success_length <= cfg.env.max_steps
            or (cfg.env.reward == "env" and cfg.solve.rule != C.SOLVE_RULE_LENGTH),
            f"an integer in [1, env.max_steps={cfg.env.max_steps}]",
        ),
        ("solve.consecutive", cfg.solve.consecutive, cfg.solve.consecutive >= 1, "an integer >= 1"),
        ("solve.window", cfg.solve.window, cfg.solve.window >= 1, "an integer >= 1"),
        ("eval.every_episodes", cfg.eval.every_episodes, cfg.eval.every_episodes >= 0, "an integer >= 0 (0: off)"),
        ("eval.episodes", cfg.eval.episodes, cfg.eval.episodes >= 1, "an integer >= 1"),
        ("group.slots", cfg.group.slots, cfg.group.slots >= 1, "an integer >= 1"),
        ("group.max_runs", cfg.group.max_runs, cfg.group.max_runs >= 0, "an integer >= 0 (0: no limit)"),
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
