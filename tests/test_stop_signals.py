"""Stop signals: a SIGTERM or SIGUSR2 stops training at the next episode boundary, after a checkpoint."""

from __future__ import annotations

import os
import signal

import pytest

from per_exp import slurm
from per_exp.engine.trainer import Engine, RunSpec, Stopped, run_one
from per_exp.signals import StopSignals, Terminated
from tests.support.cli import compose


def test_first_signal_is_a_request_a_second_sigterm_stops_at_once():
    with StopSignals() as stops:
        assert not stops.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stops.requested() and stops.name == "SIGTERM"
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_sigusr2_is_handed_on_to_the_previous_handler_after_the_run():
    seen = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: seen.append(s))
    try:
        with StopSignals() as stops:
            os.kill(os.getpid(), signal.SIGUSR2)
            assert stops.requested() and seen == []  # not handed on while the run is open
        stops.hand_on()
        assert seen == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_run_stops_between_episodes_after_a_checkpoint():
    cfg = compose(["max_episodes=20", "capacity=500", "sampler=uniform", "checkpoint.every_episodes=1000"])
    stop_after = 3
    episodes: list[int] = []
    saved: list[int] = []
    with pytest.raises(Stopped):
        run_one(
            cfg,
            on_episode=lambda e, m: episodes.append(e),
            on_checkpoint=lambda state: saved.append(state["counters"]["episode"]),
            should_stop=lambda: len(episodes) >= stop_after,
        )
    assert episodes == [0, 1, 2] and saved == [3]  # the checkpoint is taken where the stop happened


def test_checkpoints_off_stay_off_on_a_stop():
    cfg = compose(["max_episodes=20", "capacity=500", "sampler=uniform", "checkpoint.every_episodes=0"])
    saved: list[int] = []
    with pytest.raises(Stopped):
        run_one(cfg, on_checkpoint=lambda state: saved.append(1), should_stop=lambda: True)
    assert saved == []


def test_a_stop_ends_every_run_of_a_group_at_its_next_boundary_and_queued_runs_never_start():
    """Two slots, four runs, one stop request: the two running checkpoint and stop; the queued two never start."""
    cfg = ["max_episodes=20", "capacity=500", "sampler=uniform", "checkpoint.every_episodes=1000"]
    episodes: dict[int, list[int]] = {}
    saved: dict[int, list[int]] = {}
    stop = {"now": False}

    def spec(seed: int) -> RunSpec:
        def on_episode(e: int, m: dict) -> None:
            episodes.setdefault(seed, []).append(e)
            stop["now"] = stop["now"] or (seed == 0 and e == 2)

        return RunSpec(
            compose([*cfg, f"seed={seed}"]),
            on_episode=on_episode,
            on_checkpoint=lambda state: saved.setdefault(seed, []).append(state["counters"]["episode"]),
            should_stop=lambda: stop["now"],
        )

    results = Engine([spec(s) for s in range(4)], slots=2).run()
    assert len(results) == 4 and all(isinstance(r.error, Stopped) for r in results)
    assert set(episodes) == {0, 1}  # seeds 2 and 3 were queued: never started, nothing logged or saved
    assert saved[0] == [3] and saved[1] == [len(episodes[1])]  # each running one checkpointed where it stopped


@pytest.mark.parametrize(
    ("job", "partition", "description", "requeue"),
    [
        (
            {"JobState": "RUNNING", "PreemptTime": "2026-12-01T03:13:29", "Requeue": "1", "Partition": "low"},
            {"PreemptMode": "REQUEUE"},
            "preempted in partition low: requeued",
            True,
        ),
        (
            {"JobState": "RUNNING", "PreemptTime": "2026-12-01T03:13:29", "Requeue": "1", "Partition": "low"},
            {"PreemptMode": "CANCEL"},
            "preempted in partition low (PreemptMode=CANCEL): not requeued",
            False,
        ),
        (
            {"JobState": "RUNNING", "PreemptTime": "2026-12-01T03:13:29", "Requeue": "0", "Partition": "low"},
            {"PreemptMode": "REQUEUE"},
            "preempted in partition low (PreemptMode=REQUEUE): not requeued",
            False,
        ),
        (
            {"JobState": "COMPLETING", "PreemptTime": "None", "Requeue": "1", "Partition": "main"},
            {"PreemptMode": "OFF"},
            "Slurm ended the job (scancel, scontrol requeue or its time limit)",
            False,
        ),
        ({"JobState": "RUNNING", "PreemptTime": "None"}, {}, "Slurm job state RUNNING", False),
    ],
)
def test_why_a_sigterm_came(job, partition, description, requeue):
    assert slurm.stop_cause(job, partition) == slurm.StopCause(description, requeue)


def test_slurm_identity_from_the_environment():
    array = {"SLURM_JOB_ID": "31", "SLURM_ARRAY_JOB_ID": "30", "SLURM_ARRAY_TASK_ID": "1", "SLURM_RESTART_COUNT": "2"}
    assert slurm.run_tags(array) == {slurm.JOB_TAG: "30_1", slurm.RESTARTS_TAG: "2"}
    assert slurm.run_tags({"SLURM_JOB_ID": "7"}) == {slurm.JOB_TAG: "7", slurm.RESTARTS_TAG: "0"}
    assert slurm.run_tags({}) == {}
    assert slurm.why_stopped({}) is None
    line = "JobId=31 JobName=x JobState=RUNNING Reason=None Requeue=1 Restarts=0 PreemptTime=2026-12-01T03:13:29"
    assert slurm.parse_fields(line)["PreemptTime"] == "2026-12-01T03:13:29"
