"""The facts of the machine that a run's numbers depend on, beyond the code: the CPU and the BLAS kernels.

The same commit, config and seed give the same series on one machine, not on
every machine: the fused update's matrix products go through NumPy's
OpenBLAS, which picks its kernels for the CPU when it loads (an AMD EPYC whose
core it does not know gets its Haswell kernels, an AVX-512 Intel its SkylakeX
ones, and the two series part after some hundred env steps), and torch's
reference update dispatches on the CPU too. So each segment of a run's code
history (`per_exp.provenance`) says on which machine it was trained, and a run
continued on another machine says where its numbers changed family.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path


def cpu_field(name: str) -> str:
    """A field of the first CPU in /proc/cpuinfo (Linux: `model name`, `vendor_id`), "" where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    return cpu_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def numpy_blas() -> dict:
    """threadpoolctl's record of the BLAS NumPy's matmul calls ({} if none is loaded).

    Not simply the first BLAS loaded: SciPy bundles an OpenBLAS of its own (another version,
    possibly other kernels), and the engine's products are NumPy's.
    """
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl inspects)
    from threadpoolctl import threadpool_info

    return pick_numpys(threadpool_info())


def pick_numpys(libs: list[dict]) -> dict:
    """Of threadpoolctl's records (in load order, which is not NumPy's first), NumPy's BLAS."""
    blas = [lib for lib in libs if lib.get("user_api") == "blas"]
    # NumPy's wheels keep it in site-packages/numpy.libs (Linux) or numpy/.dylibs (macOS)
    mine = [lib for lib in blas if any(p.startswith("numpy") for p in Path(lib.get("filepath", "")).parts[-3:-1])]
    return (mine or blas or [{}])[0]


def _blas() -> str:
    lib = numpy_blas()
    if not lib:
        return "no BLAS found"
    kernels = lib.get("architecture")
    name = f"{lib.get('internal_api', 'blas')} {lib.get('version') or ''}".strip()
    return f"{name} {kernels} kernels" if kernels else name


@functools.cache
def fingerprint() -> str:
    """One line: 'AMD EPYC; openblas 0.3.31.188.0 Haswell kernels'. Fixed for the life of the process."""
    return f"{cpu_model()}; {_blas()}"
