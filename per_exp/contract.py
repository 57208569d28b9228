"""The run contract: what a per_exp run is in MLflow, written by the trainer side and read by analysis.

Every tag name, metric key, artifact name and param key that crosses the
store is declared here once; the trainer, the job, the sweep manager,
`analysis/` and the tests import them (no string literal of one anywhere
else). So are the two rules that both sides apply to a store: where it is
(`resolve_tracking_uri`) and how to list its runs (`search_runs`). The
sweep file, which the sweep manager writes and each job reads, is the typed
and versioned `SweepFile`.

This module is data plus three small functions, standard library only:
`analysis/` may import it (and nothing else of per_exp).

Metrics
-------
Per episode, logged at ``step = episode`` and kept in the ``episodes.csv``
artifact (one row per episode, column ``episode``):

====================================  =========================================================
``episode/steps``                     episode length (the learning curve)
``episode/return``                    sum of the (shaped) rewards
``episode/epsilon``                   exploration rate used
``train/beta``                        IS exponent at the episode's end
``train/updates``                     gradient updates so far
``train/loss``                        mean loss of the episode's updates (absent: no update)
``train/td_abs_mean``                 mean |TD error| of those updates (absent: no update)
``perf/sps``                          env steps per second of wall time in the episode
``sampler/sample_seconds``            time spent drawing batches in the episode
``sampler/update_seconds``            time spent writing priorities in the episode
``sampler/priority_max``              proportional samplers (linear_scan, sumtree): the largest
                                      priority ever written, (|delta| + eps) ** alpha, which
                                      new transitions get with ``new_priority=max``
``sampler/rank_key_max``              rank sampler: the largest |delta| ever written (its sort
                                      key; new transitions get it with ``new_priority=max``).
                                      Runs made before this key existed logged it as
                                      ``sampler/priority_max``.
``sampler/is_weight_mean``, ``_max``  prioritized samplers: IS weights of the episode's batches
``eval/return``                       greedy evaluation (logged at the training episode after
                                      which it ran, only on evaluation episodes): mean over the
                                      evaluation episodes of the env's own, unshaped return
``eval/length``                       the same evaluation's mean episode length
====================================  =========================================================

Summary, logged once at step 0 when the run finishes: ``solved`` (1/0),
``solved_episode`` (only when solved), ``episodes``, ``total_env_steps``,
``updates``, ``wall_seconds``, ``sps`` and ``time/<part>_seconds`` for each
part of the loop.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from per_exp import credentials

# --------------------------------------------------------------------------- tags
TAG_ROLE = "per_exp.role"  # ROLE_JOB, ROLE_SWEEP or ROLE_CLAIMS
ROLE_JOB = "job"
ROLE_SWEEP = "sweep"
ROLE_CLAIMS = "claims"  # the experiment's claims registry (per_exp.claims): bookkeeping, not a job
#: runs that are bookkeeping, never a job to analyse
BOOKKEEPING_ROLES = (ROLE_SWEEP, ROLE_CLAIMS)
TAG_PARENT = "mlflow.parentRunId"  # MLflow's own: groups a sweep's jobs under its parent run in the UI
TAG_SWEEP_ID = "per_exp.sweep_id"  # a job's sweep (the parent run id)
TAG_CONFIG_HASH = "config_hash"  # a job's identity (per_exp.config.config_hash)
TAG_SWEEP_HASH = "per_exp.sweep_hash"  # a sweep's identity: the set of its jobs' config hashes
TAG_RESUMES = "per_exp.resumes"  # how many times a job run was continued after a stop
TAG_RESUMED_FROM = "per_exp.resumed_from_episode"  # the episode the last continuation started at
TAG_HOST = "per_exp.host"  # the host and pid of the process holding a RUNNING job run
TAG_PID = "per_exp.pid"
# under Slurm: the job id (`<array id>_<task>`, kept across requeues) and Slurm's restart count;
# a run continued by its requeued job keeps the id and shows a higher count (per_exp.slurm)
TAG_SLURM_JOB_ID = "per_exp.slurm_job_id"
TAG_SLURM_RESTARTS = "per_exp.slurm_restarts"
TAG_LAUNCHES = "per_exp.launches"  # how many times a sweep was launched (re-launching resumes it)
TAG_SWEEP_DIR = "per_exp.sweep_dir"  # a sweep's Hydra folder, on the launching machine
TAG_N_JOBS = "per_exp.n_jobs"  # jobs in a sweep
TAG_ERROR = "error"  # why a run FAILED or was KILLED (its last attempt)
TAG_OVERRIDES = "hydra.overrides"  # a job's command-line overrides
TAG_GIT_COMMIT = "git.commit"
TAG_GIT_DIRTY = "git.dirty"
TAG_VERSION_PREFIX = "versions."  # versions.<package>
# On experiments, MLflow's own: without it MLflow 3 treats an experiment as GenAI (traces), not runs
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"  # MLflow 3.17's value for classic model training
# every code version that wrote into a job run, in order: JSON list of {"commit", "dirty", "diff",
# "machine", "from_episode" (where that version's training started), "first_new_step" (its first point in the
# store; earlier steps were written by the versions before it)}. TAG_GIT_COMMIT stays the first's.
TAG_CODE_HISTORY = "per_exp.code_history"
# the machine a job run started on: CPU and BLAS kernels (per_exp.machine); each segment of
# TAG_CODE_HISTORY also has its own "machine", and a run continued elsewhere gets a new segment
TAG_MACHINE = "per_exp.machine"
# the engine a job run trained in (its last attempt's): JSON {"slots": K, "runs": N}; {"slots": 1, "runs": 1}
# is a run trained alone. With K > 1 its wall_seconds were shared with the other slots' runs.
TAG_GROUP = "per_exp.group"


def group_tag(slots: int, runs: int) -> str:
    return json.dumps({"slots": slots, "runs": runs}, separators=(",", ":"))


TAG_CHECKPOINT_REFUSED = "per_exp.checkpoint_refused"  # why the run's checkpoint was refused (restarted at 0)

# --------------------------------------------------------------------------- the claims registry
# One run per experiment (TAG_ROLE = ROLE_CLAIMS) records who trains which config hash; see
# per_exp.claims for the protocol. Its id is the experiment tag EXPERIMENT_TAG_CLAIMS_RUN.
EXPERIMENT_TAG_CLAIMS_RUN = "per_exp.claims_run"
CLAIMS_RUN_NAME = ".per_exp-claims"
CLAIMS_ELECTION_PREFIX = ".per_exp-claims-election-"  # + experiment id: the registry's election
PARAM_LEASE_PREFIX = "lease."  # lease.<config hash>.<epoch> = JSON {owner, nonce, t}
TAG_HEARTBEAT_PREFIX = "heartbeat."  # heartbeat.<config hash> = JSON {epoch, t, nonce[, released]}
PARAM_SWEEP_PARENT_PREFIX = "sweep."  # sweep.<sweep hash>.<n> = the sweep's parent run id

# --------------------------------------------------------------------------- exit codes of a launch
EXIT_OK = 0  # every job FINISHED (or skipped as FINISHED)
EXIT_FAILED = 1  # a job failed or was stopped, or the store was lost
EXIT_BAD_INPUT = 2  # refused before any run exists
EXIT_HELD_ELSEWHERE = 3  # nothing failed, but jobs are held (being trained) by another live launch

# --------------------------------------------------------------------------- metrics, per episode
EPISODE_STEPS = "episode/steps"
EPISODE_RETURN = "episode/return"
EPISODE_EPSILON = "episode/epsilon"
TRAIN_BETA = "train/beta"
TRAIN_UPDATES = "train/updates"
TRAIN_LOSS = "train/loss"
TRAIN_TD_ABS_MEAN = "train/td_abs_mean"
PERF_SPS = "perf/sps"
SAMPLER_SAMPLE_SECONDS = "sampler/sample_seconds"
SAMPLER_UPDATE_SECONDS = "sampler/update_seconds"
SAMPLER_PRIORITY_MAX = "sampler/priority_max"
SAMPLER_RANK_KEY_MAX = "sampler/rank_key_max"
SAMPLER_IS_WEIGHT_MEAN = "sampler/is_weight_mean"
SAMPLER_IS_WEIGHT_MAX = "sampler/is_weight_max"
EVAL_RETURN = "eval/return"
EVAL_LENGTH = "eval/length"
#: the learning curve: a run without this series cannot be analysed
CURVE_METRIC = EPISODE_STEPS
#: per-episode metrics whose values depend on the clock, not on the computation
CLOCK_METRICS = (PERF_SPS, SAMPLER_SAMPLE_SECONDS, SAMPLER_UPDATE_SECONDS)

# --------------------------------------------------------------------------- metrics, summary (step 0)
SOLVED = "solved"
SOLVED_EPISODE = "solved_episode"
EPISODES = "episodes"
TOTAL_ENV_STEPS = "total_env_steps"
UPDATES = "updates"
WALL_SECONDS = "wall_seconds"
SPS = "sps"


def time_metric(part: str) -> str:
    """Summary metric of the seconds spent in one part of the loop (act, env, sample, update...)."""
    return f"time/{part}_seconds"


# --------------------------------------------------------------------------- artifacts
ARTIFACT_CONFIG = "config.yaml"  # the resolved config
ARTIFACT_EPISODES = "episodes.csv"  # the episode table: EPISODE_COLUMN, then one column per metric
EPISODE_COLUMN = "episode"
ARTIFACT_HYDRA_DIR = "hydra"  # Hydra's .hydra/ folder of the job
ARTIFACT_MODEL_DIR = "model"  # holds MODEL_FILE, the online network's state_dict
MODEL_FILE = "model.pt"
ARTIFACT_ERROR = "error.txt"  # the traceback of a failed run
ARTIFACT_REPORT_DIR = "report"  # analysis.report's output, on the sweep's parent run

# --------------------------------------------------------------------------- params read by analysis
# Params are the run's config flattened with dotted keys (per_exp.config.science_params);
# these are the ones analysis/ reads by name.
PARAM_SEED = "seed"
PARAM_MAX_EPISODES = "max_episodes"  # the run's episode cap
PARAM_SUCCESS_LENGTH = "env.success_length"
PARAM_ENV_MAX_STEPS = "env.max_steps"  # the time limit: the scale of episode lengths and returns
# The solve rule, read per run, so that runs under different rules are never compared silently.
# A run without PARAM_SOLVE_RULE (every run made before the key existed, and a config that keeps
# it at its neutral value) solved by SOLVE_RULE_LENGTH: PARAM_SOLVE_CONSECUTIVE episodes in a row
# at least PARAM_SOLVE_MIN_LENGTH long (CartPole's rule; without those keys 10 and 196).
# SOLVE_RULE_MEAN_RETURN: the mean PARAM_SOLVE_WINDOW-episode return (default 100) reaches
# PARAM_SOLVE_THRESHOLD (gymnasium's reward_threshold: Acrobot-v1, MountainCar-v0).
PARAM_SOLVE_RULE = "solve.rule"
SOLVE_RULE_LENGTH = "length"
SOLVE_RULE_MEAN_RETURN = "mean_return"
PARAM_SOLVE_MIN_LENGTH = "solve.min_length"
PARAM_SOLVE_CONSECUTIVE = "solve.consecutive"
PARAM_SOLVE_THRESHOLD = "solve.return_threshold"
PARAM_SOLVE_WINDOW = "solve.window"

# --------------------------------------------------------------------------- the store
DEFAULT_STORE = "sqlite:///mlflow.db"  # MLflow's own default: a SQLite file in the launch folder
_SQLITE = "sqlite:///"


def resolve_tracking_uri(uri: str | None = None, key: str = "tracking.uri") -> str:
    """The store: `uri` if given, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here.

    A relative SQLite path is made absolute, so that workers started in another
    folder (joblib, submitit) and the analysis see the same file. A URI with a
    secret in it is refused (ConfigError naming `key`, or MLFLOW_TRACKING_URI
    when the value came from there): it would be written to config.yaml, tags,
    logs and reports.
    """
    if uri:
        credentials.check_uri(key, uri)
    else:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE
        credentials.check_uri("MLFLOW_TRACKING_URI", uri)
    if uri.startswith(_SQLITE) and not uri.startswith(_SQLITE + "/"):
        path = uri[len(_SQLITE) :]
        if not os.path.isabs(path):
            uri = _SQLITE + str(Path(path).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The file of a SQLite store URI, None for any other store."""
    return Path(uri[len(_SQLITE) :]) if uri.startswith(_SQLITE) else None


