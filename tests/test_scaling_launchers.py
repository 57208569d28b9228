"""The same sweep through other engines: submitit (local), Ray (a local instance), an HTTP tracking server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from per_exp import contract as C
from tests.support.sweeps import TINY, histories, jobs_and_parents, out, sweep

# Each test starts a launcher (or a server) and a real sweep: tens of seconds.
pytestmark = pytest.mark.slow

TWO = ["seed=0,1", *TINY, "max_episodes=3"]


def _assert_two_finished(uri: str) -> None:
    jobs, parents = jobs_and_parents(uri)
    assert len(parents) == 1 and len(jobs) == 2
    assert all(x.info.status == "FINISHED" for x in jobs + parents)
    assert all(x.data.tags[C.TAG_PARENT] == parents[0].info.run_id for x in jobs)
    for x in jobs:
        assert [s for s, _ in histories(uri, x.info.run_id)[C.EPISODE_STEPS]] == [0, 1, 2]


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="extra not installed: pip install 'per_exp[slurm]' (hydra-submitit-launcher)",
)
def test_submitit_local_sweep(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = sweep(["hydra/launcher=submitit_local", *TWO, f"tracking.uri={uri}"], tmp_path)
    assert r.returncode == 0, out(r)[-4000:]
    assert "2/2 jobs FINISHED" in r.stderr
    _assert_two_finished(uri)


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None or importlib.util.find_spec("ray") is None,
    reason="extra not installed: pip install 'ray[default]' and hydra-ray-launcher (README, section Scaling out)",
)
def test_ray_local_instance_sweep(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = sweep(
        [
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.include_dashboard=false",
            "+hydra.launcher.ray.init.num_cpus=2",
            *TWO,
            f"tracking.uri={uri}",
        ],
        tmp_path,
        env={"RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert r.returncode == 0, out(r)[-4000:]
    assert "2/2 jobs FINISHED" in r.stderr
    _assert_two_finished(uri)


def test_sweep_against_an_http_tracking_server(tmp_path: Path, mlflow_server):
    server = mlflow_server(backend="sqlite")
    url = server.url
    r = sweep([*TWO, f"tracking.uri={url}"], tmp_path)  # jobs in this process: the server is the point
    assert r.returncode == 0, out(r)[-4000:]
    assert "2/2 jobs FINISHED" in r.stderr
    _assert_two_finished(url)
    assert not (tmp_path / "mlflow.db").exists()  # everything went through the server
    assert any(server.artifacts.rglob(C.ARTIFACT_EPISODES))  # artifacts too
