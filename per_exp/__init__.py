"""per_exp: prioritized-experience-replay experiments (see README.md)."""

import os

# The engine's parallel kernels (numba prange) run on OpenMP; torch bundles the libgomp that numba
# then reuses, and libgomp reads its wait policy once, when torch is imported. Its default spins a
# waiting thread for a while; on a machine shared with other processes a spinning barrier waits for
# a descheduled thread at every step: a parallel region measured 1.8-11 ms instead of 0.14-0.24 ms
# under load 8-10 on 2 cores (README, "Training speed"). Passive waiting costs a wake-up per region
# instead. Set OMP_WAIT_POLICY yourself to override; it has no effect if torch was imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
