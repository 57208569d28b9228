"""Pure PER math: priorities, annealed beta, importance-sampling weights.

No state, no RNG: each function is the formula from Schaul et al. (2016)
and is tested against hand-computed values.
"""

from __future__ import annotations

import numpy as np


def priorities_from_td(td_errors: np.ndarray, alpha: float, eps: float) -> np.ndarray:
    """p_i = (|delta_i| + eps) ** alpha  (paper eq. 1 numerator)."""
    return (np.abs(np.asarray(td_errors, dtype=np.float64)) + eps) ** alpha


def beta_at(update: int, beta0: float, horizon: int) -> float:
    """Linear anneal beta0 -> 1 over `horizon` updates, then clamped at 1."""
    frac = min(max(update, 0) / float(horizon), 1.0)
    return beta0 + frac * (1.0 - beta0)


def importance_weights(probs: np.ndarray, size: int, beta: float, min_prob: float | None = None) -> np.ndarray:
    """w_i = (N * P(i)) ** -beta / max w.

    `probs` are the sampling probabilities of the drawn items. The weights are
    divided by their batch maximum, unless `min_prob` (the smallest nonzero P
    in the whole buffer, whose weight is the buffer's largest) is given, as
    baselines and cpprb do; then every weight is <= 1 and the scale no
    longer depends on which items the batch happened to hold.
    """
    w = (size * np.asarray(probs, dtype=np.float64)) ** (-beta)
    denom = (size * min_prob) ** (-beta) if min_prob is not None else w.max()
    return (w / denom).astype(np.float32)


def check_priorities(values: np.ndarray, slots: np.ndarray | None = None) -> None:
    """Reject NaN, inf and negative priorities, naming the first bad index (and its slot)."""
    values = np.asarray(values)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f" (slot {int(np.asarray(slots)[i])})" if slots is not None else ""
        raise ValueError(f"priority at index {i}{where} is {values[i]!r}; priorities must be finite and >= 0")
