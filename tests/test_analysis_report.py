"""The report: figures, report.md/html, MLflow logging, and bad input via the real CLI."""

import re

import numpy as np
import pytest

from analysis.render import md_table, render_html
from analysis.report import build_report, main
from per_exp import contract as C
from tests.support.stores import BASE_PARAMS, log_job, new_store, run_report, run_reports, synthetic_lengths

#: figure -> axis labels that must be in its SVG text
EXPECTED_LABELS = {
    "learning_curves": ["Episode", "Episode length (rolling mean of 10)"],
    "learning_curves_steps": ["Env steps", "Episode length (rolling mean of 10)"],
    "episodes_to_solve": ["Episodes to solve (lower is better)", "Group"],
    "env_steps_to_solve": ["Env steps to solve (lower is better)", "Group"],
    "aggregates": [
        "Episodes to solve (lower better)",
        "Env steps to solve",
        "AUC per episode",
        "AUC per env step",
        "Final episode length",
        "Group",
    ],
    "ablation_grid": ["sampler", "warmup_episodes=0", "warmup_episodes=30", "Episodes to solve"],
    "probability_of_improvement": ["Y (compared against)", "P(X better than Y)"],
    "performance_profile": ["(episodes)", "Fraction of runs solved within"],
    "compute": ["Wall time per run, start-up", "Env steps per second,", "One-time start-up per run (s)"],
}


def _svg_text(path):
    return " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text(encoding="utf-8")))


def _check_figures(out, names):
    for name in names:
        png, svg = out / "figures" / f"{name}.png", out / "figures" / f"{name}.svg"
        assert png.stat().st_size > 5000, png
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert svg.stat().st_size > 5000, svg
        text = _svg_text(svg)
        for label in EXPECTED_LABELS[name]:
            assert label in text, (name, label)


def test_report_on_synthetic_store(synthetic_store, tmp_path):
    from mlflow.tracking import MlflowClient

    s = synthetic_store
    out = tmp_path / "report"
    r = build_report(s["experiment"], out, tracking_uri=s["uri"], reps=300, progress=False)
    assert sorted(r.written) == sorted(EXPECTED_LABELS)  # two axes vary: the ablation grid is there
    _check_figures(out, EXPECTED_LABELS)
    md = (out / "report.md").read_text(encoding="utf-8")
    groups = [f"sampler={a}, warmup_episodes={w}" for a in ("uniform", "sumtree") for w in ("0", "30")]
    for g in groups:
        assert g in md
    assert "**16 runs** used out of 17 job runs found; **4 groups**" in md
    assert s["failed"] in md and "status FAILED" in md  # listed as left out, with the reason
    for fig in EXPECTED_LABELS:
        assert f"](figures/{fig}.png)" in md
    assert "`sampler.name`: sumtree, uniform" in md and "`warmup_episodes`: 0, 30" in md
    # the never-solving seed shows in the fraction solved
    assert "3/4 (75%)" in md and "4/4 (100%)" in md
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<table>" in html and '<img alt="' in html and all(g in html for g in groups)
    # logged to the sweep's parent run, visible in the UI
    assert r.logged_to == s["parent"]
    arts = {a.path for a in MlflowClient(tracking_uri=s["uri"]).list_artifacts(s["parent"], C.ARTIFACT_REPORT_DIR)}
    assert {f"{C.ARTIFACT_REPORT_DIR}/{f}" for f in ("report.md", "report.html", "figures")} <= arts


