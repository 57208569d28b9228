"""scripts/study_results.py regenerates the results page from a real store made by the real study preset."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import ROOT


@pytest.mark.slow
def test_the_results_page_is_regenerated_from_a_real_study_store(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # the study's own launch script, two sweeps of one seed each, on a cut-down design
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(STORE=str(tmp_path / "mlflow.db"), FIRST="0", LAST="1", STEP="1", JOBS="1", PYTHON=sys.executable)
    launch = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "run_study.sh"),
            "ablation=uniform,per",
            "max_episodes=3",
            "eval.every_episodes=2",
            "eval.episodes=1",
            "checkpoint.every_episodes=0",
            "tracking.log_model=false",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = launch.stdout
    assert launch.returncode == 0 and "seed 1 rc 0 wall" in log, log + launch.stderr[-2000:]
    assert "seed 0 rc 0 wall" in log, (log, (tmp_path / "logs" / "seed_0.log").read_text()[-3000:])
    (tmp_path / "study.log").write_text(log)
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- study-answer: written by scripts/study_results.py -->\nOLD-ANSWER\n<!-- /study-answer -->\nrest\n"
    )
    docs = tmp_path / "docs"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "study_results.py"),
            "--tracking-uri",
            uri,
            "--out",
            str(docs),
            "--reps",
            "200",
            "--readme",
            str(readme),
            "--launch-log",
            str(tmp_path / "study.log"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    page = (docs / "results.md").read_text()
    # both tasks, the design's comparison, the provenance
    assert "## cartpole_v0" in page and "## acrobot_v1" in page
    assert "`per` vs `uniform`" in page and "commit: `" in page
    # the machine is the runs' own record (tag per_exp.machine), not the regenerating machine's
    machine_line = next(line for line in page.splitlines() if line.startswith("- machine: "))
    assert "kernels (" in machine_line and "runs)" in machine_line and "not recorded" not in machine_line
    # the wall time is the launch log's: two sweeps of one seed, one job at a time
    assert "the sum of 2 sweeps' wall times" in page and "seeds 0-1: 2 sweep(s) of one seed" in page
    for env in ("cartpole_v0", "acrobot_v1"):
        for fig in ("curves", "steps_to_solve", "auc_steps"):
            assert (docs / "img" / "results" / f"{env}_{fig}.png").stat().st_size > 1000
            assert f"img/results/{env}_{fig}.png" in page
    # 2 seeds per cell: no CI yet, so nothing is called decided
    assert "0 of " in page and "comparisons are decided" in page
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n") and "OLD-ANSWER" not in text
    assert "pilot of 2 seed(s) per cell" in text


def _study_results_module():
    spec = importlib.util.spec_from_file_location("study_results", ROOT / "scripts" / "study_results.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_the_launch_log_gives_each_finished_seed_sweep_its_wall_time_commit_and_jobs():
    read = _study_results_module().read_launch_log
    text = (
        "seed 0 start 06:59:00 load 5.82 7.38 7.06\n"  # a pilot line: no commit, no jobs
        "seed 0 rc 0 wall 671 s end 07:10:11 load 9.02 7.92 7.29\n"
        "seed 12 start 11:30:19 load 0.00 0.07 0.81 code 3e0b16f jobs 1\n"
        "seed 12 rc 0 wall 305 s end 11:35:24 load 1.2 1.0 0.9\n"
        "seed 13 start 11:35:24 load 1.2 1.0 0.9 code 3e0b16f jobs 1\n"  # stopped: no end line
        "seed 13-49 start 12:50:00 load 2.0 2.1 2.2 code 0123abcd jobs 2\n"  # one sweep of many seeds
        "seed 13-49 rc 0 wall 1800 s end 13:20:00 load 2.0 2.1 2.2\n"
        "STOP found: stopped before seed 50\n"
    )
    launches = read(text, default_jobs=2)
    assert [(x.first, x.last, x.rc, x.wall_s, x.commit, x.jobs) for x in launches] == [
        (0, 0, 0, 671.0, "", 2),
        (12, 12, 0, 305.0, "3e0b16f", 1),
        (13, 49, 0, 1800.0, "0123abcd", 2),
    ]


def test_the_score_table_shows_a_ci_as_a_ci_and_a_few_seeds_as_their_range():
    """8 runs get a bootstrap CI in brackets; 3 runs get their range, named so (never one for the other)."""
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from analysis.stats import aggregate_table

    study = _study_results_module()
    rng = np.random.default_rng(0)
    values = {"A": rng.normal(100, 10, 8), "B": rng.normal(50, 10, 3)}
    tables = {col: aggregate_table(values, reps=200) for col in ("env_steps_to_solve", "auc_steps", "eval_return")}
    scores = pd.DataFrame(
        [{"cell": "many", "group": "A", "solved": True}] * 8 + [{"cell": "few", "group": "B", "solved": True}] * 3
    )
    table = study.score_table(SimpleNamespace(res=SimpleNamespace(tables=tables), scores=scores), ["many", "few"])
    many = next(line for line in table.splitlines() if line.startswith("| `many`"))
    few = next(line for line in table.splitlines() if line.startswith("| `few`"))
    ci = tables["auc_steps"].query("group == 'A' and aggregate == 'IQM'").iloc[0]
    assert f"[{study.fmt(ci['lo'])}, {study.fmt(ci['hi'])}]" in many and "range" not in many
    lo, hi = np.min(values["B"]), np.max(values["B"])
    assert f"(range {study.fmt(lo)} to {study.fmt(hi)})" in few
