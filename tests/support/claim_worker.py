"""A process that races others on the claims registry (run by tests/test_claims.py).

    python tests/support/claim_worker.py <uri> <experiment id> <action> <arg> <go file> [hold seconds]

Imports and connects first, touches `<go file>.ready.<pid>`, then spins until `<go file>`
exists and the wall time in it has passed, so that every worker calls the store at
the same moment. Prints one JSON line with what it got.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from per_exp.claims import Registry
from per_exp.owner import this_process


def main() -> None:
    uri, exp_id, action, arg, go = sys.argv[1:6]
    hold = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    if action != "setup":
        client = MlflowClient(uri)
        client.get_experiment(exp_id)  # connected (and the sqlite schema checked) before the start line
    Path(f"{go}.ready.{os.getpid()}").touch()
    while not os.path.exists(go):
        time.sleep(0.001)
    start = float(Path(go).read_text())
    while time.time() < start:
        pass
    out: dict = {"pid": os.getpid()}
    if action == "setup":  # first use of a fresh store, as a launch does it (arg: "lock" or "")
        from per_exp.store import setup_lock

        try:
            if arg == "lock":
                with setup_lock(uri):
                    MlflowClient(uri).search_experiments(max_results=1)
            else:
                MlflowClient(uri).search_experiments(max_results=1)
            out["ok"] = True
        except Exception as e:  # what the test counts
            out["ok"], out["error"] = False, f"{type(e).__name__}: {str(e)[:200]}"
    elif action == "open":
        out["registry"] = Registry.open(client, exp_id).run_id
    elif action == "claim":
        reg = Registry.open(client, exp_id)
        c = reg.claim(arg, this_process(), stale_after=3600)
        out["won"] = c.lease is not None
        out["epoch"] = (c.lease or c.held_by.lease).epoch
        out["owner_pid"] = (c.lease or c.held_by.lease).owner.pid
        out["why"] = c.why
    elif action == "publish":
        reg = Registry.open(client, exp_id)
        out["value"] = reg.publish(arg, f"from-{os.getpid()}")
    print(json.dumps(out), flush=True)
    time.sleep(hold)


if __name__ == "__main__":
    main()
