"""The report's figures, read back from the real matplotlib Figures built from real MLflow stores."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection

from analysis.analyse import analyse
from analysis.load import load_runs
from analysis.plots import MIN_SPAN_FRACTION, span_limits
from analysis.render import render_markdown
from analysis.report import build_figures
from per_exp import contract as C
from tests.support.stores import BASE_PARAMS, log_job, new_store, synthetic_lengths

EPSILON = {
    "epsilon.schedule": "inverse_episode",
    "epsilon.scale": "0.5",
    "epsilon.start": "1.0",
    "epsilon.end": "0.05",
    "epsilon.decay_steps": "10000",
}
PRIORITY = {"sampler.beta0": "0.4", "sampler.is_weights": "True", "sampler.stratified": "True"}


def _store(tmp_path, cells, seeds=range(6), cap=300, speed=lambda p: 50, columns=None, summary=None, name="figs"):
    """A real store with one run per (cell params, seed); cells are dicts of params over BASE_PARAMS."""
    uri, client, eid = new_store(tmp_path, name)
    pid = client.create_run(eid, run_name="sweep", tags={C.TAG_ROLE: C.ROLE_SWEEP}).info.run_id
    rng = np.random.default_rng(0)
    for cell in cells:
        for seed in seeds:
            p = dict(BASE_PARAMS, **EPSILON, **PRIORITY, **cell, seed=str(seed), max_episodes=str(cap))
            lengths, solved = synthetic_lengths(rng, speed(p), cap)
            cols = columns(p, len(lengths)) if columns else None
            summ = summary(p, lengths) if summary else None
            log_job(client, eid, p, lengths, solved, parent_id=pid, tmp=tmp_path, columns=cols, summary_extra=summ)
    client.set_terminated(pid)
    loaded = load_runs(name, tracking_uri=uri, progress=False)
    return loaded, analyse(loaded, reps=200)


def test_span_limits_keep_a_negligible_difference_small():
    lo, hi = span_limits([199.90, 199.99], min_span=10, ceil=200)
    assert hi - lo >= 10 and hi <= 200 + 0.05 * 10 + 1e-9 and lo < 199.9 - 8
    lo, hi = span_limits([80, 120], min_span=10, floor=0)  # a real spread is padded, not stretched
    assert (lo, hi) == pytest.approx((78.0, 122.0))
    lo, hi = span_limits([1.0, 3.0], min_span=25, floor=0)  # near a floor: shifted up, not cut
    assert lo == pytest.approx(-1.25) and hi == pytest.approx(25 + 1.25)  # the span is kept


def test_final_length_panel_spans_at_least_a_twentieth_of_the_time_limit(tmp_path):
    _, res = _store(tmp_path, [{"sampler.name": "uniform"}, {"sampler.name": "sumtree"}])
    finals = res.scores["final"]
    assert finals.max() - finals.min() < 2  # every run ends near 200: a tiny difference
    figs = build_figures(res)
    panel = next(ax for ax in figs["aggregates"].axes if ax.get_xlabel().startswith("Final episode length"))
    lo, hi = panel.get_xlim()
    assert hi - lo >= MIN_SPAN_FRACTION * 200 and hi <= 200 * 1.01
    assert lo <= finals.min() and hi >= finals.max()
    episodes = next(ax for ax in figs["aggregates"].axes if ax.get_xlabel().startswith("Episodes to solve"))
    t = res.tables["episodes_to_solve"]
    lo, hi = episodes.get_xlim()
    assert lo <= t["lo"].min() and hi >= t["hi"].max() and hi < 300  # the data's own range, not the cap
    plt.close("all")


def _vertical_lines_at(ax, x):
    return [ln for ln in ax.get_lines() if np.allclose(ln.get_xdata(), [x, x])]


def test_the_cap_is_on_an_axis_only_when_a_run_was_capped(tmp_path):
    _, res = _store(tmp_path / "a", [{"sampler.name": "uniform"}, {"sampler.name": "sumtree"}], cap=300)
    assert res.scores["solved"].all()
    figs = build_figures(res)
    ax = figs["episodes_to_solve"].axes[0]
    assert ax.get_xlim()[1] < 300 * 0.6 and not _vertical_lines_at(ax, 300)
    assert figs["performance_profile"].axes[0].get_xlim()[1] < 300 * 0.6
    plt.close("all")
    # one seed never solves: now the cap is drawn and the axes reach it
    _, res = _store(
        tmp_path / "b",
        [{"sampler.name": "uniform"}, {"sampler.name": "sumtree"}],
        cap=300,
        speed=lambda p: 3000 if p["seed"] == "2" and p["sampler.name"] == "uniform" else 50,
        name="figs-capped",
    )
    assert (~res.scores["solved"]).sum() == 1
    figs = build_figures(res)
    ax = figs["episodes_to_solve"].axes[0]
    assert ax.get_xlim()[1] >= 300 and len(_vertical_lines_at(ax, 300)) == 1
    assert figs["performance_profile"].axes[0].get_xlim()[1] >= 299
    plt.close("all")


def _dots_inside(ax) -> bool:
    """Every scatter dot lies inside the axes, its whole marker included (display coordinates)."""
    box = ax.get_window_extent()
    for coll in ax.collections:
        if not isinstance(coll, PathCollection) or not len(coll.get_offsets()):
            continue
        radius = np.sqrt(np.max(coll.get_sizes())) / 2 * ax.figure.dpi / 72
        pts = ax.transData.transform(np.asarray(coll.get_offsets(), float))
        if not (
            (pts[:, 0] - radius >= box.x0).all()
            and (pts[:, 0] + radius <= box.x1).all()
            and (pts[:, 1] - radius >= box.y0).all()
            and (pts[:, 1] + radius <= box.y1).all()
        ):
            return False
    return True


def test_the_ablation_grid_of_a_mixed_sweep_has_no_empty_facet_and_no_clipped_dot(tmp_path):
    # the seed ablation's shape: linear_scan with the scan bug on and off, uniform only with it on;
    # one uniform seed never solves (a dot at the cap, the top of the range)
    cells = [
        {"sampler.name": "linear_scan", "sampler.scan_off_by_one": s, "env.truncation_as_terminal": t}
        for s in ("True", "False")
        for t in ("True", "False")
    ] + [
        {"sampler.name": "uniform", "sampler.scan_off_by_one": "True", "env.truncation_as_terminal": t}
        for t in ("True", "False")
    ]
    _, res = _store(
        tmp_path,
        cells,
        seeds=range(3),
        cap=200,
        speed=lambda p: 2000 if (p["sampler.name"], p["seed"]) == ("uniform", "0") else 50,
    )
    assert len(res.axes.axes) == 3
    fig = build_figures(res)["ablation_grid"]
    fig.canvas.draw()
    facets = [ax for ax in fig.axes if ax.get_visible()]
    assert len(facets) == 4  # the four (scan bug, truncation) combinations: none empty
    for ax in facets:
        dots = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]
        assert dots, ax.get_title()
        assert len(ax.get_xticks()) == len(dots)  # one x position per sampler that has runs there
        assert _dots_inside(ax), ax.get_title()
    top = max(ax.get_ylim()[1] for ax in facets)
    assert top >= 200  # the capped dot is in range
    plt.close("all")


def test_fixed_configuration_lists_only_keys_that_take_effect(tmp_path):
    loaded, res = _store(tmp_path / "u", [{"sampler.name": "uniform"}], seeds=range(5), name="uniform-only")
    md = render_markdown(loaded, res, {}, loaded.tracking_uri)
    table = md.split("## Fixed configuration")[1].split("Not listed")[0]
    for key in ("epsilon.start", "epsilon.end", "epsilon.decay_steps", "sampler.alpha", "sampler.beta0"):
        assert f"| {key} |" not in table, key
    assert "| epsilon.scale | 0.5 | all runs |" in table and "| lr | 0.0001 | all runs |" in table
    assert "`epsilon.start`" in md.split("Not listed")[1] and "inverse_episode" in md.split("Not listed")[1]
    # a mixed sweep: a priority key applies to the prioritized half only, and says so
    loaded, res = _store(
        tmp_path / "m", [{"sampler.name": "uniform"}, {"sampler.name": "sumtree"}], seeds=range(5), name="mixed"
    )
    md = render_markdown(loaded, res, {}, loaded.tracking_uri)
    assert "| sampler.beta0 | 0.4 | 5 of 10 runs (not under sampler=uniform" in md


def test_compute_shows_the_one_time_start_up_apart(tmp_path):
    def columns(p, n):
        sps = np.full(n, 1000.0)
        if p["seed"] == "0":
            sps[0] = 4.0  # the first run of the process compiles: its first episode is slow
        return {C.PERF_SPS: sps, C.TRAIN_UPDATES: np.r_[0.0, np.arange(1, n) * 10.0]}

    def summary(p, lengths):
        wall = sum(lengths) / 1000.0 + (lengths[0] / 4.0 - lengths[0] / 1000.0 if p["seed"] == "0" else 0.0)
        return {C.WALL_SECONDS: wall}

    _, res = _store(tmp_path, [{"sampler.name": "sumtree"}], seeds=range(5), columns=columns, summary=summary)
    s = res.scores.set_index("seed")
    assert s.loc["0", "wall_seconds"] > 1.5 + s.loc["0", "total_env_steps"] / 1000.0 - 0.01
    assert s.loc["0", "startup_seconds"] == pytest.approx(
        s.loc["0", "wall_seconds"] - s.loc["0", "total_env_steps"] / 1000
    )
    assert s["steady_wall_seconds"].to_numpy() == pytest.approx(s["total_env_steps"].to_numpy() / 1000.0)
    fig = build_figures(res)["compute"]
    wall_ax, sps_ax, startup_ax = fig.axes[:3]
    assert wall_ax.get_xlabel().startswith("Wall time per run, start-up") and "start-up" in startup_ax.get_xlabel()
    wall_dots = np.concatenate([c.get_offsets()[:, 0] for c in wall_ax.collections if isinstance(c, PathCollection)])
    assert sorted(wall_dots) == pytest.approx(sorted(s["total_env_steps"] / 1000.0))  # no compile in them
    start_dots = np.concatenate(
        [c.get_offsets()[:, 0] for c in startup_ax.collections if isinstance(c, PathCollection)]
    )
    assert max(start_dots) == pytest.approx(s.loc["0", "startup_seconds"]) and sorted(start_dots)[-2] == 0.0
    sps_dots = np.concatenate([c.get_offsets()[:, 0] for c in sps_ax.collections if isinstance(c, PathCollection)])
    assert list(sps_dots) == pytest.approx([1000.0] * 5)
    plt.close("all")


def test_return_curves_are_not_cut_at_zero(tmp_path):
    rule = {C.PARAM_SOLVE_RULE: C.SOLVE_RULE_MEAN_RETURN, C.PARAM_SOLVE_THRESHOLD: "-100", C.PARAM_ENV_MAX_STEPS: "500"}

    def columns(p, n):
        return {C.EPISODE_RETURN: -np.linspace(500, 80, n)}

    _, res = _store(
        tmp_path,
        [dict(rule, **{"sampler.name": "uniform"}), dict(rule, **{"sampler.name": "sumtree"})],
        seeds=range(5),
        columns=columns,
    )
    assert res.curve_metrics == (C.EPISODE_RETURN,)
    fig = build_figures(res)["learning_curves"]
    lo, hi = fig.axes[0].get_ylim()
    assert lo <= -400 and hi <= 0 and "Return" in fig.axes[0].get_ylabel()
    plt.close("all")
