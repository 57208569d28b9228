"""Claims on config hashes, kept in the store itself: at most one live owner per hash at a time.

MLflow has no lock, but a run param is write-once: the params table's primary
key is (run, key), and logging a key again with another value is refused, by
the SQLite file and by a tracking server (whatever its database) alike. That
makes a param a consensus primitive: of any number of processes that log the
same key at once, exactly one value is stored, and every process can read
which. One run per experiment, the *claims registry* (tag
`per_exp.role=claims`, named `.per_exp-claims`), holds:

    params  lease.<hash>.<epoch>    who won epoch <epoch> of a config hash (JSON: owner, nonce, time)
            sweep.<sweep hash>.<k>  the parent run of a sweep, once and for all
    tags    heartbeat.<hash>        the current owner's last sign of life, or "released"

To claim a hash a process reads the highest epoch; if its owner is alive
(`judge`) the hash is held and the process leaves it alone; otherwise (no
epoch yet, released, owner dead) it logs `lease.<hash>.<epoch + 1>` with a
value no other process can write (a random nonce), and reads it back: the
value stored is the winner. Epochs only grow, so an owner that was taken over
(it looked dead but was only cut off) sees a later epoch at its next heartbeat
and stops: the fence (see `per_exp.heartbeat`).

Who elects the registry itself: the process that creates the experiment
`.per_exp-claims-election-<experiment id>` (creation by name is atomic too);
it creates the registry run, records its id in the experiment's tag
`per_exp.claims_run` and deletes the election experiment (its name stays
taken). Everyone else waits for the tag.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from per_exp import contract as C
from per_exp import owner as owners
from per_exp.owner import Owner

log = logging.getLogger(__name__)

REGISTRY_TAG = C.EXPERIMENT_TAG_CLAIMS_RUN
ELECTION_PREFIX = C.CLAIMS_ELECTION_PREFIX
LEASE_PREFIX = C.PARAM_LEASE_PREFIX
HEARTBEAT_PREFIX = C.TAG_HEARTBEAT_PREFIX

FREE, MINE, ALIVE, DEAD = "free", "mine", "alive", "dead"


class ClaimError(RuntimeError):
    """The store did not let the claim be decided (unreachable, refused, registry missing)."""


@dataclass(frozen=True)
class Lease:
    config_hash: str
    epoch: int
    owner: Owner
    nonce: str
    claimed_at: float

    def key(self) -> str:
        return lease_key(self.config_hash, self.epoch)

    def value(self) -> str:
        return json.dumps({"owner": self.owner.to_dict(), "nonce": self.nonce, "t": self.claimed_at}, sort_keys=True)

    @classmethod
    def parse(cls, config_hash: str, epoch: int, value: str) -> Lease:
        d = json.loads(value)
        return cls(config_hash, epoch, Owner.from_dict(d["owner"]), str(d["nonce"]), float(d["t"]))


@dataclass(frozen=True)
class Holder:
    """The current epoch of a hash as a reader sees it."""

    lease: Lease
    heartbeat_at: float | None  # the owner's last heartbeat for this epoch (its clock), None: none yet
    released: bool


@dataclass(frozen=True)
class Verdict:
    state: str  # free | mine | alive | dead
    why: str


@dataclass(frozen=True)
class Claim:
    """The outcome of `Registry.claim`: a lease won, or the holder that keeps the hash."""

    lease: Lease | None
    held_by: Holder | None = None
    why: str = ""
    taken_over: Holder | None = None  # the dead or released holder this claim replaced


def lease_key(config_hash: str, epoch: int) -> str:
    return f"{LEASE_PREFIX}{config_hash}.{epoch}"


def heartbeat_key(config_hash: str) -> str:
    return f"{HEARTBEAT_PREFIX}{config_hash}"


def holder_of(config_hash: str, params: dict[str, str], tags: dict[str, str]) -> Holder | None:
    """The highest epoch of `config_hash` in a registry's params and tags, None if never claimed."""
    prefix = f"{LEASE_PREFIX}{config_hash}."
    epochs = [int(k[len(prefix) :]) for k in params if k.startswith(prefix) and k[len(prefix) :].isdigit()]
    if not epochs:
        return None
    e = max(epochs)
    lease = Lease.parse(config_hash, e, params[lease_key(config_hash, e)])
    hb_at, released = None, False
    raw = tags.get(heartbeat_key(config_hash))
    if raw:
        hb = json.loads(raw)
        if int(hb.get("epoch", -1)) == e:
            hb_at, released = float(hb["t"]), bool(hb.get("released", False))
    return Holder(lease, hb_at, released)