def search_runs(client: Any, experiment_id: str, filter_string: str = "", order_by: Sequence[str] = ()) -> list:
    """Every live run of the experiment matching `filter_string`, following MLflow's pages."""
    from mlflow.entities import ViewType

    out: list = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=list(order_by) or None,
            page_token=token,
        )
        out.extend(page)
        token = page.token
        if not token:
            return out


def tag_equals(tag: str, value: str) -> str:
    """An MLflow filter clause: the run's `tag` is `value`."""
    return f"tags.`{tag}` = '{value}'"


# --------------------------------------------------------------------------- the UI
UI_DEFAULT = "http://127.0.0.1:5000"  # where a plain `mlflow ui` serves


def runs_url(ui: str, experiment_id: str, parent_run_id: str) -> str:
    """The address of a sweep's runs in the MLflow UI at `ui`, opening on the runs table.

    `workflowType=machine_learning` is needed: MLflow 3.17's sidebar switch starts on GenAI in a
    new browser and then wins over the experiment's `TAG_EXPERIMENT_KIND`.
    """
    query = urllib.parse.urlencode(
        {"workflowType": "machine_learning", "searchFilter": tag_equals(TAG_PARENT, parent_run_id)},
        quote_via=urllib.parse.quote,
    )
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


# --------------------------------------------------------------------------- the sweep file
SWEEP_FILE_NAME = ".per_exp_sweep.json"


