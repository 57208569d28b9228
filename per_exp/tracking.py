"""MLflow I/O: the client, experiments, job runs by config hash, provenance tags, and RunLogger.

Everything goes through an explicit `MlflowClient` with explicit experiment
and run ids; nothing relies on MLflow's process-global "active run" or
`set_experiment`, which misfile runs when several processes share a store.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import subprocess
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from per_exp import contract as C
from per_exp import store
from per_exp.config import Config, ConfigError, hash_rules

log = logging.getLogger(__name__)

_VERSIONED = ("per_exp", "torch", "numpy", "gymnasium", "mlflow", "hydra-core", "omegaconf")
# MLflow's log_batch limits per request
_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100


class _ReraisedStoreErrors(logging.Filter):
    """MLflow's SQL store logs a database error with its whole traceback, then raises it to us; the
    job reports it in one line (and keeps the traceback in error.txt), so the log copy goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SQLAlchemy database error")


_QUIET = _ReraisedStoreErrors()


def client_for(uri: str):
    """A client for `uri`. A SQLite file is opened (created, migrated) under the set-up lock: MLflow
    migrates a new file on first use, and two processes doing that at once crash."""
    from mlflow.tracking import MlflowClient

    store_log = logging.getLogger("mlflow.store.db.utils")
    if _QUIET not in store_log.filters:
        store_log.addFilter(_QUIET)
    with store.setup_lock(uri):  # MlflowClient opens the store at once (a no-op for a server)
        return MlflowClient(tracking_uri=uri)


def ensure_experiment(client, name: str) -> str:
    """Return the experiment id, creating it if needed (tolerates a concurrent creator).

    The experiment is marked as classic model training (`contract.TAG_EXPERIMENT_KIND`), also when
    an earlier per_exp created it without the mark.
    """
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise ConfigError("tracking.experiment", name, "a live experiment name (this one is deleted: restore it)")
        if C.TAG_EXPERIMENT_KIND not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, C.TAG_EXPERIMENT_KIND, C.EXPERIMENT_KIND_TRAINING)
        return exp.experiment_id
    try:
        return client.create_experiment(name, tags={C.TAG_EXPERIMENT_KIND: C.EXPERIMENT_KIND_TRAINING})
    except Exception:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def job_runs_by_hash(client, experiment_id: str) -> dict[str, list]:
    """{config hash: job runs with it, newest first} for one experiment, in one paged query."""
    out: dict[str, list] = {}
    for r in C.search_runs(client, experiment_id, C.tag_equals(C.TAG_ROLE, C.ROLE_JOB)):
        h = r.data.tags.get(C.TAG_CONFIG_HASH)
        if h:
            out.setdefault(h, []).append(r)
    for runs in out.values():
        runs.sort(key=lambda r: r.info.start_time or 0, reverse=True)
    return out


def job_runs_with_hash(client, experiment_id: str, config_hash: str) -> list:
    """Job runs carrying `config_hash`, newest first."""
    where = C.tag_equals(C.TAG_ROLE, C.ROLE_JOB) + " and " + C.tag_equals(C.TAG_CONFIG_HASH, config_hash)
    runs = C.search_runs(client, experiment_id, where)
    return sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True)


_GROUPS = ("sampler", "network", "env", "experiment", "ablation")


def run_name(conf: Config, swept: str = "") -> str:
    """`s<seed>`, then what sets the run apart in its sweep, then `<sampler>-<network>`.

    `swept` is the job's overrides that differ between the sweep's jobs ("sampler.alpha=0.6 seed=3").
    The UI cuts names to their first ~15 characters, so the seed and the swept values come first:
    `s3-alpha=0.6-sumtree-dueling`. Only names follow this order, never the config hash.
    """
    parts = [f"s{conf.seed}"]
    rules = hash_rules(Config)
    for override in swept.split():
        key, _, value = override.lstrip("+~").partition("=")
        # a one-job sweep's "swept" overrides are all of them: how a run is kept (tracking.uri,
        # checkpoint.*, hydra.*) names nothing about what it learns
        if key == "seed" or not value or key.startswith("hydra.") or rules.is_bookkeeping(key):
            continue
        parts.append(value if key in _GROUPS else f"{key.rsplit('.', 1)[-1]}={value}")
    for name in (conf.sampler.name, conf.network.name):
        if name not in parts:
            parts.append(name)
    return "-".join(parts)


