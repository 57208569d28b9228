"""Grouped sweeps (the default): one launcher job trains a group of runs, each still its own MLflow run.

Real launches of `python -m per_exp.train -m ...` into real SQLite stores: a grouped
sweep's children equal an ungrouped sweep's (params, tags, metric series, artifacts),
a member that raises ends FAILED alone, a stopped group resumes every member to the
series it would have had, the joblib launcher runs groups in its workers, and bad
group keys are refused before any run exists.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from per_exp import contract as C
from tests.support.census import census, run_overrides
from tests.support.cli import run_cli
from tests.support.faults import finish, hook_env, start

pytestmark = pytest.mark.slow

SWEEP = ["-m", "seed=0,1,2", "max_episodes=12", "checkpoint.every_episodes=5"]
# what a clock decides, not the run's config and seed
CLOCKED = {C.PERF_SPS, C.WALL_SECONDS, C.SPS, *C.CLOCK_METRICS}


def _deterministic(key: str) -> bool:
    return key not in CLOCKED and not key.startswith(C.time_metric("").split("/")[0] + "/")


def _science(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.startswith(("group.", "tracking.uri="))]


def _by_seed(uri: str) -> dict[int, object]:
    return {int(r.data.params["seed"]): r for r in census(uri).jobs}


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def _series(client: MlflowClient, run) -> dict[str, list[tuple[int, float]]]:
    return {
        k: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, k), key=lambda m: m.step)]
        for k in run.data.metrics
        if _deterministic(k)
    }


@pytest.fixture(scope="module")
def grouped(tmp_path_factory) -> str:
    """The reference: a grouped sweep of 3 seeds on 2 slots (seed 2 enters when the first run ends)."""
    tmp = tmp_path_factory.mktemp("grouped")
    uri = f"sqlite:///{tmp}/mlflow.db"
    p = run_cli([*SWEEP, "group.slots=2", f"tracking.uri={uri}"], cwd=tmp)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert "3 jobs" in out and "1 launcher job(s), each a group of runs trained 2 at a time" in out
    assert "Launching 1 jobs locally" in out
    return uri


def test_a_grouped_sweep_logs_each_run_as_an_ungrouped_sweep_does(tmp_path: Path, grouped: str):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    p = run_cli([*SWEEP, "group.enabled=false", f"tracking.uri={uri}"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert "one launcher job per run" in out and "Launching 3 jobs locally" in out
    alone, together = _by_seed(uri), _by_seed(grouped)
    assert sorted(alone) == sorted(together) == [0, 1, 2]
    ca, cg = MlflowClient(uri), MlflowClient(grouped)
    for seed in (0, 1, 2):
        a, g = alone[seed], together[seed]
        assert a.info.status == g.info.status == "FINISHED"
        assert a.info.run_name == g.info.run_name == f"s{seed}-sumtree-dueling"
        assert a.data.params == g.data.params
        assert set(a.data.tags) == set(g.data.tags)
        for key in (C.TAG_CONFIG_HASH, C.TAG_ROLE):
            assert a.data.tags[key] == g.data.tags[key], key
        # how each trained (its wall_seconds were shared with the other slot or not)
        assert json.loads(a.data.tags[C.TAG_GROUP]) == {"slots": 1, "runs": 1}
        assert json.loads(g.data.tags[C.TAG_GROUP]) == {"slots": 2, "runs": 3}
        # each run's own overrides (the two sweeps differ only in how they are kept)
        assert _science(a.data.tags[C.TAG_OVERRIDES].split()) == _science(g.data.tags[C.TAG_OVERRIDES].split())
        assert f"seed={seed}" in g.data.tags[C.TAG_OVERRIDES].split()
        sa, sg = _series(ca, a), _series(cg, g)
        assert C.EPISODE_STEPS in sa and len(sa[C.EPISODE_STEPS]) == 12
        assert sa == sg, f"seed {seed}: the grouped run's series differ from the run's alone"
        assert {k: v for k, v in a.data.metrics.items() if _deterministic(k)} == {
            k: v for k, v in g.data.metrics.items() if _deterministic(k)
        }
        arts = _artifacts(ca, a.info.run_id)
        assert arts == _artifacts(cg, g.info.run_id)
        assert {"config.yaml", "episodes.csv", "hydra/config.yaml", "hydra/overrides.yaml", "hydra/hydra.yaml"} <= arts
        assert _science(run_overrides(uri, a.info.run_id)) == _science(run_overrides(grouped, g.info.run_id))
        config_a = Path(ca.download_artifacts(a.info.run_id, "config.yaml", str(tmp_path / f"a{seed}")))
        config_g = Path(cg.download_artifacts(g.info.run_id, "config.yaml", str(tmp_path / f"g{seed}")))
        kept_a, kept_g = yaml.safe_load(config_a.read_text()), yaml.safe_load(config_g.read_text())
        for kept in (kept_a, kept_g):  # how each sweep was kept (store, grouping), not what was learned
            kept["tracking"].pop("uri"), kept.pop("group")
        assert kept_a == kept_g
        hydra_yaml = yaml.safe_load(
            Path(cg.download_artifacts(g.info.run_id, "hydra/hydra.yaml", str(tmp_path / f"h{seed}"))).read_text()
        )
        assert f"seed={seed}" in hydra_yaml["hydra"]["overrides"]["task"]


def test_a_member_that_raises_ends_failed_alone_and_a_relaunch_skips_the_finished(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # fail_at_episode is a per-run key: the four runs share one group on 4 slots
    args = ["-m", "seed=0,1", "fail_at_episode=-1,4", "max_episodes=10", "group.slots=4", f"tracking.uri={uri}"]
    p = run_cli(args, cwd=tmp_path)
    assert p.returncode == 1, p.stderr[-3000:]
    assert "Launching 1 jobs locally" in p.stdout + p.stderr and "2/4 jobs FINISHED" in p.stderr
    runs = census(uri).jobs
    assert len(runs) == 4
    for r in runs:
        failing = r.data.params["fail_at_episode"] == "4"
        assert r.info.status == ("FAILED" if failing else "FINISHED"), r.data.params
        if failing:
            assert "fail_at_episode=4" in r.data.tags[C.TAG_ERROR]
        else:
            assert r.data.metrics[C.EPISODES] == 10
    finished = {r.info.run_id for r in runs if r.info.status == "FINISHED"}
    again = run_cli(args, cwd=tmp_path)
    assert again.returncode == 1
    assert "2 already FINISHED (skipped" in again.stdout + again.stderr
    after = census(uri)
    assert len(after.jobs) == 4 and len(after.by_hash()) == 4  # nothing trained twice, nothing new
    assert {r.info.run_id for r in after.jobs if r.info.status == "FINISHED"} == finished


def test_a_stopped_group_resumes_every_member_to_the_series_it_would_have_had(tmp_path: Path, grouped: str):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = [*SWEEP, "group.slots=2", f"tracking.uri={uri}"]
    # SIGTERM when s1 begins its 7th episode: s0 and s1 checkpoint at their next episode end and end KILLED;
    # s2 waits in the queue and never starts
    env = hook_env(tmp_path, PER_EXP_TEST_SIGNAL="s1-sumtree-dueling:6:15", PER_EXP_TEST_SLOW="0.05")
    log = tmp_path / "first.log"
    rc = finish(start(args, tmp_path, env, log))
    text = log.read_text()
    assert rc == 128 + signal.SIGTERM, text[-3000:]
    first = _by_seed(uri)
    assert sorted(first) == [0, 1], "the queued run must not start after the stop"
    assert {r.info.status for r in first.values()} == {"KILLED"}
    assert "Traceback" not in text
    log2 = tmp_path / "second.log"
    assert finish(start(args, tmp_path, hook_env(tmp_path), log2)) == 0, log2.read_text()[-3000:]
    assert "2 to resume, 1 new" in log2.read_text()
    resumed, reference = _by_seed(uri), _by_seed(grouped)
    c, cr = MlflowClient(uri), MlflowClient(grouped)
    for seed in (0, 1, 2):
        r = resumed[seed]
        assert r.info.status == "FINISHED"
        if seed < 2:
            assert r.info.run_id == first[seed].info.run_id and r.data.tags[C.TAG_RESUMES] == "1"
        assert _series(c, r)[C.EPISODE_STEPS] == _series(cr, reference[seed])[C.EPISODE_STEPS]
        assert _series(c, r)[C.EPISODE_RETURN] == _series(cr, reference[seed])[C.EPISODE_RETURN]


def test_the_joblib_launcher_runs_one_group_per_worker_job(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "seed=0,1,2,3",
        "max_episodes=8",
        "group.max_runs=2",
        f"hydra.sweep.dir={sweep_dir}",
        f"tracking.uri={uri}",
    ]
    p = run_cli(args, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 launcher job(s)" in p.stdout + p.stderr and "4/4 jobs FINISHED" in p.stderr
    runs = census(uri).jobs
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    # two groups, two worker jobs: each pair of seeds shares a process, and each run its own output folder
    pids: dict[str, set[int]] = {}
    for r in runs:
        pids.setdefault(r.data.tags[C.TAG_PID], set()).add(int(r.data.params["seed"]))
    assert sorted(map(sorted, pids.values())) == [[0, 1], [2, 3]]
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["0", "1"]
    assert sorted(p.name for p in (sweep_dir / "1").iterdir() if p.name.isdigit()) == ["2", "3"]


@pytest.mark.parametrize(
    ("override", "allowed"),
    [("group.slots=0", "an integer >= 1"), ("group.max_runs=-1", "an integer >= 0 (0: no limit)")],
)
def test_bad_group_keys_are_refused_before_any_run_exists(tmp_path: Path, override: str, allowed: str):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    p = run_cli(["-m", "seed=0,1", override, f"tracking.uri={uri}"], cwd=tmp_path)
    assert p.returncode == 2, p.stderr[-2000:]
    key, value = override.split("=")
    line = next(x for x in p.stderr.splitlines() if x.startswith("error:"))
    assert key in line and value in line and allowed in line
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "mlflow.db").exists() or not census(uri).jobs