class SweepFileError(ValueError):
    """A sweep file this version of per_exp cannot read."""


@dataclass(frozen=True)
class SweepJob:
    overrides: str  # the overrides that set this job apart from the sweep's others
    config_hash: str


@dataclass(frozen=True)
class SweepFile:
    """What the sweep manager sets up for a multirun, in `<sweep dir>/.per_exp_sweep.json`.

    Written once on the launching machine before any job starts; each job
    reads it to attach to the same store, experiment and parent run.
    """

    # 1: the untyped dict before issue 10 (no "version" key); 2: no claims_run_id, launcher; 3: no groups
    VERSION = 4

    uri: str  # the resolved tracking URI
    experiment_id: str
    parent_run_id: str
    checkpoint_root: str  # resolved on the launching machine
    jobs: tuple[SweepJob, ...] = field(default_factory=tuple)
    claims_run_id: str = ""  # the experiment's claims registry run (per_exp.claims)
    launcher: dict[str, Any] = field(default_factory=dict)  # the launching process (per_exp.owner.Owner)
    # a grouped sweep (per_exp.grouping): launcher job i trains the jobs groups[i] (indexes into `jobs`);
    # empty: one launcher job per job
    groups: tuple[tuple[int, ...], ...] = ()

    @property
    def n_jobs(self) -> int:
        return len(self.jobs)

    @staticmethod
    def path(sweep_dir: str | Path) -> Path:
        return Path(sweep_dir) / SWEEP_FILE_NAME

    def write(self, sweep_dir: str | Path) -> Path:
        p = self.path(sweep_dir)
        p.write_text(json.dumps({"version": self.VERSION, **asdict(self)}, indent=2))
        return p

    @classmethod
    def read(cls, sweep_dir: str | Path) -> SweepFile | None:
        """The sweep file in `sweep_dir`, None if there is none; SweepFileError if it is of another version."""
        p = cls.path(sweep_dir)
        if not p.exists():
            return None
        data = json.loads(p.read_text())
        version = data.pop("version", 1)
        if version != cls.VERSION:
            raise SweepFileError(
                f"sweep file {p} has version {version}, this per_exp reads version {cls.VERSION}: "
                "it was written by another per_exp; re-launch the sweep with this one (jobs already "
                "FINISHED are skipped, others resume)"
            )
        jobs = tuple(SweepJob(**j) for j in data.pop("jobs"))
        groups = tuple(tuple(int(i) for i in g) for g in data.pop("groups"))
        return cls(jobs=jobs, groups=groups, **data)