def ui_address(uri: str, launch_dir: Path) -> tuple[str, str]:
    """(the MLflow UI's base address for a store, how to start that UI): a server serves its own UI."""
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/"), ""
    if C.sqlite_path(uri) == (launch_dir / "mlflow.db").resolve():
        return C.UI_DEFAULT, f"after `mlflow ui` in {launch_dir}"
    return C.UI_DEFAULT, f"after `mlflow ui --backend-store-uri {uri}`"


@functools.cache
def code_version() -> dict[str, str]:
    """This code's version: {"commit", "dirty" ("true"/"false"/"unknown"), "diff"}.

    `diff` is a hash of `git diff HEAD` (tracked files) when the tree is dirty, "" when clean:
    a commit alone does not say which code ran if the tree differed from it.
    """
    here = Path(__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)

    unknown = {"commit": "unknown", "dirty": "unknown", "diff": ""}
    try:
        commit = git("rev-parse", "HEAD")
        if commit.returncode != 0:
            return unknown
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
        diff = hashlib.sha256(git("diff", "HEAD").stdout.encode()).hexdigest()[:12] if dirty else ""
    except (OSError, subprocess.SubprocessError):
        return unknown
    return {"commit": commit.stdout.strip(), "dirty": str(dirty).lower(), "diff": diff}


def git_tags() -> dict[str, str]:
    v = code_version()
    return {C.TAG_GIT_COMMIT: v["commit"], C.TAG_GIT_DIRTY: v["dirty"]}


def version_tags() -> dict[str, str]:
    out = {}
    for pkg in _VERSIONED:
        try:
            out[C.TAG_VERSION_PREFIX + pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[C.TAG_VERSION_PREFIX + pkg] = "absent"
    return out


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class RunLogger:
    """One MLflow run: params and tags up front, metrics buffered and sent in batches."""

    def __init__(self, client, run_id: str, flush_every: int = 25):
        self.client = client
        self.run_id = run_id
        self.flush_every = flush_every
        self._pending: list = []
        self._episodes_since_flush = 0
        self.rows: list[dict] = []  # the episode table, also written as the episodes artifact
        # {metric key: last step already in the store}; points at or before it are not sent
        # again, so a resumed run never holds two points for one (key, step)
        self.logged_upto: dict[str, int] = {}

    @classmethod
    def start(
        cls,
        client,
        experiment_id: str,
        name: str,
        params: dict[str, Any],
        tags: dict[str, str],
        flush_every: int = 25,
    ) -> RunLogger:
        from mlflow.entities import Param

        run = client.create_run(experiment_id, run_name=name, tags=tags)
        rid = run.info.run_id
        plist = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for chunk in _chunks(plist, _MAX_PARAMS):
            client.log_batch(rid, params=chunk)
        return cls(client, rid, flush_every)

    @classmethod
    def attach(cls, client, run_id: str, flush_every: int = 25) -> RunLogger:
        """Continue an existing run: reopen it and learn which metric points it already holds."""
        run = client.get_run(run_id)
        logger = cls(client, run_id, flush_every)
        for key in run.data.metrics:
            hist = client.get_metric_history(run_id, key)
            if hist:
                logger.logged_upto[key] = max(m.step for m in hist)
        client.update_run(run_id, status="RUNNING")
        return logger

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for chunk in _chunks(items, _MAX_TAGS):
            self.client.log_batch(self.run_id, tags=chunk)

    def log_episode(self, episode: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        upto = self.logged_upto
        for k, v in metrics.items():
            if episode > upto.get(k, -1):
                self._pending.append(Metric(k, float(v), ts, episode))
        self.rows.append({C.EPISODE_COLUMN: episode, **metrics})
        self._episodes_since_flush += 1
        if self._episodes_since_flush >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        for chunk in _chunks(self._pending, _MAX_METRICS):
            self.client.log_batch(self.run_id, metrics=chunk)
        self._pending = []
        self._episodes_since_flush = 0

    def log_summary(self, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), ts, 0) for k, v in metrics.items() if k not in self.logged_upto)
        self.flush()

    def log_artifacts(self, files: dict[str, Path], dirs: dict[str, Path]) -> None:
        """files: {artifact_subdir_or_'': path}; dirs: {artifact_path: local_dir}."""
        for sub, path in files.items():
            if Path(path).exists():
                self.client.log_artifact(self.run_id, str(path), artifact_path=sub or None)
        for sub, path in dirs.items():
            if Path(path).is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path=sub)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)