@pytest.mark.slow
def test_report_cli_on_real_sweep(real_sweep_store):
    from mlflow.tracking import MlflowClient

    s = real_sweep_store
    client = MlflowClient(tracking_uri=s["uri"])
    exp = client.get_experiment_by_name(s["experiment"])
    parent = client.search_runs([exp.experiment_id], C.tag_equals(C.TAG_ROLE, C.ROLE_SWEEP))[0].info.run_id
    proc = run_report(
        [
            "--experiment",
            s["experiment"],
            "--sweep",
            parent,
            "--tracking-uri",
            s["uri"],
            "--out",
            "rep",
            "--reps",
            "300",
        ],
        cwd=s["tmp"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "analysis: loading per-episode series 4/4" in proc.stderr  # the progress line
    out = s["tmp"] / "rep"
    one_axis = [n for n in EXPECTED_LABELS if n != "ablation_grid"]
    _check_figures(out, one_axis)
    assert not (out / "figures" / "ablation_grid.png").exists()  # one axis: no facets
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "sampler=uniform" in md and "sampler=sumtree" in md
    assert "No run was left out." in md
    assert f"sweep (parent run) `{parent}`" in md
    # the sweep ran grouped (two seeds per sampler, 2 slots): the compute table says so from the runs' tags
    assert "runs trained at once" in md and "4 of 4 runs trained in a group" in md
    report_files = client.list_artifacts(parent, C.ARTIFACT_REPORT_DIR)
    assert any(a.path == f"{C.ARTIFACT_REPORT_DIR}/report.md" for a in report_files)


@pytest.mark.slow
def test_bad_input_exits_cleanly(synthetic_store, tmp_path):
    """Each case runs the real CLI in its own process (started together to save time)."""
    s = synthetic_store
    out = str(tmp_path / "out")
    uri, client, _ = new_store(tmp_path / "store", "empty")
    # runs without any per-episode series (no episodes.csv and no metric history)
    eid2 = client.create_experiment("no-series", artifact_location=(tmp_path / "store" / "mlruns").as_uri())
    lengths, solved = synthetic_lengths(np.random.default_rng(0), 20, 40)
    for seed in ("0", "1"):
        log_job(client, eid2, dict(BASE_PARAMS, seed=seed), lengths, solved, csv=False, metrics=False, tmp=tmp_path)
    cases = [
        (["--experiment", "nope", "--tracking-uri", s["uri"]], "unknown experiment 'nope'"),
        (["--experiment", s["experiment"], "--sweep", "f" * 32, "--tracking-uri", s["uri"]], "unknown sweep run id"),
        (["--experiment", "empty", "--tracking-uri", uri], "experiment 'empty' has no job runs"),
        (
            ["--experiment", "no-series", "--tracking-uri", uri],
            "no usable runs in experiment 'no-series': 2 found, all left out (no per-episode series",
        ),
    ]
    results = run_reports([a + ["--out", out, "--quiet", "--no-log"] for a, _ in cases], cwd=tmp_path)
    for (args, message), (rc, so, se) in zip(cases, results):
        assert rc == 2, (args, se[-2000:])
        assert "Traceback" not in se and "Traceback" not in so
        lines = [ln for ln in se.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], (args, se[-2000:])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--reps", "5"], "--reps must be at least 100"),
        (["--grid-episodes", "0"], "--grid-episodes must be at least 1"),
        (["--tracking-uri", "sqlite:///{tmp}/nothing.db"], "no MLflow store at sqlite:///"),
    ],
)
def test_bad_options_in_process(tmp_path, capsys, args, message):
    # same main() as the CLI, in-process to save interpreter start-ups
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["--experiment", "x", "--out", str(tmp_path / "o"), "--quiet", "--no-log"] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nothing.db").exists()  # MLflow was not allowed to create an empty store


def test_store_text_in_the_html_report_is_shown_never_run():
    """Run names, params and tags come from the store, which anyone who can write a run controls."""
    import pandas as pd

    hostile = pd.DataFrame(
        {
            "group": ["<script>alert(1)</script>", "[click](javascript:alert(2))", "ok"],
            "reason": ['<img src=x onerror="alert(3)">', "![p](data:text/html,<b>x</b>)", "[doc](https://mlflow.org)"],
        }
    )
    md = "\n".join(
        ["# r", "", md_table(hostile), "", "<iframe src='javascript:alert(4)'></iframe>", "", "[f](\x01javascript:x)"]
    )
    page = render_html(md, "<b>title</b>")
    body = page.lower()
    assert "<script" not in body and "<img src=x" not in body and "<iframe" not in body and "<b>" not in body
    assert 'href="javascript' not in body and 'src="data:' not in body and 'href="\x01' not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text
    assert 'href="https://mlflow.org"' in page  # ordinary links still work


