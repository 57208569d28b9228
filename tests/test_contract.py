"""The run contract: one home for every name that crosses the store, the sweep file, the store's rules."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from per_exp import contract as C
from per_exp.config import flatten, science_params
from per_exp.engine.trainer import run_one
from per_exp.job import _summary_metrics
from tests.support.cli import ROOT, compose, compose_resolved


def _contract_strings() -> dict[str, str]:
    return {k: v for k, v in vars(C).items() if k.isupper() and not k.startswith("_") and isinstance(v, str)}


def _declared_metrics() -> set[str]:
    prefixes = ("EPISODE_", "TRAIN_", "PERF_", "SAMPLER_", "EVAL_")
    return {v for k, v in _contract_strings().items() if k.startswith(prefixes) and "/" in v}


@pytest.mark.parametrize("sampler", ["uniform", "linear_scan", "sumtree", "rank"])
def test_every_metric_the_trainer_logs_is_declared(sampler):
    logged: list[dict] = []
    s = run_one(
        compose([f"sampler={sampler}", "max_episodes=3", "tracking.enabled=false"]),
        on_episode=lambda e, m: logged.append(m),
    )
    keys = set().union(*logged)
    assert keys <= _declared_metrics(), keys - _declared_metrics()
    assert C.CURVE_METRIC in keys and C.EPISODE_COLUMN not in keys
    summary = set(_summary_metrics(s))
    declared_summary = {C.SOLVED, C.EPISODES, C.TOTAL_ENV_STEPS, C.UPDATES, C.WALL_SECONDS, C.SPS}
    assert declared_summary <= summary
    assert all(k in declared_summary or k == C.time_metric(k[5:-8]) for k in summary)


def test_the_max_priority_metric_says_its_unit():
    def last(sampler: str) -> dict:
        logged: list[dict] = []
        run_one(
            compose([f"sampler={sampler}", "max_episodes=3", "tracking.enabled=false"]),
            on_episode=lambda e, m: logged.append(m),
        )
        return logged[-1]

    proportional, rank = last("sumtree"), last("rank")
    assert C.SAMPLER_PRIORITY_MAX in proportional and C.SAMPLER_RANK_KEY_MAX not in proportional
    assert C.SAMPLER_RANK_KEY_MAX in rank and C.SAMPLER_PRIORITY_MAX not in rank
    assert C.SAMPLER_PRIORITY_MAX not in last("uniform") and C.SAMPLER_RANK_KEY_MAX not in last("uniform")


def test_the_params_analysis_reads_are_config_keys():
    params = science_params(compose_resolved([]))
    # the solve-rule keys added ahead of the env work (rule, threshold, window) are not config keys yet
    for key in (
        C.PARAM_SEED,
        C.PARAM_MAX_EPISODES,
        C.PARAM_SUCCESS_LENGTH,
        C.PARAM_ENV_MAX_STEPS,
        C.PARAM_SOLVE_MIN_LENGTH,
        C.PARAM_SOLVE_CONSECUTIVE,
    ):
        assert key in params, key
    assert set(params) <= set(flatten(compose_resolved([])))


def test_sweep_file_round_trip(tmp_path: Path):
    sf = C.SweepFile(
        uri="sqlite:////x/mlflow.db",
        experiment_id="3",
        parent_run_id="abc",
        checkpoint_root="/x/checkpoints",
        jobs=(C.SweepJob("seed=0", "h0"), C.SweepJob("seed=1", "h1"), C.SweepJob("seed=2", "h2")),
        groups=((0, 2), (1,)),
    )
    path = sf.write(tmp_path)
    assert path.name == C.SWEEP_FILE_NAME and json.loads(path.read_text())["version"] == C.SweepFile.VERSION
    back = C.SweepFile.read(tmp_path)
    assert back == sf and back.n_jobs == 3 and back.groups == ((0, 2), (1,))
    assert C.SweepFile.read(tmp_path / "elsewhere") is None


def test_a_sweep_file_of_another_version_is_refused_with_the_way_out(tmp_path: Path):
    # exactly what the sweep manager wrote before the file had a version
    old = {"uri": "sqlite:////x/mlflow.db", "experiment_id": "1", "parent_run_id": "p", "n_jobs": 1,
           "checkpoint_root": "/x", "jobs": [{"overrides": "seed=0", "config_hash": "h"}]}  # fmt: skip
    (tmp_path / C.SWEEP_FILE_NAME).write_text(json.dumps(old))
    with pytest.raises(C.SweepFileError) as e:
        C.SweepFile.read(tmp_path)
    msg = str(e.value)
    assert "version 1" in msg and f"version {C.SweepFile.VERSION}" in msg and "re-launch" in msg


def test_tracking_uri_resolution(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert C.resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert C.resolve_tracking_uri("sqlite:///sub/x.db") == f"sqlite:///{tmp_path / 'sub' / 'x.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert C.resolve_tracking_uri() == "http://127.0.0.1:5000"
    assert C.resolve_tracking_uri("sqlite:////abs/y.db") == "sqlite:////abs/y.db"  # the config key wins
    assert C.sqlite_path("sqlite:////abs/y.db") == Path("/abs/y.db") and C.sqlite_path("http://h:1") is None


def _python_files(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]


# The run contract, and the two small policy modules it and the report use (what may be
# written to a store, and the one-line bad-input error): data and rules, not the trainer.
ANALYSIS_MAY_IMPORT = ("per_exp.contract", "per_exp.credentials", "per_exp.errors")


def test_analysis_imports_only_the_contract_and_its_policies():
    for path in _python_files("analysis"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] == "per_exp":
                    assert name == "per_exp" or name.startswith(ANALYSIS_MAY_IMPORT), (
                        f"{path.relative_to(ROOT)} imports {name}"
                    )


def test_no_contract_name_is_spelled_out_anywhere_else():
    # the distinctive names (a metric key with "/", a per_exp or MLflow tag); generic words such as
    # "error" or "episodes" also name other things and are checked where they are used instead
    names = {v for v in _contract_strings().values() if "/" in v or v.startswith(("per_exp.", "mlflow."))}
    names -= {C.DEFAULT_STORE, C.UI_DEFAULT}  # addresses, also written in tests of other things
    here = Path(__file__).resolve()
    offenders = []
    for path in _python_files("per_exp", "analysis", "tests", "scripts"):
        if path.resolve() in (here, ROOT / "per_exp" / "contract.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert offenders == []
