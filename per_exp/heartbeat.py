"""A lease kept alive from a background thread, and told lost when it no longer may be acted on.

Every `every` seconds the thread reads the claims registry and, unless a later
epoch of its hash exists (someone took the hash over: the fence), writes the
heartbeat tag. When the store has not answered for `give_up_after` seconds the
lease counts as lost too: other processes take a hash over once its heartbeat
is `stale_after` old, and `give_up_after` < `stale_after` makes the owner stop
first (the usual lease timing argument; it assumes clocks that agree to well
within the difference). The training loop calls `check()` at every episode.
"""

from __future__ import annotations

import logging
import threading
import time

from per_exp.claims import Lease, Registry, lease_key

log = logging.getLogger(__name__)


class LeaseLost(RuntimeError):
    """This process may no longer write into the run: taken over, or the store is out of reach."""

    def __init__(self, why: str, taken_over: bool):
        super().__init__(why)
        self.taken_over = taken_over


class Heartbeat:
    def __init__(self, registry: Registry, lease: Lease, every: float, give_up_after: float):
        self.registry = registry
        self.lease = lease
        self.every = every
        self.give_up_after = give_up_after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{lease.config_hash}", daemon=True)
        self._lost: LeaseLost | None = None
        self._last_ok = time.monotonic()

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    @property
    def lost(self) -> LeaseLost | None:
        return self._lost

    def check(self) -> None:
        if self._lost is not None:
            raise self._lost

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                params, _ = self.registry.snapshot()
                if lease_key(self.lease.config_hash, self.lease.epoch + 1) in params:
                    self._lost = LeaseLost(
                        f"config hash {self.lease.config_hash} was taken over by another process "
                        f"(epoch {self.lease.epoch + 1}); this one stops without writing",
                        taken_over=True,
                    )
                    return
                self.registry.beat(self.lease, time.time())
                self._last_ok = time.monotonic()
            except Exception as e:
                silent = time.monotonic() - self._last_ok
                if silent >= self.give_up_after:
                    self._lost = LeaseLost(
                        f"the tracking store did not answer for {silent:.0f} s "
                        f"({type(e).__name__}: {' '.join(str(e).split())[:200]})",
                        taken_over=False,
                    )
                    return
                log.warning("heartbeat for %s failed (%s); retrying", self.lease.config_hash, type(e).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.every + 5)
