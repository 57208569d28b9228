"""Behaviour recorded before the issue-10 refactor: episode lengths and config hashes.

Every number below was RECORDED on the untouched code at commit
0ca87329ca3ee882f155c278a5e305c1e888cbc9 (main, 2026-11-25), before any module
moved or any name changed, by running the real Trainer on real CartPole with
tracking off and hashing real Hydra compositions. They are literals on purpose.

Re-recorded once, for the issue-12 engine: five fused-backend entries (rank,
linear_scan, seed_notebook, cartpole_v1, buffer_norm_iid) were recorded again
on the engine. Its update kernel computes the same math in another float
order (matrix products through BLAS, Adam in float32 as torch does), so a run
follows the old trajectory until rounding differences compound (here after
300-900 env steps). Everything else is as recorded: the torch_backend entry
(the engine with update_backend=torch reproduces the old trainer exactly),
the four other fused entries (equal over their window) and every config hash.
That learning did not change is shown over 20 seeds of the default config and
of experiment=seed_notebook (docs/speed.md, "Learning is unchanged").
Used by tests/test_pinned_behaviour.py and tests/test_config_hash.py.

The torch_backend entry is exact on the machines it was recorded and checked
on until 2026-12-01 (their CPU was not noted): torch's float32 kernels
dispatch on the CPU, and on an AMD EPYC (AVX512, avx512_bf16) the same code,
torch 2.13.0 and numpy 2.4.6 give episode 24 a length of 14, not 15, after
which the runs part. No setting made the two agree (MKL_CBWR=COMPATIBLE/AVX2/
AVX512, ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, NUMBA_CPU_NAME and numpy's
dispatch were tried on 2026-12-01). TORCH_BACKEND_AMD is that machine's
recording, made on 2026-12-01 at commit a25a5e9, whose engine CI had just
checked against the first recording; the test picks it on an AMD CPU.

The fused entries depend on which kernels NumPy's bundled OpenBLAS picks for
the engine's matrix products (it dispatches on the CPU at load time). The
recordings above are those of its AVX-512 kernels: forcing
OPENBLAS_CORETYPE=SkylakeX, Cooperlake or SapphireRapids reproduces every one
of them on an AMD EPYC whose OpenBLAS (0.3.31) does not know the core and
falls back to its Haswell (AVX2) kernels, which give five entries other
lengths from episode 10-40 on (numba's target CPU, tried as znver3/4/5,
skylake-avx512 and haswell, changed nothing). FUSED_BLAS_HASWELL is that
machine's recording with the Haswell kernels (OPENBLAS_CORETYPE=Haswell and
=Zen give the same), made on 2026-12-02 at commit 27f1df6, whose code CI had
just checked against the AVX-512 recording; the test picks it when threadpoolctl
reports OpenBLAS's architecture as Haswell. A run's series is reproducible on
one machine, not across BLAS kernels: docs/speed.md, "Learning is unchanged".
"""

from per_exp import machine

