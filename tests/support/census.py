"""What a store holds after a launch, counted the way the trust tests need it: runs per config
hash, parents, metric points per (key, step), and each run's own `hydra/overrides.yaml`."""

from __future__ import annotations

import collections
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from per_exp import contract as C
from per_exp import tracking


@dataclass
class Census:
    jobs: list
    parents: list
    registries: list

    def by_hash(self) -> dict[str, list]:
        out: dict[str, list] = collections.defaultdict(list)
        for r in self.jobs:
            out[r.data.tags[C.TAG_CONFIG_HASH]].append(r)
        return dict(out)


def census(uri: str) -> Census:
    c = tracking.client_for(uri)  # under the set-up lock: a launch may be creating the file right now
    exps = [e.experiment_id for e in c.search_experiments()]
    runs = c.search_runs(exps, max_results=5000) if exps else []
    role = lambda r: r.data.tags.get(C.TAG_ROLE)  # noqa: E731
    return Census(
        [r for r in runs if role(r) == C.ROLE_JOB],
        [r for r in runs if role(r) == C.ROLE_SWEEP],
        [r for r in runs if role(r) == C.ROLE_CLAIMS],
    )


def points_per_step(uri: str, run_id: str) -> dict[str, collections.Counter]:
    """{metric key: Counter(step -> number of points)}; a clean run has 1 everywhere."""
    c = MlflowClient(uri)
    return {
        k: collections.Counter(m.step for m in c.get_metric_history(run_id, k)) for k in c.get_run(run_id).data.metrics
    }


def duplicated_points(uri: str, run_id: str) -> int:
    return sum(n - 1 for counts in points_per_step(uri, run_id).values() for n in counts.values() if n > 1)


def steps_of(uri: str, run_id: str, key: str = C.EPISODE_STEPS) -> list[int]:
    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


def run_overrides(uri: str, run_id: str) -> list[str]:
    """The run's own hydra/overrides.yaml artifact, as its list of override strings."""
    import yaml

    with tempfile.TemporaryDirectory() as d:
        p = MlflowClient(uri).download_artifacts(run_id, f"{C.ARTIFACT_HYDRA_DIR}/overrides.yaml", d)
        return list(yaml.safe_load(Path(p).read_text()) or [])


def seed_of(overrides: list[str]) -> int:
    return int(next(o.split("=", 1)[1] for o in overrides if o.startswith("seed=")))


def assert_each_job_trained_once(uri: str, seeds: set[int], episodes: int) -> None:
    """The jobs of these seeds: one run per config hash, FINISHED, every point once, its own
    overrides, under its own parent."""
    cen = census(uri)
    jobs = [r for r in cen.jobs if int(r.data.params["seed"]) in seeds]
    by_hash: dict[str, list] = {}
    for r in jobs:
        by_hash.setdefault(r.data.tags[C.TAG_CONFIG_HASH], []).append(r)
    assert len(by_hash) == len(seeds), {h: len(rs) for h, rs in by_hash.items()}
    assert all(len(rs) == 1 for rs in by_hash.values()), {h: len(rs) for h, rs in by_hash.items()}
    parent_ids = {p.info.run_id for p in cen.parents}
    for r in jobs:
        rid = r.info.run_id
        assert r.info.status == "FINISHED", (r.info.run_name, r.info.status, r.data.tags.get("error"))
        assert duplicated_points(uri, rid) == 0
        assert steps_of(uri, rid) == list(range(episodes))
        assert seed_of(run_overrides(uri, rid)) == int(r.data.params["seed"])
        if parent_ids:  # a sweep's runs (a single run has no parent)
            assert r.data.tags[C.TAG_PARENT] in parent_ids
