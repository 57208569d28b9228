"""Pure PER math: priorities, annealed beta, importance-sampling weights.

No state, no RNG: each function is the formula from Schaul et al. (2016)
and is tested against hand-computed values.
"""

from __future__ import annotations

import numpy as np


def priorities_from_td(td_errors: np.ndarray, alpha: float, eps: float) -> np.ndarray:
    """p_i = (|delta_i| + eps) ** alpha  (paper eq. 1 numerator)."""
    p = (np.abs(np.asarray(td_errors, dtype=np.float64)) + eps) ** alpha
    return p


def beta_at(update: int, beta0: float, horizon: int) -> float:
    """Linear anneal beta0 -> 1 over `horizon` updates, then clamped at 1."""
    frac = min(max(update, 0) / float(horizon), 1.0)
    return beta0 + frac * (1.0 - beta0)


def is_weights(probs: np.ndarray, size: int, beta: float, norm_max: float | None = None) -> np.ndarray:
    """w_i = (N * P(i)) ** -beta / max w.

    `probs` are the sampling probabilities of the drawn items. The weights are
    divided by their batch maximum, unless `norm_max` (the largest weight over
    the whole buffer, i.e. the one of the smallest P) is given, as baselines
    and cpprb do.
    """
    w = (size * np.asarray(probs, dtype=np.float64)) ** (-beta)
    denom = norm_max if norm_max is not None else w.max()
    return (w / denom).astype(np.float32)


def check_priorities(values: np.ndarray) -> None:
    """Reject NaN, inf and negative priorities, naming the first bad index."""
    values = np.asarray(values)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"priority at index {i} is {values[i]!r}; priorities must be finite and >= 0"
        )
