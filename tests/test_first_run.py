"""A first run that explains itself: the experiment opens as model training, run names stay
distinct when cut short, a sweep shows its progress and ends with the address of its runs."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from per_exp import contract as C
from per_exp import tracking
from per_exp.sweep_progress import Progress, ProgressReporter, clock
from tests.support.cli import compose
from tests.support.sweeps import free_port, out, sweep

PROGRESS = re.compile(
    r"^sweep progress: (\d+)/(\d+) jobs done( \(\d+ failed\))? \| \d+:\d\d elapsed( \| ETA \d+:\d\d)?$"
)


def test_clock():
    assert [clock(s) for s in (0, 41.4, 65, 3723)] == ["0:00", "0:41", "1:05", "1:02:03"]


def test_progress_line_and_eta():
    p = Progress(total=6, done=3, failed=1, done_before=1, elapsed=40.0)
    # two jobs ran in 40 s, three remain: 60 s
    assert p.eta() == pytest.approx(60.0)
    assert p.line() == "sweep progress: 3/6 jobs done (1 failed) | 0:40 elapsed | ETA 1:00"
    assert PROGRESS.match(p.line())
    assert Progress(total=6, done=1, failed=0, done_before=1, elapsed=5.0).eta() is None  # nothing ran yet
    assert Progress(total=2, done=2, failed=0, done_before=0, elapsed=9.0).line().endswith("0:09 elapsed")


def test_run_names_start_with_the_seed_then_what_sets_the_run_apart():
    conf = compose(["seed=3"])
    assert tracking.run_name(conf) == "s3-sumtree-dueling"
    assert tracking.run_name(conf, "sampler=sumtree seed=3") == "s3-sumtree-dueling"
    assert (
        tracking.run_name(conf, "sampler.alpha=0.6 env.truncation_as_terminal=true seed=3")
        == "s3-alpha=0.6-truncation_as_terminal=true-sumtree-dueling"
    )
    assert tracking.run_name(compose(["seed=3", "network=mlp"]), "network=mlp seed=3") == "s3-mlp-sumtree"
    # bookkeeping and Hydra's own keys say how a run is kept, not what sets it apart (a one-job sweep)
    kept = "seed=3 tracking.uri=sqlite:///x.db checkpoint.every_episodes=1 rerun=true hydra.launcher.n_jobs=2"
    assert tracking.run_name(conf, kept) == "s3-sumtree-dueling"
    # the names of two runs of one sweep differ within the first characters the UI shows
    a = tracking.run_name(conf, "sampler.alpha=0.6 seed=3")
    b = tracking.run_name(conf, "sampler.alpha=1.0 seed=3")
    assert a[:14] != b[:14]


def test_runs_url_opens_the_runs_table_of_one_sweep():
    url = C.runs_url("http://127.0.0.1:5000/", "7", "abc123")
    base, _, query = url.partition("?")
    assert base == "http://127.0.0.1:5000/#/experiments/7/runs"
    q = urllib.parse.parse_qs(query)
    assert q["workflowType"] == ["machine_learning"]
    assert q["searchFilter"] == ["tags.`mlflow.parentRunId` = 'abc123'"]


def _job(client, exp, parent, h, status):
    run = client.create_run(exp, tags={C.TAG_PARENT: parent, C.TAG_CONFIG_HASH: h})
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def test_progress_counts_the_sweeps_jobs_in_a_real_store(tmp_path: Path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("e")
    parent = client.create_run(exp).info.run_id
    _job(client, exp, parent, "h0", "FINISHED")  # finished in an earlier launch
    time.sleep(0.01)
    buf = io.StringIO()
    rep = ProgressReporter(client, exp, parent, ["h0", "h1", "h2", "h3", "h4"], ["h0"], out=buf)
    first = rep.poll()
    assert (first.total, first.done, first.failed, first.done_before) == (5, 1, 0, 1)
    _job(client, exp, parent, "h1", "FINISHED")
    _job(client, exp, parent, "h2", "FAILED")
    _job(client, exp, parent, "h3", "RUNNING")  # not done
    _job(client, exp, "another-parent", "h4", "FINISHED")  # not this sweep's run
    p = rep.report()
    assert p is not None and (p.total, p.done, p.failed) == (5, 3, 1)
    assert rep.report() is None  # nothing changed: nothing printed
    lines = buf.getvalue().splitlines()
    assert (
        len(lines) == 1 and PROGRESS.match(lines[0]) and lines[0].startswith("sweep progress: 3/5 jobs done (1 failed)")
    )


def test_a_store_that_stops_answering_is_said_once_per_outage(tmp_path: Path, monkeypatch):
    # a real client of a port nothing listens on: every poll fails at once (no retries)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    buf = io.StringIO()
    rep = ProgressReporter(MlflowClient(f"http://127.0.0.1:{free_port()}"), "1", "p", ["h0"], [], 0.05, buf)
    rep.start()
    time.sleep(1.0)
    rep.stop()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep progress: store not readable"), lines


def _get_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"mlflow ui exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow ui at {base} not healthy after {timeout} s")


@pytest.mark.slow
def test_a_parallel_sweep_explains_itself_and_mlflow_ui_lists_its_runs(tmp_path: Path):
    r = sweep(
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "sampler=uniform,sumtree", "seed=0,1", "max_episodes=15"],
        tmp_path,
        timeout=600,
    )
    assert r.returncode == 0, out(r)[-4000:]
    # progress: whole lines from the launching process, counting up to 4/4 despite two workers logging
    progress = [line for line in r.stderr.splitlines() if "sweep progress" in line]
    assert progress and all(PROGRESS.match(line) for line in progress), progress
    counts = [int(PROGRESS.match(line).group(1)) for line in progress]
    assert counts == sorted(counts) and counts[-1] == 4
    assert all(PROGRESS.match(line).group(2) == "4" for line in progress)
    # the address of the runs, last
    urls = re.findall(r"^runs: (http://127\.0\.0\.1:5000/\S+)", r.stderr, re.M)
    assert len(urls) == 1, r.stderr[-2000:]

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("per-cartpole")
    assert exp.tags[C.TAG_EXPERIMENT_KIND] == C.EXPERIMENT_KIND_TRAINING
    (parent,) = C.search_runs(client, exp.experiment_id, C.tag_equals(C.TAG_ROLE, C.ROLE_SWEEP))
    assert urls[0] == C.runs_url(C.UI_DEFAULT, exp.experiment_id, parent.info.run_id)

    # a real `mlflow ui` on that store: its REST API shows the tag and lists the four runs under the parent
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "ui.log").open("w")
    ui = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_healthy(base, ui)
        got = _get_json(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=per-cartpole")["experiment"]
        assert {t["key"]: t["value"] for t in got["tags"]}[C.TAG_EXPERIMENT_KIND] == "custom_model_development"
        children = _get_json(
            f"{base}/api/2.0/mlflow/runs/search",
            {
                "experiment_ids": [got["experiment_id"]],
                "filter": C.tag_equals(C.TAG_PARENT, parent.info.run_id),
                "max_results": 100,
            },
        )["runs"]
        names = sorted(run["info"]["run_name"] for run in children)
        assert names == ["s0-sumtree-dueling", "s0-uniform-dueling", "s1-sumtree-dueling", "s1-uniform-dueling"]
        assert {run["info"]["status"] for run in children} == {"FINISHED"}
        # the printed address, on this server's port, is served (the UI's page)
        with urllib.request.urlopen(urls[0].replace("127.0.0.1:5000", f"127.0.0.1:{port}"), timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read(2000).lower()
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
        log.close()
