"""The claim protocol: the liveness rule on plain data, then real processes racing on real stores."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from per_exp import contract as C
from per_exp import owner as owners
from per_exp.claims import ALIVE, DEAD, FREE, MINE, Holder, Lease, Registry, holder_of, judge
from per_exp.heartbeat import Heartbeat
from per_exp.owner import Owner
from tests.support.races import race

HERE = Owner(host="node-a", pid=100, started="5000", boot="boot-1")


def _holder(o: Owner, t: float = 1000.0, hb: float | None = None, released: bool = False) -> Holder:
    return Holder(Lease("h", 3, o, "n", t), hb, released)


def _gone(_o: Owner) -> tuple[bool, str]:
    return False, ""


def _running(started: str):
    return lambda _o: (True, started)


@pytest.mark.parametrize(
    "holder, probe, now, state",
    [
        (_holder(HERE, released=True), _running("5000"), 1001.0, FREE),
        (_holder(HERE), _running("5000"), 1001.0, MINE),
        # same host: the process is looked at, the heartbeat's age does not matter
        (_holder(Owner("node-a", 7, "42", "boot-1")), _gone, 1001.0, DEAD),
        (_holder(Owner("node-a", 7, "42", "boot-1")), _running("43"), 1001.0, DEAD),  # pid reused
        (_holder(Owner("node-a", 7, "42", "boot-1"), hb=0.0), _running("42"), 99999.0, ALIVE),
        (_holder(Owner("node-a", 7, "42", "boot-0")), _running("42"), 1001.0, DEAD),  # host rebooted since
        # another host: only the heartbeat (or, before the first one, the claim's time) tells
        (_holder(Owner("node-b", 7, "42", "boot-9")), _gone, 1001.0, ALIVE),
        (_holder(Owner("node-b", 7, "42", "boot-9")), _gone, 1000.0 + 61, DEAD),
        (_holder(Owner("node-b", 7, "42", "boot-9"), hb=2000.0), _gone, 2059.0, ALIVE),
        (_holder(Owner("node-b", 7, "42", "boot-9"), hb=2000.0), _gone, 2061.0, DEAD),
    ],
)
def test_liveness_rule(holder, probe, now, state):
    assert judge(holder, HERE, now, stale_after=60, probe=probe).state == state


def test_a_requeued_slurm_job_is_its_own_heir_and_other_jobs_are_not():
    old = Owner("node-b", 7, "42", "boot-9", slurm_job="77_3", slurm_restart=0)
    requeued = Owner("node-c", 9, "11", "boot-8", slurm_job="77_3", slurm_restart=1)
    other_task = Owner("node-c", 9, "11", "boot-8", slurm_job="77_4", slurm_restart=1)
    fresh = _holder(old, hb=1000.0)
    assert judge(fresh, requeued, 1001.0, 60, probe=_running("42")).state == DEAD
    assert judge(fresh, other_task, 1001.0, 60, probe=_running("42")).state == ALIVE
    # an earlier incarnation never takes over a later one
    assert judge(_holder(requeued, hb=1000.0), old, 1001.0, 60, probe=_running("11")).state == ALIVE


def test_holder_is_the_highest_epoch_and_a_heartbeat_counts_only_for_its_epoch():
    a, b = Owner("x", 1, "1", "b"), Owner("y", 2, "2", "b")
    params = {
        "lease.h.0": Lease("h", 0, a, "n0", 10.0).value(),
        "lease.h.1": Lease("h", 1, b, "n1", 20.0).value(),
        "lease.other.5": Lease("other", 5, a, "n", 1.0).value(),
    }
    h = holder_of("h", params, {"heartbeat.h": json.dumps({"epoch": 0, "t": 99.0, "released": True})})
    assert h is not None and h.lease.epoch == 1 and h.lease.owner == b
    assert h.heartbeat_at is None and not h.released  # epoch 0's release is not epoch 1's
    assert holder_of("nothing", params, {}) is None


# ------------------------------------------------------------------------------- real processes


def _sqlite(tmp: Path) -> tuple[str, MlflowClient, str]:
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    c = MlflowClient(uri)
    return uri, c, c.create_experiment("claims")


def _registry_runs(c: MlflowClient, exp_id: str) -> list:
    return c.search_runs([exp_id], C.tag_equals(C.TAG_ROLE, C.ROLE_CLAIMS))


@pytest.mark.slow
def test_eight_processes_electing_the_registry_agree_on_one(tmp_path: Path):
    uri, c, exp = _sqlite(tmp_path)
    got, _ = race(uri, exp, "open", "", 8, tmp_path)
    assert len({g["registry"] for g in got}) == 1
    assert [r.info.run_id for r in _registry_runs(c, exp)] == [got[0]["registry"]]
    assert c.get_experiment(exp).tags[C.EXPERIMENT_TAG_CLAIMS_RUN] == got[0]["registry"]
    # the election experiment is out of sight but keeps its name
    from mlflow.entities import ViewType

    names = {e.name: e.lifecycle_stage for e in c.search_experiments(view_type=ViewType.ALL)}
    assert names[f".per_exp-claims-election-{exp}"] == "deleted"


@pytest.mark.slow
def test_eight_processes_claiming_one_hash_leave_exactly_one_owner(tmp_path: Path):
    uri, c, exp = _sqlite(tmp_path)
    Registry.open(c, exp)
    got, _ = race(uri, exp, "claim", "abc123", 8, tmp_path)
    winners = [g for g in got if g["won"]]
    assert len(winners) == 1, got
    assert {g["epoch"] for g in got} == {0}
    assert {g["owner_pid"] for g in got} == {winners[0]["pid"]}  # every loser names the winner
    params = c.get_run(Registry.open(c, exp).run_id).data.params
    assert [k for k in params if k.startswith("lease.abc123.")] == ["lease.abc123.0"]
    assert json.loads(params["lease.abc123.0"])["owner"]["pid"] == winners[0]["pid"]


@pytest.mark.slow
def test_eight_processes_publishing_one_key_read_back_one_value(tmp_path: Path):
    uri, c, exp = _sqlite(tmp_path)
    Registry.open(c, exp)
    got, _ = race(uri, exp, "publish", "sweep.s1.0", 8, tmp_path)
    assert len({g["value"] for g in got}) == 1
    assert got[0]["value"] in {f"from-{g['pid']}" for g in got}


@pytest.mark.slow
def test_a_live_owner_keeps_its_hash_and_a_killed_one_is_taken_over_at_once(tmp_path: Path):
    uri, c, exp = _sqlite(tmp_path)
    reg = Registry.open(c, exp)
    [first], procs = race(uri, exp, "claim", "h1", 1, tmp_path, hold=600)
    holder = procs[0]
    try:
        assert first["won"]
        here = owners.this_process()
        held = reg.claim("h1", here, stale_after=3600)
        assert held.lease is None and held.held_by.lease.owner.pid == holder.pid
        assert held.why == "its process runs on this host"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        t0 = time.monotonic()
        taken = reg.claim("h1", here, stale_after=3600)  # the heartbeat would be fresh for an hour
        assert taken.lease is not None and taken.lease.epoch == 1
        assert taken.taken_over is not None and taken.taken_over.lease.owner.pid == holder.pid
        assert time.monotonic() - t0 < 10
        # the same process claiming again gets its own lease back, not a new epoch
        again = reg.claim("h1", here, stale_after=3600)
        assert again.lease == taken.lease
        # released: the next claimer takes the next epoch without waiting
        reg.release(taken.lease)
        assert reg.holder("h1").released
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_heartbeat_stops_when_its_hash_is_taken_over(tmp_path: Path):
    _, c, exp = _sqlite(tmp_path)
    reg = Registry.open(c, exp)
    remote = Owner("elsewhere", 1, "1", "b")
    mine = reg.claim("h2", remote, stale_after=60)
    assert mine.lease is not None
    hb = Heartbeat(reg, mine.lease, every=0.2, give_up_after=30).start()
    try:
        time.sleep(0.8)
        assert hb.lost is None
        beat = reg.holder("h2").heartbeat_at
        assert beat is not None and time.time() - beat < 5
        # the heartbeat goes quiet from the point of view of another host: stale, taken over
        thief = reg.claim("h2", owners.this_process(), stale_after=0.0)
        assert thief.lease is not None and thief.lease.epoch == 1
        deadline = time.monotonic() + 10
        while hb.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hb.lost is not None and hb.lost.taken_over
        with pytest.raises(RuntimeError, match="taken over"):
            hb.check()
    finally:
        hb.stop()


@pytest.mark.slow
def test_eight_launches_setting_up_a_fresh_sqlite_store_all_succeed_under_the_setup_lock(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"  # does not exist yet
    got, _ = race(uri, "", "setup", "lock", 8, tmp_path)
    assert [g.get("error") for g in got if not g["ok"]] == []
    assert MlflowClient(uri).get_experiment_by_name("Default") is not None
