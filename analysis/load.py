"""MLflow runs -> tidy pandas frames.

Two frames come out of :func:`load_runs`:

* ``runs``: one row per usable run. Columns ``run_id``, ``run_name``,
  ``status``, ``start_time``, ``end_time``, ``parent_run_id``, then
  ``params.<key>`` (strings, exactly as MLflow holds them), ``tags.<key>`` and
  ``metrics.<key>`` (latest value of every metric, so the summary metrics
  ``metrics.solved``, ``metrics.solved_episode``, ``metrics.wall_seconds``...).
  The column names follow :func:`mlflow.search_runs`.
* ``episodes``: long per-episode table with columns ``run_id``, ``episode``,
  ``metric``, ``value`` (one row per run, episode and per-episode metric).

Requests: runs come from ``MlflowClient.search_runs`` in pages of 1000 (params,
tags and latest metrics arrive in bulk); the per-episode series come from each
run's own ``episodes.csv`` artifact, one download per run, in a small thread
pool. Only runs without that artifact fall back to ``get_metric_history``,
one request per per-episode metric.

Each usable run's cap and solve rule are read from its own params
(:mod:`analysis.rules`) into ``Loaded.rules``; a run made before those keys
existed gets today's CartPole values.

Runs that are not FINISHED, runs without a per-episode ``episode/steps``
series (or without the series their solve rule judges), runs whose solve rule
cannot be read, and older re-runs of a config (same ``config_hash`` tag) are
never mixed in: they are listed in ``left_out`` with the reason. Tag, metric
and artifact names, the store's location and the paged search are the run
contract's (``per_exp.contract``), shared with the trainer.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from per_exp import contract as C
from per_exp.errors import ConfigError

from .rules import RulesError, RunRules, run_rules

EPISODE_COLUMNS = ["run_id", "episode", "metric", "value"]
LEFT_OUT_COLUMNS = ["run_id", "run_name", "status", "reason"]


class LoadError(Exception):
    """Input the analysis cannot work with (unknown experiment, empty sweep...).

    The message is one line meant for the user; the CLI prints it and exits
    non-zero without a traceback.
    """


@dataclass
class Loaded:
    runs: pd.DataFrame
    episodes: pd.DataFrame
    left_out: pd.DataFrame
    experiment_name: str
    experiment_id: str
    tracking_uri: str
    sweep_ids: tuple[str, ...] = ()  # the --sweep runs given, if any
    n_found: int = 0  # job runs found (and selected by `where`) before anything was left out
    notes: list[str] = field(default_factory=list)
    rules: dict[str, RunRules] = field(default_factory=dict)  # run id -> its cap and solve rule
    where: tuple[tuple[str, str], ...] = ()  # the param selection applied, if any

    @property
    def sweep_id(self) -> str | None:
        """The one sweep analysed, None for the whole experiment or several sweeps."""
        return self.sweep_ids[0] if len(self.sweep_ids) == 1 else None


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The trainer's rule (`per_exp.contract.resolve_tracking_uri`); a refused URI is a LoadError.

    A URI with a secret in it is refused, as the trainer does: the report writes
    the URI into report.md (credentials go in MLFLOW_TRACKING_USERNAME/PASSWORD).
    """
    try:
        return C.resolve_tracking_uri(uri, key="--tracking-uri")
    except ConfigError as e:
        raise LoadError(str(e)) from None


def load_runs(
    experiment: str,
    sweep: str | Sequence[str] | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    workers: int = 4,
    where: Sequence[tuple[str, str]] = (),
) -> Loaded:
    """Load the job runs of ``experiment`` (or only the children of the sweep run(s) ``sweep``).

    ``where``: (param key, value) pairs a run must all match (its logged param string).
    Raises :class:`LoadError` with a one-line message for an unknown experiment
    or sweep id, an experiment/sweep without job runs, or when no run is usable.
    """
    sweeps = (sweep,) if isinstance(sweep, str) else tuple(sweep or ())
    uri = resolve_tracking_uri(tracking_uri)
    client = _client(uri)
    eid = _experiment_id(client, experiment, uri)
    jobs, place = _job_runs(client, eid, experiment, sweeps, uri, progress)
    if where:
        jobs = _selected(jobs, where, place)
    left = _LeftOut()
    usable = _latest_finished(jobs, left)
    rules = _readable_rules(usable, left)
    usable = [r for r in usable if r.info.run_id in rules]
    kept, frames, n_from_history = _episode_series(client, usable, rules, uri, workers, progress, left)
    if not kept:
        reasons = "; ".join(sorted({r.split(" (")[0] for r in left.reasons()})) or "none"
        raise LoadError(f"no usable runs in {place}: {len(jobs)} found, all left out ({reasons})")
    notes = []
    if n_from_history:
        notes.append(f"{n_from_history} run(s) had no episodes.csv; their series came from the metric history")
    if progress:
        _progress(f"analysis: {len(kept)} runs usable, {len(left.rows)} left out")
    return Loaded(
        runs=pd.DataFrame([_run_row(r) for r in kept]).reset_index(drop=True),
        episodes=_tidy_episodes(frames),
        left_out=left.frame(),
        experiment_name=experiment,
        experiment_id=eid,
        tracking_uri=uri,
        sweep_ids=sweeps,
        n_found=len(jobs),
        notes=notes,
        rules={r.info.run_id: rules[r.info.run_id] for r in kept},
        where=tuple(where),
    )