def judge(
    holder: Holder,
    here: Owner,
    now: float,
    stale_after: float,
    probe: Callable[[Owner], tuple[bool, str]] = owners.probe,
) -> Verdict:
    """Whether `holder` still holds its hash, seen from `here` at `now` (both on wall clocks).

    On the holder's own host its process is looked at directly (gone, or its pid
    reused: dead at once); a requeued Slurm job is its own earlier incarnation's
    heir. Elsewhere only the heartbeat can tell: older than `stale_after`
    seconds means dead, which assumes the two clocks agree to well within it.
    """
    o = holder.lease.owner
    if holder.released:
        return Verdict(FREE, "released")
    if o.same_process(here):
        return Verdict(MINE, "this process holds it")
    if owners.requeued_from(o, here):
        return Verdict(DEAD, f"requeued as this job (restart {here.slurm_restart})")
    local = owners.local_state(o, here, probe)
    if local == owners.DEAD:
        return Verdict(DEAD, "its process is gone")
    if local == owners.ALIVE:
        return Verdict(ALIVE, "its process runs on this host")
    last = holder.heartbeat_at if holder.heartbeat_at is not None else holder.lease.claimed_at
    age = now - last
    if age > stale_after:
        return Verdict(DEAD, f"no heartbeat for {age:.0f} s (stale after {stale_after:.0f} s)")
    return Verdict(ALIVE, f"heartbeat {max(age, 0):.0f} s ago")


def _is_already_exists(e: Exception) -> bool:
    return getattr(e, "error_code", "") == "RESOURCE_ALREADY_EXISTS"


