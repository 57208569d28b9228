"""Provenance that never lies (issue 11, item 2), with a real second checkout at another commit.

The second checkout is a clone of this repository with one more (empty) commit; launches run
its code through PYTHONPATH, so `git.commit` really differs, as after a `git pull`.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from per_exp import contract as C
from tests.support.census import census, duplicated_points, steps_of
from tests.support.cli import ROOT
from tests.support.faults import finish, hook_env, start, traceback_lines

pytestmark = pytest.mark.slow

BASE = ["sampler=uniform", "capacity=500", "tracking.flush_every_episodes=1", "checkpoint.every_episodes=1"]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def other_checkout(tmp_path: Path) -> tuple[Path, str, str]:
    """(folder, its commit, this checkout's commit): this code, committed once more."""
    here = _git("rev-parse", "HEAD", cwd=ROOT)
    dest = tmp_path / "other-checkout"
    _git("clone", "--quiet", "--local", "--no-hardlinks", str(ROOT), str(dest), cwd=tmp_path)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "--allow-empty", "-m", "next", cwd=dest)
    return dest, _git("rev-parse", "HEAD", cwd=dest), here


def _env(tmp: Path, checkout: Path | None = None, **kw: str) -> dict[str, str]:
    env = hook_env(tmp, **kw)
    if checkout is not None:
        env["PYTHONPATH"] = f"{checkout}:{env['PYTHONPATH']}"
    return env


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
def test_resuming_under_another_commit_is_refused_unless_allowed_and_then_both_are_recorded(
    tmp_path: Path, other_checkout, multirun: bool
):
    other, other_commit, this_commit = other_checkout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*(["-m"] if multirun else []), *BASE, "seed=4", "max_episodes=8", f"tracking.uri={uri}"]
    log = tmp_path / "first.log"
    # a one-job sweep names its run by every override that is not bookkeeping (tracking.run_name)
    label = "s4-uniform-capacity=500-max_episodes=8-dueling" if multirun else "s4-uniform-dueling"
    first = start(args, tmp_path, _env(tmp_path, PER_EXP_TEST_SIGNAL=f"{label}:4:{signal.SIGKILL}"), log)
    assert finish(first) == -signal.SIGKILL, log.read_text()[-3000:]
    [run] = census(uri).jobs
    assert run.data.tags[C.TAG_GIT_COMMIT] == this_commit
    before = steps_of(uri, run.info.run_id)
    assert before == [0, 1, 2, 3]

    log = tmp_path / "refused.log"
    code = finish(start(args, tmp_path, _env(tmp_path, other), log))
    text = log.read_text()
    assert code == 2, text[-3000:]
    assert traceback_lines(text) == 0
    lines = [line for line in text.splitlines() if "resume_across_commits" in line]
    assert len(lines) == 1, text[-3000:]
    assert this_commit[:12] in lines[0] and other_commit[:12] in lines[0]
    [same] = census(uri).jobs
    assert same.info.status == run.info.status and steps_of(uri, run.info.run_id) == before  # untouched

    log = tmp_path / "allowed.log"
    code = finish(start([*args, "resume_across_commits=true"], tmp_path, _env(tmp_path, other), log))
    assert code == 0, log.read_text()[-3000:]
    [done] = census(uri).jobs
    assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
    assert done.data.tags[C.TAG_GIT_COMMIT] == this_commit  # the original stays
    history = json.loads(done.data.tags[C.TAG_CODE_HISTORY])
    assert [h["commit"] for h in history] == [this_commit, other_commit]
    assert history[0]["from_episode"] == 0 and history[1]["from_episode"] == 4  # the checkpoint's episode
    assert history[1]["first_new_step"] == 4  # steps 0-3 in the store came from the first commit
    assert steps_of(uri, run.info.run_id) == list(range(8)) and duplicated_points(uri, run.info.run_id) == 0


def test_relaunching_a_finished_sweep_after_a_code_change_says_how_many_runs_are_from_another_commit(
    tmp_path: Path, other_checkout
):
    other, _, this_commit = other_checkout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", *BASE, "seed=0,1,2", "max_episodes=2", f"tracking.uri={uri}"]
    log = tmp_path / "first.log"
    assert finish(start(args, tmp_path, _env(tmp_path), log)) == 0, log.read_text()[-3000:]
    log = tmp_path / "again.log"
    assert finish(start(args, tmp_path, _env(tmp_path, other), log)) == 0, log.read_text()[-3000:]
    text = log.read_text()
    line = next((x for x in text.splitlines() if "another commit" in x), "")
    assert "3 of the 3 skipped runs" in line and this_commit[:12] in line and "rerun=true" in line, text[-3000:]
    assert len(census(uri).jobs) == 3  # nothing trained again
