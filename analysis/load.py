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

Runs that are not FINISHED, runs without a per-episode ``episode/steps``
series, and older re-runs of a config (same ``config_hash`` tag) are never
mixed in: they are listed in ``left_out`` with the reason.
"""

from __future__ import annotations

import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from per_exp import credentials
from per_exp.config import ConfigError

#: the learning-curve quantity; a run without it cannot be analysed
CURVE_METRIC = "episode/steps"
ROLE_TAG = "per_exp.role"
SWEEP_TAG = "per_exp.sweep_id"
PARENT_TAG = "mlflow.parentRunId"
EPISODES_ARTIFACT = "episodes.csv"


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
    sweep_id: str | None = None  # the --sweep given, if any
    n_found: int = 0  # job runs found before anything was left out
    notes: list = field(default_factory=list)


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The trainer's rule: explicit URI, else $MLFLOW_TRACKING_URI, else ./mlflow.db.

    A URI with a secret in it is refused, as the trainer does: the report writes
    the URI into report.md (credentials go in MLFLOW_TRACKING_USERNAME/PASSWORD).
    """
    key = "--tracking-uri" if uri else "MLFLOW_TRACKING_URI"
    resolved = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///" + os.path.abspath("mlflow.db")
    try:
        credentials.check_uri(key, resolved)
    except ConfigError as e:
        raise LoadError(str(e)) from None
    return resolved


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if not os.path.exists(path):
            # MLflow would silently create an empty database here.
            raise LoadError(f"no MLflow store at {uri} (file {path} does not exist); pass --tracking-uri")
    return MlflowClient(tracking_uri=uri)


def _progress(msg: str, end: str = "\n") -> None:
    print(msg, file=sys.stderr, end=end, flush=True)


def _search_all(client, experiment_id: str, filter_string: str = "") -> list:
    from mlflow.entities import ViewType

    out, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        out.extend(page)
        token = page.token
        if not token:
            return out


def run_row(run) -> dict:
    """One run as a flat dict (the ``runs`` frame's row)."""
    info, data = run.info, run.data
    row = {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "parent_run_id": data.tags.get(PARENT_TAG),
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
                artifact_uri=f"{run.info.artifact_uri.rstrip('/')}/{EPISODES_ARTIFACT}",
                dst_path=tmp,
                tracking_uri=tracking_uri,
            )
        except (MlflowException, OSError):
            return None
        try:
            wide = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            return None
    if "episode" not in wide.columns:
        return None
    long = wide.melt(id_vars="episode", var_name="metric", value_name="value")
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


EPISODE_COLUMNS = ["run_id", "episode", "metric", "value"]


def load_runs(
    experiment: str,
    sweep: str | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    workers: int = 4,
) -> Loaded:
    """Load the job runs of ``experiment`` (or only the children of sweep run ``sweep``).

    Raises :class:`LoadError` with a one-line message for an unknown experiment
    or sweep id, an experiment/sweep without job runs, or when no run is usable.
    """
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise LoadError(
            f"unknown experiment {experiment!r} at {uri}; experiments there: {', '.join(names) or '(none)'}"
        )
    eid = exp.experiment_id
    if sweep:
        try:
            parent = client.get_run(sweep)
        except MlflowException:
            raise LoadError(f"unknown sweep run id {sweep!r} at {uri}") from None
        if parent.info.experiment_id != eid:
            raise LoadError(f"sweep run {sweep!r} belongs to another experiment, not {experiment!r}")
        found = _search_all(client, eid, f"tags.`{PARENT_TAG}` = '{sweep}'")
        where = f"sweep {sweep}"
    else:
        found = _search_all(client, eid)
        where = f"experiment {experiment!r}"
    if progress:
        _progress(f"analysis: found {len(found)} runs in {where} at {uri}")
    # sweep parents are bookkeeping, not jobs
    jobs = [r for r in found if r.data.tags.get(ROLE_TAG) != "sweep"]
    if not jobs:
        raise LoadError(f"{where} has no job runs")

    left: list[dict] = []

    def leave(run, reason):
        left.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "status": run.info.status,
                "reason": reason,
            }
        )

    finished = []
    for r in jobs:
        if r.info.status != "FINISHED":
            leave(r, f"status {r.info.status}")
        else:
            finished.append(r)

    # re-runs of the same config and seed: keep the latest, never count a seed twice
    latest: dict[str, object] = {}
    for r in finished:  # sorted by start time ascending
        h = r.data.tags.get("config_hash")
        if h is None:
            latest[r.info.run_id] = r
            continue
        if h in latest:
            old = latest[h]
            leave(old, f"superseded by re-run {r.info.run_id} (same config_hash)")
        latest[h] = r
    usable = list(latest.values())

    # per-episode series: one episodes.csv per run, in parallel
    frames, n_done, used = [], 0, {"csv": 0, "history": 0}
    tty = sys.stderr.isatty()
    cr, end = ("\r", "") if tty else ("", "\n")
    step = max(1, len(usable) // 4)  # a non-terminal gets about four progress lines
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [(r, pool.submit(_episodes_for, client, r, uri)) for r in usable]
        kept = []
        for r, fut in futures:
            df, how = fut.result()
            n_done += 1
            if progress and (tty or n_done == len(usable) or n_done % step == 0):
                _progress(f"{cr}analysis: loading per-episode series {n_done}/{len(usable)}", end=end)
            if df is None or df.empty:
                leave(r, "no per-episode series (no episodes.csv and no metric history)")
                continue
            if CURVE_METRIC not in set(df["metric"]):
                leave(r, f"no per-episode {CURVE_METRIC!r} series")
                continue
            used[how] += 1
            frames.append(df)
            kept.append(r)
    if progress and usable and tty:
        _progress("")

    left_out = pd.DataFrame(left, columns=["run_id", "run_name", "status", "reason"])
    if not kept:
        reasons = "; ".join(sorted(set(left_out["reason"].str.split(" \\(").str[0]))) or "none"
        raise LoadError(f"no usable runs in {where}: {len(jobs)} found, all left out ({reasons})")

    runs = pd.DataFrame([run_row(r) for r in kept])
    runs = runs[[c for c in runs.columns]].reset_index(drop=True)
    episodes = pd.concat(frames, ignore_index=True)[EPISODE_COLUMNS]
    episodes["episode"] = episodes["episode"].astype(int)
    episodes["value"] = episodes["value"].astype(float)
    episodes = episodes.sort_values(["run_id", "metric", "episode"], ignore_index=True)
    notes = []
    if used["history"]:
        notes.append(f"{used['history']} run(s) had no episodes.csv; their series came from the metric history")
    if progress:
        _progress(f"analysis: {len(runs)} runs usable, {len(left_out)} left out")
    return Loaded(
        runs=runs,
        episodes=episodes,
        left_out=left_out,
        experiment_name=experiment,
        experiment_id=eid,
        tracking_uri=uri,
        sweep_id=sweep,
        n_found=len(jobs),
        notes=notes,
    )


def latest_sweep_parent(experiment: str, tracking_uri: str | None = None) -> str | None:
    """Run id of the most recently started sweep parent run in the experiment, if any."""
    uri = resolve_tracking_uri(tracking_uri)
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{ROLE_TAG}` = 'sweep'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def curves(episodes: pd.DataFrame, metric: str = CURVE_METRIC) -> pd.DataFrame:
    """Wide view of one per-episode metric: index episode, one column per run_id."""
    sub = episodes[episodes["metric"] == metric]
    return sub.pivot(index="episode", columns="run_id", values="value").sort_index()
