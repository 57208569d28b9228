"""One launcher job = a group of runs (a grouped sweep): each member is its own MLflow run, trained together.

The grouped sweeper launches one Hydra job per group that the sweep manager
planned (`per_exp.grouping`); `per_exp.job.run_job` hands such a job here. Its
members share the engine (`group.slots` slots, continuous batching: a slot
freed by a run that solved or reached its cap is refilled at once) and nothing
else: each member goes through the steps of a job of its own (`per_exp.job`),
at the moment it takes a slot: plan from the store (a FINISHED run is
skipped), claim its config hash (held by another live process: left out),
open or continue its MLflow run, resume from its own checkpoint. So a queued
member holds nothing while it waits, and a concurrent launch may take it
meanwhile. Each running member has its own heartbeat, checkpoints and ending:
one that raises ends FAILED alone and the others go on; a stop (SIGTERM,
SIGUSR2) checkpoints every running member at its next episode end and ends it
KILLED, and the queued ones never start; Ctrl-C ends the running ones KILLED
where they are (they resume from their last checkpoint).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
from typing import Any

from omegaconf import OmegaConf

from per_exp import endings, grouping, owner, processes, slurm, tracking
from per_exp import job as J
from per_exp.claims import Claim
from per_exp.config import ConfigError
from per_exp.engine.trainer import Engine, RunSpec, RunView, StateMismatch, Summary
from per_exp.heartbeat import Heartbeat
from per_exp.signals import StopSignals

log = logging.getLogger("per_exp")


class _Stops:
    """The group's stop signals, and (under Slurm) why a SIGTERM came, asked once."""

    def __init__(self) -> None:
        self.signals = StopSignals()
        self._cause: slurm.StopCause | None = None
        self._asked = False

    def cause(self) -> slurm.StopCause | None:
        if self.signals.signum != signal.SIGTERM:
            return None
        if not self._asked:
            self._asked = True
            self._cause = slurm.why_stopped()
        return self._cause


class Member:
    """One run of the group: its job's steps as the engine's hooks."""

    def __init__(self, src: grouping.Member, group: J.HydraJob, stops: _Stops):
        self.src, self.stops = src, stops
        self.conf, self.resolved = J.validated(src.composed())
        out = group.out_dir / str(src.index)
        job = J.HydraJob(
            name=tracking.run_name(self.conf),
            out_dir=out,
            hydra_dir=out / ".hydra",
            launch_dir=group.launch_dir,
            overrides=" ".join(src.overrides),
            sweep_dir=group.sweep_dir,
        )
        self.place = J.locate(self.conf, self.resolved, job)
        self.job = dataclasses.replace(job, name=tracking.run_name(self.conf, self.place.swept))
        self.group_hydra_dir = group.hydra_dir
        self.claim: Claim | None = None
        self.beat: Heartbeat | None = None
        self.run: tracking.RunLogger | None = None
        self.ending: endings.Ending | None = None
        self.finished = False
        self.together = (1, 1)  # (slots, runs) of the group's engine, set by run_group
        self.model: dict[str, Any] = {}
        self.spec = RunSpec(
            self.conf,
            label=self.job.name,
            on_enter=self.enter,
            should_stop=stops.signals.requested,
            on_error=self.on_error,
            on_end=self.on_end,
            on_state_mismatch=self.on_state_mismatch,
        )

    @property
    def open(self) -> bool:
        """It holds its claim: it entered a slot and has not ended yet."""
        return self.claim is not None and self.ending is None and not self.finished

    def enter(self) -> bool:
        """Plan, claim, open its run, as `per_exp.job.run_job` does; False: nothing to do here (said why)."""
        conf, place = self.conf, self.place
        try:
            plan = J.plan_run(conf, self.job, place, read_checkpoint=False)
        except ConfigError as e:  # the sweep manager refused this up front: here only after a race
            log.error("error: %s", e)
            return False
        if plan is None:
            return False
        claim = place.registry.claim(place.config_hash, owner.this_process(), conf.tracking.stale_after_seconds)
        if claim.lease is None:
            J.say_held(self.job, place, claim)
            return False
        self.claim = claim
        t = conf.tracking
        self.beat = Heartbeat(
            place.registry,
            claim.lease,
            every=t.heartbeat_seconds,
            give_up_after=min(t.server_timeout_seconds, t.stale_after_seconds / 2),
        ).start()
        if claim.taken_over is not None:
            gone = claim.taken_over.lease.owner.describe()
            log.info("[%s] took config hash %s over from %s: %s", self.job.name, place.config_hash, gone, claim.why)
        plan = J.plan_run(conf, self.job, place, read_checkpoint=True)  # again, under the claim
        if plan is None:  # it finished meanwhile
            self._release()
            self.claim = None
            return False
        self._write_hydra_dir()
        self.run = run = J.open_or_attach(conf, self.resolved, self.job, place, plan, self.together)
        self.spec.on_episode = J.episode_sink(run, self.beat)
        self.spec.on_checkpoint = J.checkpoint_saver(run, self.beat, place)
        self.spec.state = J.resume_from(plan, run, self.job.name, place.checkpoint_path) if plan.state else None
        return True

    def _write_hydra_dir(self) -> None:
        """The member's own `.hydra/` (logged with the run, as a job's is): its config and overrides, and
        the group job's hydra.yaml with this member's overrides and output folder."""
        d = self.job.hydra_dir
        d.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(self.src.config), d / "config.yaml")
        OmegaConf.save(OmegaConf.create(list(self.src.overrides)), d / "overrides.yaml")
        group_hydra = self.group_hydra_dir / "hydra.yaml"
        if group_hydra.exists():
            h = OmegaConf.load(group_hydra)
            OmegaConf.update(h, "hydra.overrides.task", list(self.src.overrides), force_add=True)
            OmegaConf.update(h, "hydra.runtime.output_dir", str(self.job.out_dir), force_add=True)
            OmegaConf.save(h, d / "hydra.yaml")

    def on_state_mismatch(self, e: StateMismatch) -> None:
        assert self.run is not None
        J.start_over(e, self.run, self.place.checkpoint_path)

    def on_end(self, summary: Summary, view: RunView) -> None:
        assert self.run is not None
        if self.conf.tracking.log_model:
            self.model.update(view.online_state_dict())
        self.run.flush()
        J.finish(self.conf, self.resolved, self.job, self.place, self.run, self.model, summary)
        self.finished = True
        self._release()

    def on_error(self, e: BaseException) -> None:
        """It ended without finishing: the same ending as a job of its own (`per_exp.endings`)."""
        if self.ending is not None or self.finished:
            return
        ending = endings.classify(e, self.stops.signals.signum)
        self.ending = ending
        if self.claim is None:  # never started: nothing of it was written
            if ending.kind != endings.STOPPED:
                log.error("%s", endings.line(ending, self.job.name, None, self.place.uri, self.place.checkpoint_path))
            return
        with processes.ignored_stops():
            cause = self.stops.cause() if ending.kind == endings.STOPPED else None
            detail = cause.description if cause is not None else ""
            endings.close_run(
                ending, self.job.name, self.run, self.job.out_dir, self.place.uri, self.place.checkpoint_path, detail
            )
            self._release(ending.may_write)

    def _release(self, may_write: bool = True) -> None:
        if self.beat is not None:
            self.beat.stop()
        if may_write and self.claim is not None and self.claim.lease is not None:
            with contextlib.suppress(Exception):  # a store that failed: the heartbeat goes stale instead
                self.place.registry.release(self.claim.lease)