class Registry:
    """One experiment's claims registry run, through an explicit MLflow client."""

    def __init__(self, client, experiment_id: str, run_id: str):
        self.client = client
        self.experiment_id = experiment_id
        self.run_id = run_id

    # ---------------------------------------------------------------- finding or electing it

    @classmethod
    def open(cls, client, experiment_id: str, wait_seconds: float = 60.0) -> Registry:
        """The experiment's registry; elected and created on first use (see the module's docstring)."""
        rid = cls._recorded(client, experiment_id)
        if rid:
            return cls._checked(client, experiment_id, rid)
        try:
            election = client.create_experiment(f"{ELECTION_PREFIX}{experiment_id}")
        except Exception as e:
            if not _is_already_exists(e):
                raise
            return cls._wait_for_election(client, experiment_id, wait_seconds)
        run = client.create_run(
            experiment_id,
            run_name=C.CLAIMS_RUN_NAME,
            tags={
                C.TAG_ROLE: C.ROLE_CLAIMS,
                "mlflow.note.content": "per_exp's claims registry: which process trains which config hash. "
                "Do not delete it (docs/trust.md: the claim protocol).",
            },
        )
        client.set_terminated(run.info.run_id, status="FINISHED")  # params still go in; the UI shows no live run
        client.set_experiment_tag(experiment_id, REGISTRY_TAG, run.info.run_id)
        client.delete_experiment(election)  # out of sight; its name stays taken, so nobody elects again
        log.info("claims registry %s created in experiment %s", run.info.run_id, experiment_id)
        return cls(client, experiment_id, run.info.run_id)

    @staticmethod
    def _recorded(client, experiment_id: str) -> str | None:
        return client.get_experiment(experiment_id).tags.get(REGISTRY_TAG)

    @classmethod
    def _checked(cls, client, experiment_id: str, run_id: str) -> Registry:
        run = client.get_run(run_id)
        if run.info.lifecycle_stage != "active":
            raise ClaimError(
                f"the claims registry run {run_id} of experiment {experiment_id} is deleted; "
                f"restore it (mlflow runs restore --run-id {run_id}) before launching into this experiment"
            )
        return cls(client, experiment_id, run_id)

    @classmethod
    def _wait_for_election(cls, client, experiment_id: str, wait_seconds: float) -> Registry:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            rid = cls._recorded(client, experiment_id)
            if rid:
                return cls._checked(client, experiment_id, rid)
            time.sleep(0.2)
        raise ClaimError(
            f"experiment {experiment_id} has no claims registry although its election began "
            f"(experiment {ELECTION_PREFIX}{experiment_id} exists) and {wait_seconds:.0f} s passed: the "
            "process that won it died before finishing. If no launch is running, remove the election "
            f"experiment for good (mlflow gc --experiment-ids <its id>) and launch again"
        )

    # ---------------------------------------------------------------- reading

    def snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        data = self.client.get_run(self.run_id).data
        return dict(data.params), dict(data.tags)

    def holder(self, config_hash: str) -> Holder | None:
        return holder_of(config_hash, *self.snapshot())

    # ---------------------------------------------------------------- claiming

    def claim(
        self,
        config_hash: str,
        here: Owner,
        stale_after: float,
        attempts: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> Claim:
        """Win the next epoch of `config_hash`, unless a live owner holds it (then say who)."""
        last_error: Exception | None = None
        for attempt in range(attempts):
            params, tags = self.snapshot()
            cur = holder_of(config_hash, params, tags)
            previous, previous_why = None, "claimed"
            if cur is not None:
                v = judge(cur, here, clock(), stale_after)
                if v.state == MINE:
                    return Claim(cur.lease, why=v.why)
                if v.state == ALIVE:
                    return Claim(None, held_by=cur, why=v.why)
                previous, previous_why = cur, v.why
            epoch = 0 if cur is None else cur.lease.epoch + 1
            lease = Lease(config_hash, epoch, here, uuid.uuid4().hex, round(clock(), 3))
            try:
                self.client.log_param(self.run_id, lease.key(), lease.value())
            except Exception as e:  # refused (another value won), or the store failed: the read-back decides
                last_error = e
            stored = self.snapshot()[0].get(lease.key())
            if stored == lease.value():
                self.beat(lease, clock())
                return Claim(lease, why=previous_why, taken_over=previous)
            if stored is None:  # the write did not land: the store failed; try again
                time.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + random.random()))
            # else another process won this epoch: judge it on the next pass
        raise ClaimError(
            f"could not claim config hash {config_hash} in experiment {self.experiment_id} after {attempts} "
            f"attempts: {type(last_error).__name__ if last_error else 'no error'}: {last_error}"
        )

    def beat(self, lease: Lease, now: float, released: bool = False) -> None:
        value = {"epoch": lease.epoch, "t": round(now, 3), "nonce": lease.nonce}
        if released:
            value["released"] = True
        self.client.set_tag(self.run_id, heartbeat_key(lease.config_hash), json.dumps(value, sort_keys=True))

    def superseded(self, lease: Lease, params: dict[str, str] | None = None) -> bool:
        """True once a later epoch of the lease's hash exists: someone else took it over."""
        params = self.snapshot()[0] if params is None else params
        return lease_key(lease.config_hash, lease.epoch + 1) in params

    def release(self, lease: Lease, clock: Callable[[], float] = time.time) -> None:
        """Hand the hash back at once (the run ended, whatever way): the next claimer need not wait."""
        if not self.superseded(lease):
            self.beat(lease, clock(), released=True)

    # ---------------------------------------------------------------- write-once values (sweep parents)

    def publish(self, key: str, value: str) -> str:
        """Write `key` = `value` unless some value is already there; returns the value that stands."""
        with contextlib.suppress(Exception):  # refused (another value stands) or failed: the read-back decides
            self.client.log_param(self.run_id, key, value)
        stored = self.snapshot()[0].get(key)
        if stored is None:
            raise ClaimError(f"could not write {key} to the claims registry {self.run_id}")
        return stored

    def published(self, prefix: str) -> list[tuple[int, str]]:
        """[(k, value)] of the params `<prefix><k>`, by k."""
        params = self.snapshot()[0]
        out = [
            (int(k[len(prefix) :]), v) for k, v in params.items() if k.startswith(prefix) and k[len(prefix) :].isdigit()
        ]
        return sorted(out)
