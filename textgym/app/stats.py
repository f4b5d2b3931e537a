"""Statistics over a few runs (seeds): a percentile-bootstrap confidence interval of the mean, and the IQM.

Both take a 1-D sequence of finite numbers (e.g. one final score per seed) and
use NumPy only (SciPy is not a textgym dependency).

Sources:
  * Interquartile mean: Agarwal, Schwarzer, Castro, Courville, Bellemare,
    "Deep Reinforcement Learning at the Edge of the Statistical Precipice",
    NeurIPS 2021, section 4.3 (the mean of the middle 50% of the runs).
  * Percentile bootstrap: Efron & Tibshirani, "An Introduction to the
    Bootstrap", 1993, chapter 13.3.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "iqm"]

#: Resampled values held in memory at once by :func:`bootstrap_ci` (bounds memory for long inputs).
_CHUNK_VALUES = 1 << 22


def _as_values(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """``values`` as a 1-D float64 array; raises ``ValueError`` when empty, not 1-D or not finite."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{what} needs a 1-D sequence of numbers, got shape {x.shape}; flatten it first")
    if x.size == 0:
        raise ValueError(f"{what} needs at least one value, got an empty sequence")
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"{what} got non-finite values at positions {np.flatnonzero(bad).tolist()} "
                         f"({x[bad].tolist()}); drop or fix the runs that produced them")
    return x


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of ``values`` (Agarwal et al. 2021).

    Each of the ``n`` sorted values covers a ``1/n`` slice of the quantile axis
    ``[0, 1]``; the IQM is the average over the slice ``[0.25, 0.75]``, so a value
    straddling a quartile counts with the fraction of its slice inside it::

        IQM = (1 / 0.5) * sum_i x_(i) * |[i/n, (i+1)/n] ∩ [0.25, 0.75]|

    When ``n`` is a multiple of 4 this is the plain mean of the middle ``n/2``
    values, equal to ``scipy.stats.trim_mean(values, 0.25)`` (which rliable uses);
    for other ``n`` SciPy drops whole values only (``floor(n/4)`` per side, so
    for ``n = 3`` it is the plain mean), while the weighting here still trims
    exactly 25% per side: ``n = 3`` gives ``(x1 + 4 x2 + x3) / 6``.

    Args:
        values: ``(n,)`` finite numbers, ``n >= 1``.

    Returns:
        The IQM (a Python float; the value itself when ``n == 1``).

    Raises:
        ValueError: empty, not 1-D, or non-finite input.
    """
    x = np.sort(_as_values(values, "iqm"))
    n = x.size
    lo = np.arange(n) / n  # slice [i/n, (i+1)/n] of each sorted value
    overlap = np.clip(np.minimum(lo + 1.0 / n, 0.75) - np.maximum(lo, 0.25), 0.0, None)
    return float(np.dot(x, overlap) / 0.5)


def bootstrap_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95, n_resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values``.

    Draws ``n_resamples`` resamples of size ``n`` with replacement (NumPy
    ``default_rng(seed)``), takes each resample's mean, and returns the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those
    means (linear interpolation).  Deterministic for a given ``seed``.  With
    few values the interval is narrow-biased (a percentile bootstrap of 3 seeds
    cannot see beyond the 3 values); report ``n`` beside it.

    Args:
        values: ``(n,)`` finite numbers, ``n >= 1``.
        confidence: coverage in ``(0, 1)``.
        n_resamples: bootstrap resamples, ``>= 1``.
        seed: seed of the resampling generator.

    Returns:
        ``(lo, hi)`` Python floats with ``min(values) <= lo <= mean <= hi <= max(values)``
        in practice; ``(v, v)`` for a single value ``v`` (or all values equal).

    Raises:
        ValueError: empty / non-finite values, ``confidence`` outside ``(0, 1)`` or ``n_resamples < 1``.
    """
    x = _as_values(values, "bootstrap_ci")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (e.g. 0.95), got {confidence}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")
    n = x.size
    if n == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = np.empty(int(n_resamples))
    rows = max(1, _CHUNK_VALUES // n)
    for start in range(0, int(n_resamples), rows):
        k = min(rows, int(n_resamples) - start)
        means[start : start + k] = x[rng.integers(0, n, size=(k, n))].mean(axis=1)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1.0 - alpha / 2])
    return float(lo), float(hi)
