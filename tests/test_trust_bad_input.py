"""Every bad input refused before any run exists (issue 11, item 6): one line naming the key, the
value and what is allowed, exit code 2, no traceback, nothing in the store."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import pytest

from per_exp.config import ConfigError, validate
from tests.support.cli import compose, run_cli
from tests.support.sweeps import free_port

TINY = ["max_episodes=2", "capacity=500", "sampler=uniform"]
slow = pytest.mark.slow  # each case is a real command line in a subprocess


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_refused(r: subprocess.CompletedProcess, *words: str) -> str:
    out = (r.stdout or "") + (r.stderr or "")
    assert r.returncode == 2, out[-3000:]
    assert "Traceback" not in out
    assert len(_lines(out)) == 1, out[-3000:]
    for w in words:
        assert w in out, f"{w!r} not in {out!r}"
    return out


def assert_no_runs(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    path = Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None
    if path is not None and not path.exists():
        return
    c = MlflowClient(uri)
    exps = [e.experiment_id for e in c.search_experiments()]
    assert (c.search_runs(exps) if exps else []) == []


@slow
@pytest.mark.parametrize(
    "args, words, not_listed",
    [
        (["experiment=seed_noteboook"], ["experiment", "seed_noteboook", "seed_notebook"], []),
        (["+experiment=nope"], ["experiment", "nope", "seed_notebook"], []),
        (["sampler=sampler_schema"], ["sampler", "sampler_schema", "uniform", "sumtree"], ["sampler_schema,"]),
        (["network=network_schema"], ["network", "network_schema", "dueling"], []),
        (["env=env_schema"], ["env", "env_schema", "cartpole_v0"], []),
        (["sampler=foo"], ["sampler", "foo", "linear_scan, rank, sumtree, uniform"], ["_schema"]),
        (["-m", "sampler=uniform,sampler_schema"], ["sampler", "sampler_schema"], []),
        (["-m", "seed=0,1", "experiment=seed_noteboook"], ["experiment", "seed_noteboook"], []),
        (["seed=-1"], ["seed", "-1", "[0, 4294967295]"], []),
        (["seed=4294967296"], ["seed", "4294967296", "[0, 4294967295]"], []),
        (["-m", "seed=0,-3"], ["seed", "-3"], []),
        # keys below the top level and value types: checked before Hydra composes (per_exp.overrides)
        (["sampler.alpha=abc"], ["sampler.alpha", "abc", "a number"], []),
        (["sampler.alpah=0.5"], ["sampler.alpah", "did you mean 'alpha'", "beta0"], []),
        (["env.max_steps=2.5"], ["env.max_steps", "2.5", "an integer"], []),
        (["-m", "seed=0,abc"], ["seed", "abc", "an integer"], []),
        (["sampler.is_weights=maybe"], ["sampler.is_weights", "maybe", "true or false"], []),
    ],
)
def test_bad_choices_and_values_are_refused_in_one_line(tmp_path, store, args, words, not_listed):
    r = run_cli([*args, *TINY, f"tracking.uri={store}"], cwd=tmp_path, timeout=180)
    out = assert_refused(r, *words)
    for w in not_listed:
        assert w not in out.split("allowed:", 1)[-1]
    assert_no_runs(store)


def test_the_seed_range_is_inclusive_at_both_ends():
    for seed in (0, 2**32 - 1):
        validate(compose([f"seed={seed}"]))
    for seed in (-1, 2**32):
        with pytest.raises(ConfigError, match=r"seed"):
            validate(compose([f"seed={seed}"]))


@slow
@pytest.mark.parametrize(
    "uri, words",
    [
        ("garbage://x", ["tracking.uri", "garbage://x", "sqlite:///", "http"]),
        ("file:///tmp/mlruns", ["tracking.uri", "file:///tmp/mlruns", "file store"]),
        ("sqlite://relative.db", ["tracking.uri", "sqlite://relative.db"]),
    ],
)
def test_unsupported_tracking_uris_are_refused(tmp_path, uri, words):
    r = run_cli([*TINY, f"tracking.uri={uri}"], cwd=tmp_path, timeout=120)
    assert_refused(r, *words)


@slow
@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
def test_an_unreachable_tracking_server_is_refused_fast(tmp_path, multirun):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    r = run_cli([*(["-m", "seed=0,1"] if multirun else []), *TINY, f"tracking.uri={url}"], cwd=tmp_path, timeout=180)
    assert_refused(r, "tracking.uri", url, "answers")
    assert time.monotonic() - t0 < 60


@slow
@pytest.mark.parametrize("what", ["nothing-listens", "wrong-password"])
def test_a_database_uri_that_cannot_connect_is_refused_fast(tmp_path, postgres, what):
    """Attack beyond the issue's table: a direct postgresql:// store that refuses. MLflow's own
    engine set-up retried it for ~110 s, then a traceback-free but late refusal; now one attempt."""
    user_host, db = postgres.uri.split("@", 1)[1], postgres.uri.rsplit("/", 1)[1]
    host = f"127.0.0.1:{free_port()}" if what == "nothing-listens" else user_host.split("/", 1)[0]
    uri = f"postgresql://mlflow@{host}/{db}"  # the password only in PGPASSWORD (never in a URI)
    t0 = time.monotonic()
    r = run_cli([*TINY, f"tracking.uri={uri}"], cwd=tmp_path, timeout=300, env={"PGPASSWORD": "not-the-password"})
    assert_refused(r, "tracking.uri", uri, "accepts this connection")
    assert time.monotonic() - t0 < 60


# ------------------------------------------------------------------ folders that cannot be written


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str, read_only: bool = False):
    """A real small file system (tmpfs), read-only if asked; needs root (CI runs as root)."""
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@slow
@pytest.mark.parametrize("kind", ["read-only", "full"])
@pytest.mark.parametrize("what", ["store", "checkpoint.dir"])
def test_a_folder_that_cannot_be_written_is_refused_before_any_run(tmp_path, kind, what):
    with mounted_tmpfs(tmp_path / "fs", "1m" if kind == "full" else "64m", read_only=kind == "read-only") as fs:
        if what == "store":
            uri, extra, key = f"sqlite:///{fs / 'mlflow.db'}", [], "tracking.uri"
        else:
            uri, extra, key = f"sqlite:///{tmp_path / 'mlflow.db'}", [f"checkpoint.dir={fs / 'ckpt'}"], "checkpoint.dir"
        t0 = time.monotonic()
        r = run_cli([*TINY, f"tracking.uri={uri}", *extra], cwd=tmp_path, timeout=180)
        why = "Read-only file system" if kind == "read-only" else "MB free"
        assert_refused(r, key, why)
        assert time.monotonic() - t0 < 60
        assert_no_runs(uri)
        assert list(fs.iterdir()) == []  # not even a store file or a probe left behind