# name -> (overrides, episodes, lengths). Seeds and switches cover every sampler,
# both networks, both envs, both update backends and the step-based schedules.
# A recorded table, kept as recorded (the formatter would put one number a line).
# fmt: off
PINNED_LENGTHS = {
    "default": ([], 60, [
        8, 12, 10, 10, 9, 11, 11, 10, 10, 13, 13, 12, 17, 15, 15, 13, 15, 16, 15, 21, 16, 16, 17, 16, 16, 16, 13, 15,
        15, 15, 18, 18, 18, 18, 31, 36, 31, 11, 10, 9, 9, 10, 10, 8, 8, 10, 9, 10, 8, 8, 9, 8, 10, 10, 8, 11, 10, 9,
        10, 9]),
    "uniform": (["sampler=uniform"], 60, [
        8, 12, 10, 10, 9, 11, 11, 10, 10, 13, 13, 11, 15, 13, 13, 13, 15, 17, 16, 19, 15, 18, 19, 20, 20, 18, 16, 18,
        26, 26, 30, 34, 39, 24, 26, 9, 38, 34, 10, 11, 60, 48, 14, 8, 8, 10, 9, 44, 8, 8, 9, 8, 10, 41, 47, 11, 10, 9,
        29, 9]),
    "rank": (["sampler=rank"], 60, [
        8, 12, 10, 10, 9, 11, 11, 10, 10, 13, 13, 12, 15, 14, 13, 13, 15, 18, 16, 22, 19, 26, 69, 28, 8, 9, 9, 9, 11,
        60, 8, 9, 9, 10, 8, 9, 26, 11, 10, 9, 9, 10, 10, 8, 8, 10, 9, 10, 8, 8, 9, 8, 10, 10, 8, 11, 10, 9, 10, 9]),
    "linear_scan": (["sampler=linear_scan", "seed=6"], 60, [
        12, 12, 8, 11, 10, 16, 9, 10, 9, 10, 8, 8, 8, 8, 13, 15, 13, 25, 24, 17, 23, 18, 12, 16, 12, 11, 11, 12, 10, 12,
        11, 17, 10, 14, 15, 15, 13, 11, 12, 14, 14, 20, 29, 19, 20, 15, 13, 13, 15, 15, 22, 16, 25, 35, 19, 46, 13, 95,
        37, 10]),
    "seed_notebook": (["experiment=seed_notebook"], 70, [
        8, 12, 10, 10, 9, 11, 11, 10, 10, 13, 13, 12, 17, 15, 16, 13, 15, 17, 16, 19, 17, 18, 20, 19, 20, 20, 17, 19,
        21, 25, 27, 25, 27, 26, 76, 36, 28, 22, 19, 9, 58, 32, 56, 86, 42, 29, 39, 31, 44, 24, 9, 28, 28, 21, 39, 11,
        10, 9, 15, 20, 24, 21, 19, 18, 9, 9, 146, 142, 88, 200]),
    "mlp": (["network=mlp"], 60, [
        8, 12, 10, 10, 9, 11, 11, 10, 10, 11, 12, 10, 12, 10, 9, 9, 10, 11, 11, 12, 11, 12, 13, 14, 14, 16, 15, 16, 20,
        24, 31, 20, 20, 20, 31, 76, 10, 11, 10, 9, 9, 10, 10, 8, 8, 25, 9, 10, 8, 8, 9, 8, 10, 10, 8, 11, 10, 9, 10,
        9]),
    "cartpole_v1": (["env=cartpole_v1", "seed=2"], 50, [
        12, 12, 11, 13, 13, 12, 16, 24, 23, 30, 34, 39, 31, 34, 27, 23, 30, 21, 21, 20, 17, 30, 20, 43, 57, 47, 47, 26,
        33, 30, 21, 19, 11, 10, 9, 10, 9, 10, 10, 10, 12, 20, 17, 26, 32, 37, 121, 155, 95, 164]),
    "torch_backend": (["update_backend=torch", "seed=1"], 40, [
        18, 9, 9, 12, 12, 9, 9, 9, 9, 10, 9, 9, 10, 12, 9, 10, 12, 12, 11, 10, 11, 11, 13, 15, 15, 11, 12, 14, 12, 12,
        12, 14, 14, 11, 12, 15, 15, 15, 39, 36]),
    "buffer_norm_iid": (["sampler.weight_norm=buffer", "sampler.stratified=false", "seed=4"], 60, [
        9, 9, 12, 8, 10, 10, 10, 9, 11, 10, 12, 11, 9, 9, 8, 8, 10, 10, 10, 9, 10, 9, 10, 9, 8, 9, 10, 10, 9, 9, 9, 9,
        8, 9, 10, 10, 9, 10, 9, 11, 9, 12, 11, 15, 12, 14, 26, 10, 10, 10, 10, 13, 29, 27, 27, 19, 17, 18, 26, 25]),
    "steps_schedules": ([
        "epsilon.schedule=linear_steps", "epsilon.decay_steps=2000", "target_sync.unit=steps",
        "target_sync.every=100", "env.reward=env", "train_every=2", "seed=5"], 50, [
        24, 12, 34, 11, 21, 24, 18, 17, 10, 29, 16, 27, 37, 14, 18, 32, 32, 29, 17, 10, 11, 28, 18, 13, 11, 31, 14, 30,
        12, 10, 14, 23, 14, 15, 16, 17, 37, 17, 12, 14, 35, 29, 11, 9, 15, 9, 12, 12, 9, 15]),
}
# The torch_backend lengths on an AMD CPU (the module docstring says why).
TORCH_BACKEND_AMD = [
    18, 9, 9, 12, 12, 9, 9, 9, 9, 10, 9, 9, 10, 12, 9, 10, 12, 12, 11, 10, 11, 11, 13, 15, 14, 11, 12, 14, 12, 12,
    12, 16, 16, 11, 12, 21, 26, 34, 27, 20]