def run_group(group: J.HydraJob, index: int) -> dict[str, Any]:
    """Train group `index` of the sweep in `group.sweep_dir`; what the launcher job hands back.

    Raises as a job of one run does: a member's bug (after every other member ended), a stop of the
    launching process (`processes.Stopped`), a Slurm stop (exit 128+signal, so Slurm's job state says).
    """
    assert group.sweep_dir is not None
    stops = _Stops()
    members = [Member(m, group, stops) for m in grouping.read(group.sweep_dir, index)]
    first = members[0].conf
    slots = min(first.group.slots, len(members))
    log.info("group %d: %d runs on %d slots", index, len(members), slots)
    for m in members:
        m.together = (slots, len(members))
    try:
        with stops.signals:
            Engine([m.spec for m in members], slots=slots, report_errors=False).run()
    except BaseException as e:  # Ctrl-C, or a second SIGTERM, inside a step: the running members end here
        with processes.ignored_stops():
            for m in members:
                if m.open:
                    m.on_error(e)
        if not isinstance(e, KeyboardInterrupt):
            raise
    finally:
        for m in members:
            if m.open:  # cannot happen unless the engine lost track of a run: never leave a heartbeat behind
                m._release(may_write=False)
    ended = [m.ending for m in members if m.ending is not None]
    cause = stops.cause()
    if cause is not None and cause.requeue:
        slurm.requeue_self()
    stops.signals.hand_on()
    stopped = [e for e in ended if e.kind == endings.STOPPED]
    if cause is not None and stopped:
        assert stopped[0].signum is not None
        raise SystemExit(128 + stopped[0].signum)  # Slurm's job state says what happened (per_exp.job)
    failed = [e for e in ended if e.kind == endings.FAILED]
    if failed:
        raise failed[0].error
    if stopped and members[0].place.in_launcher:
        assert stopped[0].signum is not None
        raise processes.Stopped(stopped[0].signum)
    return {
        "group": index,
        "finished": sum(m.finished for m in members),
        "ended": {m.job.name: m.ending.kind for m in members if m.ending is not None},
    }
