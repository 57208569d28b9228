"""Secrets in tracking URIs are refused with the secret masked; server refusals become one line."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, UNAUTHENTICATED

from per_exp import credentials
from per_exp.config import ConfigError

SECRET = "s3cr3t-Pw"


@pytest.mark.parametrize(
    "uri, shown",
    [
        (f"http://alice:{SECRET}@127.0.0.1:5000", "http://alice:***@127.0.0.1:5000"),
        (f"https://alice:{SECRET}@mlflow.example.org/prefix", "https://alice:***@mlflow.example.org/prefix"),
        (f"postgresql://mlflow:{SECRET}@db/mlflow", "postgresql://mlflow:***@db/mlflow"),
        (f"postgresql://db/mlflow?user=u&password={SECRET}", "postgresql://db/mlflow?user=u&password=***"),
        (f"http://host:5000/?token={SECRET}", "http://host:5000/?token=***"),
        (f"http://:{SECRET}@host", "http://:***@host"),
    ],
)
def test_a_uri_with_a_secret_is_refused_and_the_secret_never_shown(uri, shown):
    assert credentials.secret_in(uri)
    assert credentials.redact(uri) == shown
    with pytest.raises(ConfigError) as e:
        credentials.check_uri("tracking.uri", uri)
    msg = str(e.value)
    assert SECRET not in msg and shown in msg and "tracking.uri" in msg
    assert "MLFLOW_TRACKING_USERNAME" in msg and "MLFLOW_TRACKING_PASSWORD" in msg and "\n" not in msg
    with pytest.raises(ConfigError) as e:
        credentials.check_overrides(["seed=1", f"tracking.uri={uri}"])
    assert SECRET not in str(e.value)


@pytest.mark.parametrize(
    "uri",
    [
        None,
        "",
        "sqlite:////tmp/a@b/mlflow.db",
        "sqlite:///mlflow.db",
        "http://127.0.0.1:5000",
        "https://host/p",
        "postgresql://mlflow@db/mlflow",
        "file:///tmp/mlruns",
        "mlruns",
    ],
)
def test_uris_without_a_secret_pass_unchanged(uri):
    assert not credentials.secret_in(uri)
    assert credentials.redact(uri) == uri
    credentials.check_uri("tracking.uri", uri)


def _server_error(code) -> MlflowException:
    return MlflowException("API request failed", error_code=code)


def test_server_refusals_become_one_line_naming_what_to_set(monkeypatch):
    uri = "http://127.0.0.1:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    none = credentials.access_error(_server_error(UNAUTHENTICATED), uri)
    assert "MLFLOW_TRACKING_USERNAME=None" in str(none) and "requires authentication" in str(none)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    wrong = credentials.access_error(_server_error(UNAUTHENTICATED), uri)
    assert "'alice'" in str(wrong) and "refused these credentials" in str(wrong) and SECRET not in str(wrong)
    denied = credentials.access_error(_server_error(PERMISSION_DENIED), uri)
    assert "403" in str(denied)
    assert credentials.access_error(_server_error(RESOURCE_DOES_NOT_EXIST), uri) is None
    assert credentials.access_error(ValueError("x"), uri) is None
    with pytest.raises(ConfigError), credentials.server_access(uri):
        raise _server_error(UNAUTHENTICATED)
    with pytest.raises(MlflowException), credentials.server_access(uri):
        raise _server_error(RESOURCE_DOES_NOT_EXIST)


@pytest.mark.parametrize(
    "override",
    [
        f"hydra.job.env_set.MLFLOW_TRACKING_PASSWORD={SECRET}",
        f"+hydra.job.env_set.MLFLOW_TRACKING_TOKEN={SECRET}",
        f"++hydra.job.env_set.db_secret={SECRET}",
    ],
)
def test_a_secret_set_through_a_hydra_override_is_refused(override):
    with pytest.raises(ConfigError) as e:
        credentials.check_overrides(["seed=0", override])
    assert SECRET not in str(e.value) and "MLFLOW_TRACKING_PASSWORD" in str(e.value)


def test_ordinary_overrides_pass():
    credentials.check_overrides(
        [
            "seed=0,1",
            "sampler=rank",
            "tracking.uri=http://127.0.0.1:5000",
            "-m",
            "hydra.job.env_set.OMP_NUM_THREADS=1",
            "checkpoint.keep=true",
        ]
    )