def _selected(jobs: list, where: Sequence[tuple[str, str]], place: str) -> list:
    """The runs whose params match every (key, value) of `where`."""
    picked = [r for r in jobs if all(r.data.params.get(k) == v for k, v in where)]
    if not picked:
        wanted = " ".join(f"{k}={v}" for k, v in where)
        raise LoadError(f"no job run in {place} matches --where {wanted} ({len(jobs)} runs there)")
    return picked


def _readable_rules(runs: list, left: _LeftOut) -> dict[str, RunRules]:
    """Each run's cap and solve rule; a run whose rule cannot be read is left out, saying why."""
    out = {}
    for r in runs:
        try:
            out[r.info.run_id] = run_rules(r.data.params)
        except RulesError as e:
            left.add(r, f"solve rule unreadable: {e}")
    return out


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    path = C.sqlite_path(uri)
    if path is not None and not path.exists():
        # MLflow would silently create an empty database here.
        raise LoadError(f"no MLflow store at {uri} (file {path} does not exist); pass --tracking-uri")
    return MlflowClient(tracking_uri=uri)


def _progress(msg: str, end: str = "\n") -> None:
    print(msg, file=sys.stderr, end=end, flush=True)


def _experiment_id(client, experiment: str, uri: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise LoadError(
            f"unknown experiment {experiment!r} at {uri}; experiments there: {', '.join(names) or '(none)'}"
        )
    return exp.experiment_id


def _job_runs(client, eid: str, experiment: str, sweeps: Sequence[str], uri: str, progress: bool) -> tuple[list, str]:
    """The job runs of the experiment (or of some sweeps), oldest first, and how to name where they came from."""
    from mlflow.exceptions import MlflowException

    if sweeps:
        found = []
        for sweep in dict.fromkeys(sweeps):
            try:
                parent = client.get_run(sweep)
            except MlflowException:
                raise LoadError(f"unknown sweep run id {sweep!r} at {uri}") from None
            if parent.info.experiment_id != eid:
                raise LoadError(f"sweep run {sweep!r} belongs to another experiment, not {experiment!r}")
            found += C.search_runs(client, eid, C.tag_equals(C.TAG_PARENT, sweep))
        found.sort(key=lambda r: r.info.start_time or 0)
        where = f"sweep {sweeps[0]}" if len(sweeps) == 1 else f"sweeps {', '.join(sweeps)}"
    else:
        where = f"experiment {experiment!r}"
        found = C.search_runs(client, eid, order_by=["attributes.start_time ASC"])
    if progress:
        _progress(f"analysis: found {len(found)} runs in {where} at {uri}")
    # sweep parents and the claims registry are bookkeeping, not jobs
    jobs = [r for r in found if r.data.tags.get(C.TAG_ROLE) not in C.BOOKKEEPING_ROLES]
    if not jobs:
        raise LoadError(f"{where} has no job runs")
    return jobs, where


class _LeftOut:
    """The runs left out of the analysis, each with the reason."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, run, reason: str) -> None:
        info = run.info
        self.rows.append({"run_id": info.run_id, "run_name": info.run_name, "status": info.status, "reason": reason})

    def reasons(self) -> list[str]:
        return [r["reason"] for r in self.rows]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=LEFT_OUT_COLUMNS)


def _latest_finished(jobs: list, left: _LeftOut) -> list:
    """The FINISHED runs, one per config hash (the latest re-run: a seed never counts twice)."""
    finished = []
    for r in jobs:
        if r.info.status != "FINISHED":
            left.add(r, f"status {r.info.status}")
        else:
            finished.append(r)
    latest: dict[str, Any] = {}
    for r in finished:  # oldest first
        h = r.data.tags.get(C.TAG_CONFIG_HASH)
        if h is None:
            latest[r.info.run_id] = r
            continue
        if h in latest:
            left.add(latest[h], f"superseded by re-run {r.info.run_id} (same {C.TAG_CONFIG_HASH})")
        latest[h] = r
    return list(latest.values())


def _episode_series(
    client, usable: list, rules: dict[str, RunRules], uri: str, workers: int, progress: bool, left: _LeftOut
) -> tuple[list, list[pd.DataFrame], int]:
    """(runs kept, their long per-episode frames, how many came from the metric history); one episodes.csv
    download per run, in parallel. A run without a learning curve (or the series its rule judges) is left out."""
    frames: list[pd.DataFrame] = []
    kept: list = []
    n_from_history = 0
    report = _progress_reporter(len(usable), progress)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [(r, pool.submit(_episodes_for, client, r, uri)) for r in usable]
        for r, fut in futures:
            df, how = fut.result()
            report()
            if df is None or df.empty:
                left.add(r, f"no per-episode series (no {C.ARTIFACT_EPISODES} and no metric history)")
                continue
            have = set(df["metric"])
            judged = rules[r.info.run_id].solve.curve_metric
            missing = [m for m in dict.fromkeys((C.CURVE_METRIC, judged)) if m not in have]
            if missing:
                left.add(r, f"no per-episode {missing[0]!r} series")
                continue
            n_from_history += how == "history"
            frames.append(df)
            kept.append(r)
    if progress and usable and sys.stderr.isatty():
        _progress("")
    return kept, frames, n_from_history


def _progress_reporter(total: int, progress: bool) -> Callable[[], None]:
    """A callable to call once per run loaded: one updating line on a terminal, about four lines elsewhere."""
    tty = sys.stderr.isatty()
    cr, end = ("\r", "") if tty else ("", "\n")
    every = max(1, total // 4)
    done = 0

    def report() -> None:
        nonlocal done
        done += 1
        if progress and (tty or done == total or done % every == 0):
            _progress(f"{cr}analysis: loading per-episode series {done}/{total}", end=end)

    return report


def _tidy_episodes(frames: list[pd.DataFrame]) -> pd.DataFrame:
    episodes = pd.concat(frames, ignore_index=True)[EPISODE_COLUMNS]
    episodes["episode"] = episodes["episode"].astype(int)
    episodes["value"] = episodes["value"].astype(float)
    return episodes.sort_values(["run_id", "metric", "episode"], ignore_index=True)


def _run_row(run) -> dict:
    """One run as a flat dict (the ``runs`` frame's row)."""
    info, data = run.info, run.data
    row = {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "parent_run_id": data.tags.get(C.TAG_PARENT),
    }
    row.update({f"params.{k}": v for k, v in data.params.items()})
    row.update({f"tags.{k}": v for k, v in data.tags.items()})
    row.update({f"metrics.{k}": v for k, v in data.metrics.items()})
    return row


def _episodes_from_csv(run, tracking_uri: str) -> pd.DataFrame | None:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{run.info.artifact_uri.rstrip('/')}/{C.ARTIFACT_EPISODES}",
                dst_path=tmp,
                tracking_uri=tracking_uri,
            )
        except (MlflowException, OSError):
            return None
        try:
            wide = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            return None
    if C.EPISODE_COLUMN not in wide.columns:
        return None
    long = wide.melt(id_vars=C.EPISODE_COLUMN, var_name="metric", value_name="value")
    long = long.rename(columns={C.EPISODE_COLUMN: "episode"})
    long = long.dropna(subset=["value"])
    long.insert(0, "run_id", run.info.run_id)
    return long


def _episodes_from_history(client, run) -> pd.DataFrame | None:
    """Fallback: one get_metric_history request per per-episode metric."""
    keys = [k for k in run.data.metrics if "/" in k]
    frames = []
    for key in keys:
        hist = client.get_metric_history(run.info.run_id, key)
        if hist:
            frames.append(
                pd.DataFrame(
                    {
                        "run_id": run.info.run_id,
                        "episode": [m.step for m in hist],
                        "metric": key,
                        "value": [m.value for m in hist],
                    }
                )
            )
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def _episodes_for(client, run, tracking_uri: str) -> tuple[pd.DataFrame | None, str]:
    df = _episodes_from_csv(run, tracking_uri)
    if df is not None:
        return df, "csv"
    return _episodes_from_history(client, run), "history"


def latest_sweep_parent(experiment: str, tracking_uri: str | None = None) -> str | None:
    """Run id of the most recently started sweep parent run in the experiment, if any."""
    uri = resolve_tracking_uri(tracking_uri)
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=C.tag_equals(C.TAG_ROLE, C.ROLE_SWEEP),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None
