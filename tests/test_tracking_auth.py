"""A shared tracking server with users: a real `mlflow server --app-name basic-auth` on 127.0.0.1.

Right credentials (MLflow's environment variables): a 2-job sweep is logged,
and neither the password nor the user name is left in any param, tag,
artifact, console line or file of the launch folder. No credentials or
wrong ones: one line, exit 2, no run, no training. A URI carrying a secret
is refused before anything is written. The server speaks TLS with a
certificate of its own, which clients trust through MLFLOW_TRACKING_SERVER_CERT_PATH.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from per_exp import contract as C
from per_exp.engine.networks import QNetwork
from tests.support.cli import run_cli
from tests.support.services import TEST_USER, Credentials
from tests.support.sweeps import TINY, out, sweep

pytestmark = pytest.mark.slow  # a real server and real sweeps

USER, PASSWORD = TEST_USER.username, TEST_USER.password
EXPERIMENT = "auth-exp"
TWO = ["seed=0,1", *TINY, "max_episodes=3", f"tracking.experiment={EXPERIMENT}"]


def _launch(tmp_path: Path) -> Path:
    d = tmp_path / "launch"
    d.mkdir()
    return d


def _all_runs(srv) -> list:
    c = srv.admin_client()
    exps = [e.experiment_id for e in c.search_experiments()]
    return c.search_runs(exps, max_results=1000) if exps else []


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:") or " ERROR " in line or "[ERROR]" in line]


def _files_holding(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            hits += [f"{p.relative_to(root)}: {n}" for n in needles if n.encode() in data]
    return hits


def test_right_credentials_log_the_sweep_and_leave_no_trace_of_them(auth_tls_server, tmp_path):
    launch = _launch(tmp_path)
    r = sweep([*TWO, f"tracking.uri={auth_tls_server.url}"], launch, env=auth_tls_server.env(TEST_USER))
    console = out(r)
    assert r.returncode == 0, console[-4000:]
    assert "2/2 jobs FINISHED" in r.stderr

    runs = [x for x in _all_runs(auth_tls_server) if x.data.tags.get(C.TAG_ROLE)]
    jobs = [x for x in runs if x.data.tags[C.TAG_ROLE] == C.ROLE_JOB]
    parents = [x for x in runs if x.data.tags[C.TAG_ROLE] == C.ROLE_SWEEP]
    assert len(jobs) == 2 and len(parents) == 1
    assert all(x.info.status == "FINISHED" for x in runs)
    admin = auth_tls_server.admin_client()
    for x in jobs:
        assert [
            s for s, _ in sorted((m.step, m.value) for m in admin.get_metric_history(x.info.run_id, C.EPISODE_STEPS))
        ] == [0, 1, 2]

    # params, tags and metric names of every run
    secrets = [PASSWORD, USER]
    for x in runs:
        fields = [*x.data.params.items(), *x.data.tags.items(), *((k, "") for k in x.data.metrics)]
        leaked = [(k, v) for k, v in fields if any(s in f"{k}={v}" for s in secrets)]
        assert not leaked, (x.info.run_id, leaked)
    # every artifact (config.yaml, hydra/, episodes.csv, model/model.pt, ...)
    art = tmp_path / "artifacts"
    for x in runs:
        admin.download_artifacts(x.info.run_id, "", str(art / x.info.run_id))
    names = {
        p.relative_to(art / jobs[0].info.run_id).as_posix()
        for p in (art / jobs[0].info.run_id).rglob("*")
        if p.is_file()
    }
    assert {"config.yaml", "hydra/overrides.yaml", "hydra/config.yaml", "episodes.csv", "model/model.pt"} <= names
    assert not _files_holding(art, secrets)
    # the console and every file the launch left (sweep file, .hydra folders, checkpoints, outputs)
    assert not [s for s in secrets if s in console]
    assert any(launch.rglob(".per_exp_sweep.json"))
    assert not _files_holding(launch, secrets)

    # the model artifact is tensors only: the restricted unpickler takes it
    state = torch.load(art / jobs[0].info.run_id / "model" / "model.pt", weights_only=True)
    QNetwork(4, 2).load_state_dict(state)


def test_the_report_reads_the_server_with_the_same_variables(auth_tls_server, tmp_path):
    if not [x for x in _all_runs(auth_tls_server) if x.data.tags.get(C.TAG_ROLE) == C.ROLE_JOB]:
        r = sweep([*TWO, f"tracking.uri={auth_tls_server.url}"], _launch(tmp_path), env=auth_tls_server.env(TEST_USER))
        assert r.returncode == 0, out(r)[-3000:]
    args = [
        sys.executable,
        "-m",
        "analysis.report",
        "--experiment",
        EXPERIMENT,
        "--tracking-uri",
        auth_tls_server.url,
        "--reps",
        "200",
        "--quiet",
        "--no-log",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    ok = subprocess.run(
        [*args, "--out", str(tmp_path / "rep")],
        env={**env, **auth_tls_server.env(TEST_USER)},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, (ok.stdout + ok.stderr)[-3000:]
    assert (tmp_path / "rep" / "report.html").exists()
    assert not _files_holding(tmp_path / "rep", [PASSWORD, USER])
    refused = subprocess.run(
        [*args, "--out", str(tmp_path / "rep2")],
        env={**env, **auth_tls_server.env(Credentials(USER, "wrong-pw"))},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]  # one line
    assert "refused these credentials" in refused.stderr and "Traceback" not in refused.stderr


def test_an_unauthenticated_request_is_refused(auth_tls_server):
    assert auth_tls_server.url.startswith("https://127.0.0.1:")
    tls = ssl.create_default_context(cafile=str(auth_tls_server.cert))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(
            f"{auth_tls_server.url}/api/2.0/mlflow/experiments/search?max_results=10", timeout=10, context=tls
        )
    assert e.value.code == 401


@pytest.mark.parametrize(
    "who, creds, words",
    [
        ("none", None, "MLFLOW_TRACKING_USERNAME=None"),
        ("wrong password", Credentials(USER, "not-the-password"), "refused these credentials"),
    ],
)
@pytest.mark.parametrize("mode", ["sweep", "single"])
def test_missing_or_wrong_credentials_stop_with_one_line_before_any_run(
    auth_tls_server, tmp_path, who, creds, words, mode
):
    before = {x.info.run_id for x in _all_runs(auth_tls_server)}
    exps_before = {e.name for e in auth_tls_server.admin_client().search_experiments()}
    launch = _launch(tmp_path)
    experiment = f"refused-{mode}-{who.replace(' ', '-')}"
    args = [*TINY, f"tracking.uri={auth_tls_server.url}", f"tracking.experiment={experiment}"]
    env = auth_tls_server.env(creds)
    r = sweep(["seed=0,1", *args], launch, env=env) if mode == "sweep" else run_cli(["seed=0", *args], launch, env=env)
    text = out(r)
    assert r.returncode == 2, text[-3000:]
    errors = _error_lines(text)
    assert len(errors) == 1 and words in errors[0] and auth_tls_server.url in errors[0], errors
    assert (
        "Traceback" not in text and " | len " not in text and "MLflow run" not in text
    )  # nothing trained, no run opened
    assert PASSWORD not in text
    assert {x.info.run_id for x in _all_runs(auth_tls_server)} == before  # no run created
    assert experiment not in {e.name for e in auth_tls_server.admin_client().search_experiments()} - exps_before


@pytest.mark.parametrize("mode", ["sweep", "single", "env"])
def test_a_uri_with_credentials_is_refused_before_anything_is_written(auth_tls_server, tmp_path, mode):
    before = {x.info.run_id for x in _all_runs(auth_tls_server)}
    launch = _launch(tmp_path)
    secret_uri = auth_tls_server.url.replace("://", f"://{USER}:{PASSWORD}@")
    if mode == "env":
        r = run_cli(["seed=0", *TINY], launch, env={"MLFLOW_TRACKING_URI": secret_uri})
    elif mode == "sweep":
        r = sweep(["seed=0,1", *TINY, f"tracking.uri={secret_uri}"], launch)
    else:
        r = run_cli(["seed=0", *TINY, f"tracking.uri={secret_uri}"], launch)
    text = out(r)
    assert r.returncode == 2, text[-3000:]
    errors = _error_lines(text)
    assert len(errors) == 1 and f"{USER}:***@127.0.0.1" in errors[0] and "MLFLOW_TRACKING_PASSWORD" in errors[0], errors
    assert PASSWORD not in text and "Traceback" not in text
    assert not _files_holding(launch, [PASSWORD])  # Hydra's overrides.yaml included
    assert {x.info.run_id for x in _all_runs(auth_tls_server)} == before
