"""No stuck runs (issue 11, item 3): every kind of unloadable checkpoint, and a disk that fills.

A checkpoint that cannot be loaded is moved aside (per_exp.checkpoint.refuse, kept as
evidence), the run is tagged with why, and it restarts from episode 0 in place: same run, each
point once, the same series as a run never interrupted. A full disk ends the run with one clear
line and no temp file; the next launch, once there is room, resumes it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from per_exp import checkpoint
from per_exp import contract as C
from per_exp.engine.trainer import run_one
from tests.support.census import census, duplicated_points, steps_of
from tests.support.cli import compose
from tests.support.faults import finish, hook_env, start, traceback_lines
from tests.support.sweeps import histories, same_series
from tests.test_trust_bad_input import mounted_tmpfs

pytestmark = pytest.mark.slow

ARGS = ["sampler=sumtree", "seed=2", "capacity=500", "max_episodes=7", "tracking.flush_every_episodes=1"]
LABEL = "s2-sumtree-dueling"


def _kill_at(tmp: Path, episode: int) -> dict[str, str]:
    return hook_env(tmp, PER_EXP_TEST_SIGNAL=f"{LABEL}:{episode}:{int(signal.SIGKILL)}")


def _shrink_first_array(tree) -> bool:
    """Cut the first array of more than one element (a network's parameters) in a nested state to half, in place."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    for k, v in items:
        if getattr(v, "size", 0) > 1:
            tree[k] = v.reshape(-1)[: v.size // 2]
            return True
        if isinstance(v, (dict, list)) and _shrink_first_array(v):
            return True
    return False


def _damage(path: Path, kind: str) -> None:
    if kind == "torn":  # a write cut short (write-then-rename prevents it; a copy or a sync may not)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "not-a-checkpoint":
        path.write_bytes(b"definitely not a checkpoint\n" * 100)
    elif kind == "legacy-pickle":  # what an older per_exp wrote: never read, refused
        import torch

        path.unlink()
        torch.save({"format_version": 1}, path.with_name(checkpoint.LEGACY_FILE_NAME))
    elif kind == "older-state-format":  # a valid file holding the single-run trainer's state (before the engine)
        state = checkpoint.load(path)
        assert state is not None
        state["trainer"]["format"] = "per_exp.run_state/1"
        checkpoint.save(path, {k: v for k, v in state.items() if k != "format_version"})
    elif kind == "state-does-not-fit":  # a valid file whose network no longer fits the code's
        state = checkpoint.load(path)
        assert state is not None and _shrink_first_array(state["trainer"]["agent"])
        checkpoint.save(path, {k: v for k, v in state.items() if k != "format_version"})
    else:
        raise ValueError(kind)


def _reference_steps() -> list[tuple[int, float]]:
    ref: list[tuple[int, float]] = []
    cfg = compose([a for a in ARGS if not a.startswith("tracking.")])
    run_one(cfg, on_episode=lambda e, m: ref.append((e, m[C.EPISODE_STEPS])))
    return ref


@pytest.mark.parametrize(
    "kind", ["torn", "not-a-checkpoint", "legacy-pickle", "older-state-format", "state-does-not-fit"]
)
def test_an_unloadable_checkpoint_is_moved_aside_and_the_run_restarts_in_place(tmp_path: Path, kind: str):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*ARGS, "checkpoint.every_episodes=2", f"tracking.uri={uri}"]
    log = tmp_path / "first.log"
    assert finish(start(args, tmp_path, _kill_at(tmp_path, 5), log)) == -signal.SIGKILL, log.read_text()[-3000:]
    [run] = census(uri).jobs
    ckpt = checkpoint.path_for(tmp_path / "checkpoints", run.info.experiment_id, run.data.tags[C.TAG_CONFIG_HASH])
    assert ckpt.exists()
    _damage(ckpt, kind)

    log = tmp_path / "again.log"
    code = finish(start(args, tmp_path, hook_env(tmp_path), log))
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert traceback_lines(text) == 0
    [done] = census(uri).jobs
    assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
    assert done.data.tags[C.TAG_RESUMED_FROM] == "0"
    assert done.data.tags[C.TAG_CHECKPOINT_REFUSED]  # why, on the run itself
    assert list(ckpt.parent.glob("*" + checkpoint.REFUSED_INFIX + "*")), "the refused file is kept aside"
    assert duplicated_points(uri, run.info.run_id) == 0
    assert same_series(histories(uri, run.info.run_id)[C.EPISODE_STEPS], _reference_steps())
    # and the next launch finds the work done: nothing left stuck
    log = tmp_path / "third.log"
    assert finish(start(args, tmp_path, hook_env(tmp_path), log)) == 0
    assert "skipping" in log.read_text()


@pytest.mark.parametrize("where", ["checkpoint-disk", "store-and-checkpoint-disk"])
def test_a_disk_that_fills_mid_run_ends_it_cleanly_and_the_next_launch_resumes(tmp_path: Path, where: str):
    with mounted_tmpfs(tmp_path / "small", "40m") as fs:
        uri = f"sqlite:///{(fs if where != 'checkpoint-disk' else tmp_path) / 'mlflow.db'}"
        ckpt_dir = fs / "ckpt"
        args = [*ARGS, "checkpoint.every_episodes=1", f"checkpoint.dir={ckpt_dir}", f"tracking.uri={uri}"]
        log = tmp_path / "first.log"
        env = hook_env(tmp_path, PER_EXP_TEST_FILL=f"{LABEL}:3:{fs}")
        code = finish(start(args, tmp_path, env, log))
        text = log.read_text()
        assert code == 1, text[-3000:]
        assert traceback_lines(text) == 0, text[-3000:]
        lines = [x for x in text.splitlines() if "No space left" in x or "disk is full" in x]
        assert len(lines) == 1, text[-3000:]
        assert not [p for p in ckpt_dir.rglob("*") if p.name.endswith(".tmp")]  # no temp file left
        (fs / "filler").unlink()
        log = tmp_path / "again.log"
        assert finish(start(args, tmp_path, hook_env(tmp_path), log)) == 0, log.read_text()[-3000:]
        [done] = census(uri).jobs
        assert done.info.status == "FINISHED" and done.data.tags[C.TAG_RESUMED_FROM] == "3"
        assert steps_of(uri, done.info.run_id) == list(range(7))
        assert duplicated_points(uri, done.info.run_id) == 0
