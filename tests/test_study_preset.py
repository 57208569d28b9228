"""The study preset (experiment=study): every cell of its sweep composes with real Hydra and is what it says.

The sweep is read from the preset's own `hydra.sweeper.params`, expanded as
Hydra's basic sweeper does (a cartesian product), and each job is composed
from the real config tree: it validates, it switches exactly the keys its
cell claims, and the cells that equal an existing config have its hash.
"""

from __future__ import annotations

import itertools

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from per_exp.config import config_hash, flatten, resolved, typed, validate
from tests.support.cli import CONF_DIR, compose, compose_dictconfig, compose_resolved
from tests.support.pinned import PINNED_HASHES

STUDY = CONF_DIR / "experiment" / "study.yaml"
INGREDIENT_KEYS = {
    "alpha": "sampler.alpha",
    "is": "sampler.is_weights",
    "max_new": "sampler.new_priority",
    "sampled_refresh": "sampler.refresh",
    "stratified": "sampler.stratified",
}
SAMPLER_SWITCHES = (
    "sampler.name",
    "sampler.alpha",
    "sampler.beta0",
    "sampler.is_weights",
    "sampler.new_priority",
    "sampler.refresh",
    "sampler.stratified",
    "warmup_episodes",
)


def _sweep() -> dict[str, list[str]]:
    """The preset's sweeper params, each expanded to its list of values by Hydra's own override parser."""
    params = yaml.safe_load(STUDY.read_text())["hydra"]["sweeper"]["params"]
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return {o.get_key_element(): list(o.sweep_string_iterator()) for o in parsed}


def _switches(overrides: list[str]) -> dict[str, object]:
    flat = flatten(compose_resolved(overrides))
    return {k: flat[k] for k in SAMPLER_SWITCHES}


def test_the_design_is_two_tasks_by_eighteen_cells_by_fifty_seeds():
    sweep = _sweep()
    assert sweep["env"] == ["cartpole_v0", "acrobot_v1"]
    assert len(sweep["seed"]) == 50 and sweep["seed"][:2] == ["0", "1"]
    cells = sweep["ablation"]
    assert len(cells) == len(set(cells)) == 18
    assert {p.stem for p in (CONF_DIR / "ablation").glob("*.yaml")} == set(cells)


def test_every_job_of_the_preset_composes_and_validates():
    sweep = _sweep()
    hashes = set()
    # every (env, cell) pair, at the last seed (the seed only sets the seed key)
    for env, cell in itertools.product(sweep["env"], sweep["ablation"]):
        dc = compose_dictconfig(["experiment=study", f"env={env}", f"ablation={cell}", f"seed={sweep['seed'][-1]}"])
        cfg = typed(dc)
        validate(cfg)
        assert cfg.env.name == env and cfg.seed == 49
        assert cfg.eval.every_episodes > 0  # the study evaluates
        hashes.add(config_hash(resolved(dc)))
    assert len(hashes) == 2 * 18  # no two jobs are one run


@pytest.mark.parametrize("ingredient", sorted(INGREDIENT_KEYS))
def test_leave_one_out_and_add_one_in_switch_one_ingredient(ingredient):
    key = INGREDIENT_KEYS[ingredient]
    per, prio = _switches(["ablation=per"]), _switches(["ablation=prio"])
    loo, aoi = _switches([f"ablation=per_no_{ingredient}"]), _switches([f"ablation=prio_{ingredient}"])
    assert {k for k in per if per[k] != loo[k]} == {key}
    assert {k for k in prio if prio[k] != aoi[k]} == {key}
    # the ingredient's off value is prio's, its on value per's
    assert loo[key] == prio[key] and aoi[key] == per[key]


def test_rank_and_warm_up_cells_switch_their_one_ingredient():
    per, prio = _switches(["ablation=per"]), _switches(["ablation=prio"])
    for base, name in ((per, "per"), (prio, "prio")):
        warm = _switches([f"ablation={name}_warmup"])
        assert {k for k in base if base[k] != warm[k]} == {"warmup_episodes"} and warm["warmup_episodes"] == 30
        rank = _switches([f"ablation={name}_rank"])
        changed = {k for k in base if base[k] != rank[k]}
        assert rank["sampler.name"] == "rank" and base["sampler.name"] == "sumtree"
        # full PER takes the paper's rank exponents (alpha 0.7, beta0 0.5); prio keeps its alpha 1
        rank_keys = {"sampler.name", "sampler.beta0"} | ({"sampler.alpha"} if name == "per" else set())
        assert changed == rank_keys
    assert (prio["sampler.alpha"], prio["sampler.is_weights"], prio["sampler.refresh"]) == (1.0, False, "full_episode")


def test_cells_that_are_existing_configs_keep_their_hash():
    pinned = {tuple(o): h for o, h in PINNED_HASHES}
    assert config_hash(compose_resolved(["ablation=per"])) == pinned[()]
    assert config_hash(compose_resolved(["ablation=uniform"])) == pinned[("sampler=uniform",)]
    # the seed notebook as is: the cell on CartPole-v0 is experiment=seed_notebook
    assert config_hash(compose_resolved(["ablation=seed_notebook"])) == pinned[("experiment=seed_notebook",)]
    # on Acrobot it keeps Acrobot's reward and solve rule
    c = compose(["experiment=study", "env=acrobot_v1", "ablation=seed_notebook"])
    assert (c.env.reward, c.solve.rule, c.sampler.name, c.env.truncation_as_terminal) == (
        "env",
        "mean_return",
        "linear_scan",
        True,
    )


def test_the_sweep_manager_counts_the_presets_own_sweep(tmp_path):
    """`-m experiment=study` runs the preset's sweeper params; the parent run knows every job and names them."""
    from mlflow.tracking import MlflowClient

    from per_exp import contract as C
    from tests.support.cli import run_cli

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = run_cli(
        [
            "-m",
            "experiment=study",
            # env comes from the preset's sweep (two tasks); the command line wins for the keys it
            # gives, as in Hydra's basic sweeper
            "seed=7",
            "ablation=uniform,per_no_is",
            "max_episodes=2",
            "eval.every_episodes=1",
            "eval.episodes=1",
            "checkpoint.every_episodes=0",
            "tracking.log_model=false",
            f"tracking.uri={uri}",
        ],
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("per-study")
    runs = C.search_runs(client, exp.experiment_id)
    parents = [x for x in runs if x.data.tags.get(C.TAG_ROLE) == C.ROLE_SWEEP]
    jobs = [x for x in runs if x.data.tags.get(C.TAG_ROLE) == C.ROLE_JOB]
    assert len(parents) == 1 and parents[0].data.tags[C.TAG_N_JOBS] == "4"
    assert sorted(j.info.run_name for j in jobs) == [
        f"s7-{env}-{cell}"
        for env in ("acrobot_v1", "cartpole_v0")
        for cell in ("per_no_is-sumtree-dueling", "uniform-dueling")
    ]
    for j in jobs:
        assert j.info.status == "FINISHED" and j.data.tags[C.TAG_PARENT] == parents[0].info.run_id
        assert j.data.params["seed"] == "7" and j.data.params["eval.every_episodes"] == "1"
        assert len(client.get_metric_history(j.info.run_id, C.EVAL_RETURN)) == 2
