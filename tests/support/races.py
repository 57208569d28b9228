"""Processes racing on a store: started, connected, then released at one instant (tests/support/claim_worker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

WORKER = Path(__file__).with_name("claim_worker.py")


def race(
    uri: str, exp_id: str, action: str, arg: str, n: int, tmp: Path, hold: float = 0.0
) -> tuple[list[dict], list[subprocess.Popen]]:
    """n worker processes, connected first, then released at one instant against the store.

    With `hold`, the workers stay alive that long after answering (the caller ends them).
    """
    go = tmp / f"go-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), uri, exp_id, action, arg, str(go), str(hold)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]
    deadline = time.monotonic() + 300
    while len(list(tmp.glob(go.name + ".ready.*"))) < n:
        assert time.monotonic() < deadline, "workers did not get ready"
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs if p.poll()]
        time.sleep(0.05)
    (tmp / "go.tmp").write_text(str(time.time() + 0.5))
    os.replace(tmp / "go.tmp", go)
    if hold:
        return [json.loads(p.stdout.readline()) for p in procs], procs
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    return [json.loads(o.strip().splitlines()[-1]) for o, _ in outs], procs
