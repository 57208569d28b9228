"""MLflow at the edge: store resolution, run naming, flattened params, tags, batched metrics.

Everything goes through an explicit `MlflowClient` with explicit experiment
and run ids; nothing relies on MLflow's process-global "active run" or
`set_experiment`, which misfile runs when several processes share a store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from per_exp import credentials

log = logging.getLogger(__name__)

SWEEP_FILE = ".per_exp_sweep.json"
ROLE_TAG = "per_exp.role"
SWEEP_TAG = "per_exp.sweep_id"
HASH_TAG = "config_hash"
PARENT_TAG = "mlflow.parentRunId"
SWEEP_HASH_TAG = "per_exp.sweep_hash"
RESUME_TAG = "per_exp.resumes"
# Keys that change how a run is kept, not what it learns: out of params and the hash.
_BOOKKEEPING_PREFIXES = ("tracking.", "checkpoint.")
_BOOKKEEPING_KEYS = ("log_every_episodes", "rerun")
_VERSIONED = ("per_exp", "torch", "numpy", "gymnasium", "mlflow", "hydra-core", "omegaconf")
# MLflow's log_batch limits per request
_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100


def resolve_uri(uri: str | None) -> str:
    """Config key, then $MLFLOW_TRACKING_URI, then sqlite:///mlflow.db in the launch folder.

    A relative sqlite path is made absolute so that workers started in
    another folder (joblib, submitit) write to the same file.
    """
    key = "tracking.uri" if uri else "MLFLOW_TRACKING_URI"
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    credentials.check_uri(key, uri)  # the URI is written to logs, tags and the sweep file
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///") :]
        if not os.path.isabs(path):
            uri = "sqlite:///" + str(Path(path).resolve())
    return uri


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(client, name: str) -> str:
    """Return the experiment id, creating it if needed (tolerates a concurrent creator)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise ValueError(
                f"invalid config: tracking.experiment={name!r} names a deleted experiment; "
                "allowed: a live experiment name (restore it or pick another)"
            )
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def science_params(resolved: dict) -> dict[str, Any]:
    """The flattened config minus bookkeeping that does not change what is learned."""
    flat = flatten(resolved)
    return {k: v for k, v in flat.items() if not k.startswith(_BOOKKEEPING_PREFIXES) and k not in _BOOKKEEPING_KEYS}


def config_hash(resolved: dict) -> str:
    """Stable identity of a run's science: same config and seed, same hash."""
    blob = json.dumps(science_params(resolved), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sweep_hash(job_hashes: Iterable[str]) -> str:
    """Identity of a sweep: the set of its jobs' config hashes (order and duplicates ignored)."""
    blob = json.dumps(sorted(set(job_hashes)))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def search_all(client, experiment_id: str, filter_string: str) -> list:
    """Every matching run (live ones only), following MLflow's pages."""
    out, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def job_runs_by_hash(client, experiment_id: str) -> dict[str, list]:
    """{config hash: job runs with it, newest first} for one experiment, in one paged query."""
    out: dict[str, list] = {}
    for r in search_all(client, experiment_id, f"tags.`{ROLE_TAG}` = 'job'"):
        h = r.data.tags.get(HASH_TAG)
        if h:
            out.setdefault(h, []).append(r)
    for runs in out.values():
        runs.sort(key=lambda r: r.info.start_time or 0, reverse=True)
    return out


def job_runs_with_hash(client, experiment_id: str, config_hash: str) -> list:
    """Job runs carrying `config_hash`, newest first."""
    runs = search_all(client, experiment_id, f"tags.`{ROLE_TAG}` = 'job' and tags.`{HASH_TAG}` = '{config_hash}'")
    return sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True)


def run_name(resolved: dict) -> str:
    return f"{resolved['sampler']['name']}-{resolved['network']['name']}-s{resolved['seed']}"


def git_tags() -> dict[str, str]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode != 0:
            return {"git.commit": "unknown", "git.dirty": "unknown"}
        return {"git.commit": commit.stdout.strip(), "git.dirty": str(bool(dirty.stdout.strip())).lower()}
    except (OSError, subprocess.SubprocessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}


def version_tags() -> dict[str, str]:
    out = {}
    for pkg in _VERSIONED:
        try:
            out[f"versions.{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[f"versions.{pkg}"] = "absent"
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
        self.rows: list[dict] = []  # the episode table, also written as episodes.csv
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
        self.rows.append({"episode": episode, **metrics})
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
