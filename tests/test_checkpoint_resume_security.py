"""Real jobs, real signals: a crafted checkpoint is refused and the run restarts cleanly; a real one resumes exactly."""

from __future__ import annotations

import io
import signal
from pathlib import Path

import pytest
import torch

from per_exp import checkpoint
from per_exp import contract as C
from per_exp.engine.trainer import run_one
from tests.support.cli import compose, run_cli
from tests.support.crafted import WritesMarker
from tests.support.sweeps import histories, jobs_and_parents, out, same_series, signal_hook_env

pytestmark = pytest.mark.slow  # real jobs in subprocesses, real signals

OVERRIDES = [
    "sampler=sumtree",
    "seed=4",
    "max_episodes=6",
    "capacity=500",
    "checkpoint.every_episodes=2",
    "tracking.flush_every_episodes=1",
]
LABEL = "s4-sumtree-dueling"


def _reference() -> dict[str, list]:
    ref: dict[str, list] = {}
    cfg = compose([o for o in OVERRIDES if not o.startswith(("checkpoint.", "tracking."))])
    run_one(
        cfg,
        on_episode=lambda e, m: [
            ref.setdefault(k, []).append((e, v))
            for k, v in m.items()
            if k not in C.CLOCK_METRICS and not k.endswith("_seconds")
        ],
    )
    return ref


def _interrupted(tmp_path: Path, signum: int):
    """Run the job until it gets `signum` at the start of episode 3; returns (uri, args, run, ckpt).

    SIGKILL leaves the periodic checkpoint of episode 2; SIGTERM lets episode 3 finish and
    checkpoints there (per_exp.signals), so the checkpoint is at 4.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*OVERRIDES, f"tracking.uri={uri}"]
    r = run_cli(args, tmp_path, env=signal_hook_env(tmp_path, LABEL, 3, signum))
    assert r.returncode != 0, out(r)[-3000:]
    (job,), _ = jobs_and_parents(uri)
    assert job.info.status == ("RUNNING" if signum == signal.SIGKILL else "KILLED")
    ckpt = checkpoint.path_for(tmp_path / "checkpoints", job.info.experiment_id, job.data.tags["config_hash"])
    assert checkpoint.load(ckpt)["trainer"]["counters"]["episode"] == (4 if signum == signal.SIGTERM else 2)
    return uri, args, job, ckpt


def _assert_matches_uninterrupted(uri: str, run_id: str) -> None:
    h = histories(uri, run_id)
    for key, series in _reference().items():
        assert same_series(h[key], series), (key, h[key], series)


def test_sigterm_then_relaunch_resumes_from_the_data_checkpoint_equal_to_an_uninterrupted_run(tmp_path):
    uri, args, job, ckpt = _interrupted(tmp_path, signal.SIGTERM)
    r = run_cli(args, tmp_path)
    assert r.returncode == 0, out(r)[-3000:]
    assert "refused checkpoint" not in out(r)
    (again,), _ = jobs_and_parents(uri)
    assert again.info.run_id == job.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags[C.TAG_RESUMED_FROM] == "4"  # where SIGTERM stopped it
    _assert_matches_uninterrupted(uri, again.info.run_id)
    assert not ckpt.exists()


def test_a_planted_pickle_never_runs_is_moved_aside_and_the_run_restarts_from_episode_0(tmp_path):
    uri, args, job, ckpt = _interrupted(tmp_path, signal.SIGKILL)
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"format_version": checkpoint.FORMAT_VERSION, "run_id": job.info.run_id, "x": WritesMarker(marker)}, buf)
    evil = buf.getvalue()
    torch.load(io.BytesIO(evil), weights_only=False)  # control: loading this file as before would run its code
    assert marker.exists()
    marker.rmdir()
    ckpt.write_bytes(evil)  # swapped in by someone who can write the shared folder
    legacy = ckpt.with_name(checkpoint.LEGACY_FILE_NAME)
    legacy.write_bytes(evil)  # and a format-1 file, as an older per_exp would have left

    r = run_cli(args, tmp_path)
    text = out(r)
    assert r.returncode == 0, text[-3000:]
    assert not marker.exists()
    refusals = [line for line in text.splitlines() if "refused checkpoint" in line]
    assert len(refusals) == 2, refusals
    assert any("checkpoint.pt" in x and "pickle" in x for x in refusals)
    assert any("checkpoint.zip" in x and "not a per_exp.state file" in x for x in refusals)
    assert "Traceback" not in text
    aside = sorted(p.name for p in ckpt.parent.iterdir())
    assert len(aside) == 2 and all(checkpoint.REFUSED_INFIX in n for n in aside)
    assert all((ckpt.parent / n).read_bytes() == evil for n in aside)  # kept as evidence, unchanged

    (again,), _ = jobs_and_parents(uri)  # the same run, continued in place: not a second one
    assert again.info.run_id == job.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags[C.TAG_RESUMED_FROM] == "0"
    _assert_matches_uninterrupted(uri, again.info.run_id)  # no point doubled, none missing
