"""scripts/study_results.py regenerates the results page from a real store made by the real study preset."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import ROOT, run_cli


@pytest.mark.slow
def test_the_results_page_is_regenerated_from_a_real_study_store(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = run_cli(
        [
            "-m",
            "experiment=study",
            "ablation=uniform,per",
            "seed=0,1",
            "max_episodes=3",
            "eval.every_episodes=2",
            "eval.episodes=1",
            "checkpoint.every_episodes=0",
            "tracking.log_model=false",
            f"tracking.uri={uri}",
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
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
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    page = (docs / "results.md").read_text()
    # both tasks, the design's comparison, the provenance
    assert "## cartpole_v0" in page and "## acrobot_v1" in page
    assert "`per` vs `uniform`" in page and "commit: `" in page and "wall time:" in page
    for env in ("cartpole_v0", "acrobot_v1"):
        for fig in ("curves", "steps_to_solve", "auc_steps"):
            assert (docs / "img" / "results" / f"{env}_{fig}.png").stat().st_size > 1000
            assert f"img/results/{env}_{fig}.png" in page
    # 2 seeds per cell: no CI yet, so nothing is called decided
    assert "0 of " in page and "comparisons are decided" in page
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n") and "OLD-ANSWER" not in text
    assert "pilot of 2 seed(s) per cell" in text