def _census(uri: str) -> dict:
    """Every job run in the store: run id -> (status, config hash, sampler, seed)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("per-cartpole")
    return {
        r.info.run_id: (
            r.info.status,
            r.data.tags.get(C.TAG_CONFIG_HASH),
            r.data.params.get("sampler.name"),
            int(r.data.params[C.PARAM_SEED]),
        )
        for r in C.search_runs(client, exp.experiment_id)
        if r.data.tags.get(C.TAG_ROLE) == C.ROLE_JOB
    }


@pytest.mark.slow
def test_plan_prints_commands_that_add_exactly_the_missing_runs(tmp_path):
    """Real CLI end to end: a pilot too small for a CI; --plan's commands, run as printed, add exactly
    the runs the plan asks for (and a second run of them adds nothing)."""
    import os
    import shlex
    import subprocess
    import sys

    from tests.support.stores import REPO, run_real_sweep

    assert run_real_sweep(tmp_path, ["sampler=uniform,sumtree", "seed=0,1", "max_episodes=2"]).returncode == 0
    assert run_real_sweep(tmp_path, ["sampler=uniform", "seed=2", "max_episodes=2"]).returncode == 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = _census(uri)
    assert sorted((s, seed) for _, _, s, seed in before.values()) == [
        ("sumtree", 0),
        ("sumtree", 1),
        ("uniform", 0),
        ("uniform", 1),
        ("uniform", 2),
    ]
    args = [
        "--experiment",
        "per-cartpole",
        "--tracking-uri",
        uri,
        "--out",
        "rep",
        "--reps",
        "200",
        "--no-log",
        "--quiet",
        "--plan",
    ]
    proc = run_report(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [ln for ln in proc.stdout.splitlines() if ln.startswith("python -m per_exp.train")]
    assert len(commands) == 2, proc.stdout  # uniform needs seeds 3-4, sumtree 2-4: two sweeps
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "pilot first (5 seeds)" in md and all(c in md for c in commands)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("MLFLOW_TRACKING_URI", None)

    def run(line):
        argv = shlex.split(line)
        done = subprocess.run(
            [sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]

    for line in commands:
        run(line)
    after = _census(uri)
    new = {k: v for k, v in after.items() if k not in before}
    assert {k: after[k] for k in before} == before  # nothing existing was touched
    assert sorted((s, seed) for _, _, s, seed in new.values()) == [
        ("sumtree", 2),
        ("sumtree", 3),
        ("sumtree", 4),
        ("uniform", 3),
        ("uniform", 4),
    ]
    assert all(status == "FINISHED" for status, *_ in after.values())
    assert len({h for _, h, _, _ in after.values()}) == len(after) == 10  # each config trained once
    run(commands[0])  # launched again: every job is FINISHED, so it is skipped
    assert _census(uri) == after
    # the pilot is complete: 5 seeds each, all unsolved in 2 episodes: no effect to plan for
    proc = run_report(args, cwd=tmp_path)
    assert proc.returncode == 0 and "# nothing to add" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_the_one_time_numba_compile_lands_in_the_first_run_and_the_report_shows_it_apart(tmp_path):
    """A cold numba cache, two runs one after the other in one process (the basic launcher, one job per
    run): the first run's wall time carries the compile; the report's steady times do not."""
    import os

    from analysis.analyse import analyse
    from analysis.load import load_runs

    cache = tmp_path / "numba-cache"
    cache.mkdir()
    os.environ["NUMBA_CACHE_DIR"] = str(cache)  # inherited by the trainer's subprocess only
    try:
        from tests.support.stores import run_real_sweep

        proc = run_real_sweep(
            # one job per run: grouped, the two seeds would train side by side and both wait for the compile
            tmp_path,
            ["sampler=sumtree", "seed=0,1", "max_episodes=20", "group.enabled=false"],
        )
    finally:
        del os.environ["NUMBA_CACHE_DIR"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = load_runs("per-cartpole", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", progress=False)
    s = analyse(loaded, reps=200).scores.set_index("seed")
    first = s.loc["0"]
    print(s[["wall_seconds", "startup_seconds", "steady_wall_seconds", "total_env_steps"]])
    raw = s["wall_seconds"] / s["total_env_steps"]
    steady = s["steady_wall_seconds"] / s["total_env_steps"]
    assert raw["0"] > 8 * raw["1"]  # per env step, the first run is charged for the compile
    assert first["startup_seconds"] > 0.8 * (first["wall_seconds"] - raw["1"] * first["total_env_steps"])
    assert steady.max() < 4 * steady.min()  # without it the two runs cost about alike (a loaded machine)


def _two_caps_store(tmp_path):
    """Two sweeps of one config into one experiment, capped at 100 and at 500 episodes: the same seeds, the
    same learning (the 100-episode runs are the 500-episode runs cut at 100), so the truth is "no difference"."""
    from tests.support.stores import BASE_PARAMS, log_job, new_store, synthetic_lengths

    uri, client, eid = new_store(tmp_path, "two-caps")
    for cap in (500, 100):
        pid = client.create_run(eid, run_name=f"sweep-{cap}", tags={C.TAG_ROLE: C.ROLE_SWEEP}).info.run_id
        for seed in range(8):
            lengths, solved = synthetic_lengths(np.random.default_rng(seed), 30 + 10 * seed, 500)
            if cap < 500:
                lengths, solved = lengths[:cap], (solved if solved is not None and solved < cap else None)
            params = dict(BASE_PARAMS, seed=str(seed), max_episodes=str(cap))
            log_job(client, eid, params, lengths, solved, parent_id=pid, tmp=tmp_path)
        client.set_terminated(pid)
    return uri


@pytest.mark.slow
def test_two_sweeps_with_different_caps_are_refused_then_compared_censored(tmp_path):
    uri = _two_caps_store(tmp_path)
    base = ["--experiment", "two-caps", "--tracking-uri", uri, "--reps", "300", "--no-log", "--quiet"]
    (rc, _, se), (rc2, _, se2) = run_reports(
        [base + ["--out", "refused"], base + ["--out", "allowed", "--allow-mixed-rules"]], cwd=tmp_path
    )
    # refused: one line, exit 2, nothing written
    assert rc == 2 and "Traceback" not in se and se.strip().count("\n") == 0, se
    assert se.startswith("error: these runs had different episode caps or solve rules")
    assert "max_episodes 500 (8 runs), 100 (8 runs)" in se and "--allow-mixed-rules" in se
    assert not (tmp_path / "refused").exists()
    # allowed: censoring stated, and the comparison is honest
    assert rc2 == 0, se2[-3000:]
    md = (tmp_path / "allowed" / "report.md").read_text(encoding="utf-8")
    assert "**Unsolved runs are censored at their own cap**" in md and "Gehan" in md
    assert "compared only because `--allow-mixed-rules` was given" in md
    row = re.search(r"\| max_episodes=100 \| max_episodes=500 \| ([0-9.]+) \[", md.split("### In episodes")[1])
    assert float(row.group(1)) == 0.5  # identical learning: no difference, once censoring is respected
    scores = __import__("pandas").read_csv(tmp_path / "allowed" / "scores.csv")
    capped = scores[scores["episode_cap"] == 100]
    full = scores[scores["episode_cap"] == 500]
    assert (~capped["solved"]).any() and capped["solved"].any()  # the cap cut some runs, not all
    from analysis.stats import probability_of_improvement

    naive = probability_of_improvement(capped["episodes_to_solve"], full["episodes_to_solve"], higher_is_better=False)
    assert naive > 0.6  # what the report said before: the capped group "solves sooner"
    assert "≥ " in md.split("### Episodes to solve")[1].split("###")[0]  # its aggregates are lower bounds


def test_three_seeds_per_group_get_the_caveat_not_a_ci(tmp_path):
    from tests.support.stores import build_store

    s = build_store(tmp_path, samplers=("uniform", "sumtree"), seeds=range(3), failed=False, experiment="three")
    r = build_report(s["experiment"], tmp_path / "out", tracking_uri=s["uri"], reps=300, log=False, progress=False)
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "**Too few seeds for confidence intervals** in 2 of 2 groups (3 seeds; a CI needs at least 5)" in md
    assert "with 3 seeds its 95% interval *is* the min-max range" in md
    table = md.split("### Episodes to solve")[1].split("###")[0]
    assert table.count("of 3 seeds; no CI)") == 6 and "[" not in table.split("|---|")[-1]
    assert "(no CI: 3 and 3 seeds)" in md and "pilot first (5 seeds)" in md
    # the figure draws the range dashed, and says what it is
    from analysis.report import build_figures

    fig = build_figures(r.result)["episodes_to_solve"]
    ax = fig.axes[0]
    bars = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    assert bars and all(c.get_linestyle()[0][1] is not None for c in bars)  # dashed, not solid
    assert any(t.get_text() == "range of < 5 seeds (no CI)" for t in ax.get_legend().get_texts())
