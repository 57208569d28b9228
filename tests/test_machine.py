"""A run says on which machine (CPU, BLAS kernels) each stretch of it was trained.

The real-process test makes "another machine" the way it happens: the same
CPU with OpenBLAS forced onto other kernels (OPENBLAS_CORETYPE, which OpenBLAS
reads when it loads). Haswell (AVX2) and Sandybridge (AVX) kernels run on any
x86-64 CPU with AVX2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from per_exp import contract as C
from per_exp import machine, provenance
from tests.support.census import census, duplicated_points, steps_of
from tests.support.faults import finish, hook_env, start

CODE = {"commit": "a" * 40, "dirty": "false", "diff": ""}


def _fingerprint_under(coretype: str) -> str:
    env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
    code = "from per_exp import machine; print(machine.fingerprint())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def test_the_fingerprint_names_the_cpu_and_the_blas_kernels_in_use():
    here = machine.fingerprint()
    assert "; " in here and "kernels" in here
    haswell, sandy = _fingerprint_under("Haswell"), _fingerprint_under("Sandybridge")
    assert "Haswell kernels" in haswell and "Sandybridge kernels" in sandy
    assert haswell.split(";")[0] == sandy.split(";")[0]  # same CPU, other kernels


def test_the_blas_named_is_numpys_even_when_scipys_was_loaded_first():
    # seen in scripts/study_results.py: SciPy's bundled OpenBLAS (another version) listed first
    scipys = {"user_api": "blas", "filepath": "/v/site-packages/scipy.libs/libscipy_openblas.so"}
    numpys = {"user_api": "blas", "filepath": "/v/site-packages/numpy.libs/libscipy_openblas64_.so"}
    omp = {"user_api": "openmp", "filepath": "/v/site-packages/numpy.libs/libgomp.so"}
    assert machine.pick_numpys([omp, scipys, numpys]) is numpys
    mac = {"user_api": "blas", "filepath": "/v/site-packages/numpy/.dylibs/libscipy_openblas64_.dylib"}
    assert machine.pick_numpys([scipys, mac]) is mac
    assert machine.pick_numpys([scipys]) is scipys and machine.pick_numpys([omp]) == {}
    assert "numpy" in machine.numpy_blas().get("filepath", "")  # this machine's, for real


def test_a_run_continued_on_another_machine_gets_a_new_segment_and_on_the_same_one_does_not():
    first = {**CODE, "machine": "CPU A; openblas Haswell kernels"}
    tags = {C.TAG_CODE_HISTORY: provenance.encode(provenance.started(first))}
    assert provenance.continued(tags, first, 4, 4) is None
    elsewhere = {**CODE, "machine": "CPU B; openblas SkylakeX kernels"}
    history = provenance.continued(tags, elsewhere, 4, 5)
    assert history is not None and [h["machine"] for h in history] == [first["machine"], elsewhere["machine"]]
    assert history[1]["from_episode"] == 4 and history[1]["first_new_step"] == 5
    # continuing on another machine is the same code: never refused
    provenance.check_resume("r", tags, elsewhere, allowed=False)


def test_a_segment_from_before_machines_were_recorded_is_not_called_another_machine():
    old = {C.TAG_CODE_HISTORY: provenance.encode(provenance.started(CODE))}
    assert provenance.continued(old, {**CODE, "machine": "CPU A; openblas Haswell kernels"}, 3, 3) is None


@pytest.mark.slow
def test_a_run_killed_and_resumed_on_other_blas_kernels_records_both_machines(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["sampler=uniform", "capacity=500", "seed=2", "max_episodes=8", f"tracking.uri={uri}"]
    args += ["tracking.flush_every_episodes=1", "checkpoint.every_episodes=1"]
    kill = f"s2-uniform-dueling:4:{signal.SIGKILL}"
    log = tmp_path / "first.log"
    first = start(args, tmp_path, hook_env(tmp_path, PER_EXP_TEST_SIGNAL=kill, OPENBLAS_CORETYPE="Haswell"), log)
    assert finish(first) == -signal.SIGKILL, log.read_text()[-3000:]
    [run] = census(uri).jobs
    assert "Haswell kernels" in run.data.tags[C.TAG_MACHINE]

    log = tmp_path / "resumed.log"
    assert finish(start(args, tmp_path, hook_env(tmp_path, OPENBLAS_CORETYPE="Sandybridge"), log)) == 0, (
        log.read_text()[-3000:]
    )
    [done] = census(uri).jobs
    assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
    history = json.loads(done.data.tags[C.TAG_CODE_HISTORY])
    assert len(history) == 2 and history[0]["commit"] == history[1]["commit"]
    assert "Haswell kernels" in history[0]["machine"] and "Sandybridge kernels" in history[1]["machine"]
    assert history[1]["from_episode"] == 4 and history[1]["first_new_step"] == 4
    assert "Haswell kernels" in done.data.tags[C.TAG_MACHINE]  # the tag keeps the first machine
    assert steps_of(uri, run.info.run_id) == list(range(8)) and duplicated_points(uri, run.info.run_id) == 0
