"""Overhead cut where it is waste (issue 12, point 6): the quick exit and the fast path's imports.

Real processes: each test runs a Python subprocess and reads what it left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from per_exp import contract as C

REPO = Path(__file__).resolve().parent.parent


def _python(code: str, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_quick_exit_runs_the_exit_handlers_flushes_and_exits_zero(tmp_path):
    marker = tmp_path / "handler-ran"
    proc = _python(
        f"""
        import atexit, logging, sys
        from per_exp import processes
        logging.basicConfig(filename={str(tmp_path / "log.txt")!r}, level=logging.INFO)
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        logging.getLogger("t").info("last line of the log")
        sys.stdout.write("no newline, still buffered")  # a pipe: block-buffered until flushed
        processes.quick_exit()
        raise SystemExit(7)  # never reached
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "no newline, still buffered"
    assert marker.read_text() == "yes"
    assert "last line of the log" in (tmp_path / "log.txt").read_text()


def test_quick_exit_steps_aside_while_another_thread_works(tmp_path):
    """An ordinary exit waits for a non-daemon thread; the quick exit must not cut it short."""
    out = tmp_path / "thread-finished"
    proc = _python(
        f"""
        import threading, time
        from per_exp import processes
        def work():
            time.sleep(1.0)
            open({str(out)!r}, "w").write("done")
        threading.Thread(target=work).start()
        processes.quick_exit()
        print("returned")
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "returned"
    assert out.read_text() == "done"


@pytest.mark.slow
def test_the_main_command_ends_quickly_with_its_run_finished_and_its_log_whole(tmp_path):
    """`python -m per_exp.train` takes the quick exit: the run is FINISHED in the store, the job's log
    ends with the line the console saw last, and the fused path never imported torch's compiler stack."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # runpy as __main__ is what `-m` does; the exit handler reports which torch modules were loaded
    proc = _python(
        """
        import atexit, runpy, sys
        atexit.register(lambda: print("LOADED", "torch._dynamo" in sys.modules, flush=True))
        sys.argv = ["per_exp.train", *sys.argv[1:]]
        runpy.run_module("per_exp.train", run_name="__main__", alter_sys=True)
        print("NOT QUICK")  # an ordinary return from the module would get here
        """,
        tmp_path,
        "max_episodes=3",
        f"tracking.uri={uri}",
        f"hydra.run.dir={tmp_path / 'out'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NOT QUICK" not in proc.stdout
    assert "LOADED False" in proc.stdout  # the fused update never builds a torch optimizer's compiled step
    runs = [r for r in MlflowClient(tracking_uri=uri).search_runs(["1"]) if r.data.tags.get(C.TAG_ROLE) == C.ROLE_JOB]
    assert [r.info.status for r in runs] == ["FINISHED"]
    console = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert (tmp_path / "out" / "train.log").read_text().splitlines()[-1] == console[-1]  # the log file is whole
