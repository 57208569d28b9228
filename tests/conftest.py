"""Pytest fixtures (the only place they are defined): real MLflow stores in temp folders, and
real services (a one-node Slurm cluster, PostgreSQL, `mlflow server`: tests/support/services.py).

Plain helpers (compose a config, run the CLI, build a store run by run) are
in `tests/support/` and imported by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import services
from tests.support.stores import build_store, run_real_sweep


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A tracking URI for a real SQLite store in a temp folder (created on first use)."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory):
    """Two axes (sampler x warm-up), 4 seeds, one never-solving seed, one FAILED run."""
    tmp = tmp_path_factory.mktemp("analysis_synth")
    return build_store(
        tmp, samplers=("uniform", "sumtree"), warmups=("0", "30"), seeds=range(4), unsolved_seed=1, max_episodes=120
    )


@pytest.fixture(scope="session")
def real_sweep_store(tmp_path_factory):
    """A tiny real sweep by the trainer: sampler=uniform,sumtree x seed=0,1, 4 episodes."""
    tmp = tmp_path_factory.mktemp("analysis_real")
    proc = run_real_sweep(tmp, ["sampler=uniform,sumtree", "seed=0,1", "max_episodes=4"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"uri": f"sqlite:///{tmp / 'mlflow.db'}", "experiment": "per-cartpole", "tmp": tmp}


@pytest.fixture(scope="module")
def auth_tls_server(tmp_path_factory):
    """A real `mlflow server --app-name basic-auth` over TLS on 127.0.0.1, with the user TEST_USER.

    Users see nothing of others' experiments (NO_PERMISSIONS). Clients trust its self-signed
    certificate through MLFLOW_TRACKING_SERVER_CERT_PATH (`.env(...)`).
    """
    folder = tmp_path_factory.mktemp("auth_server")
    with services.start_mlflow_server(
        folder, f"sqlite:///{folder / 'store.db'}", auth=True, tls=True, default_permission="NO_PERMISSIONS"
    ) as s:
        s.add_user(services.TEST_USER)
        yield s


@pytest.fixture(scope="session")
def slurm_cluster():
    """A one-node Slurm cluster (partitions `main`, default, and `low`, preempted by `main`)."""
    with services.slurm_cluster_for_session() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster on 127.0.0.1 with a `mlflow` role; `.new_database()` gives a fresh one."""
    with services.postgres_for_session() as pg:
        yield pg


@pytest.fixture
def mlflow_server(request, tmp_path: Path):
    """Factory: `mlflow_server(backend="sqlite"|"postgresql", auth=False, workers=1)` -> a running server.

    Every server it started is stopped when the test ends.
    """
    with services.mlflow_server_factory(tmp_path, lambda: request.getfixturevalue("postgres")) as factory:
        yield factory


@pytest.fixture(params=["sqlite", "postgresql-server"])
def any_store(request, tmp_path: Path) -> str:
    """A fresh store, twice: a SQLite file in the test's folder, and an `mlflow server` (2 workers)
    backed by a new PostgreSQL database. The trust tests that take it must hold on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlflow.db'}"
    return request.getfixturevalue("mlflow_server")(backend="postgresql", workers=2).url
