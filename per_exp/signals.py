"""Signals that stop a job between two episodes, after a checkpoint.

SIGTERM is how Slurm says "stop" (preemption, `scancel`, `scontrol requeue`, the time limit)
and how `kill` and launchers say it; SIGUSR2 is submitit's "this job is about to time out or
is preempted" (`--signal=USR2@<signal_delay_s>`). Neither interrupts an episode: the first one
asks the trainer to stop at the next episode boundary, where it writes a checkpoint and raises
`Stopped`, so the run ends KILLED and resumes from exactly there. A second SIGTERM before that
raises at once (it is Slurm's last word before SIGKILL). Ctrl-C (SIGINT) is left as it is.

After the run is closed, `hand_on()` gives a SIGUSR2 to whoever listened before: under
submitit that is its handler, which requeues the job (`scontrol requeue`) and exits. What a
SIGTERM means under Slurm (preempted: requeue; cancelled: end) is `per_exp.slurm`'s business.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any] | int | None

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


class Terminated(KeyboardInterrupt):
    """A second SIGTERM before the episode boundary: stop now (the run ends KILLED)."""


class StopSignals:
    """Context manager: while inside, SIGTERM and SIGUSR2 request a stop instead of killing.

    `requested()` is what the trainer asks between episodes; `signum` is the first stop signal.
    Outside the main thread (where Python cannot set handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Handler] = {}

    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGTERM:
            raise Terminated(f"second {signal.Signals(signum).name} before the episode ended")
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> StopSignals:
        try:
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        except ValueError:  # not the main thread (some launchers): leave signals alone
            self._previous.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)

    def hand_on(self) -> None:
        """After a SIGUSR2 stop: call the handler that was there before (submitit's requeue), if any."""
        previous = self._previous.get(signal.SIGUSR2)
        if self.signum == signal.SIGUSR2 and callable(previous):
            previous(self.signum, None)