# The fused entries that differ when OpenBLAS runs its Haswell (AVX2) kernels (the module docstring says why).
FUSED_BLAS_HASWELL = {
    "buffer_norm_iid": [
        9, 9, 12, 8, 10, 10, 10, 9, 11, 10, 12, 11, 9, 9, 8, 8, 10, 10, 10, 9, 10, 9, 10, 9, 8, 9, 10, 10, 9, 9, 9, 9,
        8, 9, 10, 11, 9, 10, 10, 12, 9, 12, 10, 14, 10, 12, 17, 20, 19, 10, 10, 10, 9, 33, 25, 16, 16, 16, 24, 23],
    "cartpole_v1": [
        12, 12, 11, 13, 13, 12, 16, 24, 23, 30, 34, 39, 31, 34, 27, 23, 30, 21, 21, 20, 17, 28, 17, 29, 32, 34, 96,
        51, 45, 57, 42, 71, 35, 28, 21, 80, 37, 74, 59, 90, 87, 201, 464, 411, 500, 406, 298, 278, 383, 398],
    "linear_scan": [
        12, 12, 8, 11, 10, 16, 9, 10, 9, 10, 8, 8, 8, 8, 13, 15, 13, 25, 24, 17, 23, 18, 12, 16, 12, 11, 11, 12, 10,
        12, 11, 17, 10, 14, 15, 15, 13, 11, 12, 14, 14, 20, 29, 19, 20, 15, 13, 13, 15, 14, 16, 11, 10, 9, 10, 10, 19,
        11, 12, 18],
    "mlp": [
        8, 12, 10, 10, 9, 11, 11, 10, 10, 11, 12, 10, 12, 10, 9, 9, 10, 11, 11, 12, 11, 12, 13, 14, 14, 16, 15, 16,
        20, 24, 31, 20, 20, 20, 33, 56, 50, 13, 10, 9, 9, 12, 13, 8, 8, 10, 9, 10, 8, 8, 9, 8, 10, 10, 8, 11, 10, 9,
        10, 9],
    "seed_notebook": [
        8, 12, 10, 10, 9, 11, 11, 10, 10, 13, 13, 12, 17, 15, 16, 13, 15, 17, 16, 19, 17, 18, 20, 19, 20, 20, 17, 19,
        21, 25, 27, 25, 27, 26, 76, 36, 28, 22, 19, 9, 58, 32, 56, 86, 42, 29, 39, 31, 44, 24, 9, 28, 28, 21, 39, 11,
        10, 9, 15, 20, 41, 27, 25, 31, 154, 118, 73, 100, 76, 200],
}


def cpu_vendor() -> str:
    """The CPU's vendor id from /proc/cpuinfo (Linux), "" where there is none."""
    return machine.cpu_field("vendor_id")


# fmt: on


def blas_kernels() -> str:
    """The kernel family NumPy's OpenBLAS dispatched to on this CPU (threadpoolctl's `architecture`), "" if none."""
    return machine.numpy_blas().get("architecture") or ""


def pinned_lengths(name: str) -> list[int]:
    """The recording of `name` for this machine's BLAS kernels and CPU vendor."""
    lengths = PINNED_LENGTHS[name][2]
    if name == "torch_backend" and cpu_vendor() == "AuthenticAMD":
        return TORCH_BACKEND_AMD
    if blas_kernels() == "Haswell":
        return FUSED_BLAS_HASWELL.get(name, lengths)
    return lengths


# overrides -> config_hash of the composed config (the MLflow `config_hash` tag of existing runs)
PINNED_HASHES = [
    ([], "a41b2a8f9f64135d"),
    (["sampler=uniform"], "77c8a6280f743926"),
    (["sampler=rank"], "d0f71fa9f5a5d132"),
    (["experiment=seed_notebook"], "ea732e03539741ef"),
    (["experiment=seed_notebook", "sampler=uniform"], "73091f1465b4cea8"),
    (["env=cartpole_v1"], "c09a77ca8bfbb9cd"),
    (["network=mlp", "seed=3"], "99c381da31db26dd"),
    # bookkeeping keys stay out of the hash
    (["max_episodes=20", "sampler=uniform"], "eee06726f9b998d8"),
    (
        [
            "max_episodes=20",
            "sampler=uniform",
            "tracking.flush_every_episodes=5",
            "checkpoint.every_episodes=0",
            "log_every_episodes=1",
            "rerun=true",
        ],
        "eee06726f9b998d8",
    ),
]
