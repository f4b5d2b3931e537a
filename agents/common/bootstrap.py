"""Percentile-bootstrap confidence intervals: of a mean, and of the difference of two means.

NumPy only (SciPy is not a textgym dependency).  Used by the evaluation code
(:mod:`textgym.agents.common.bias`) and, re-exported by :mod:`textgym.app.stats`,
by the comparison harness.

Source: Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, chapter 13.3
(the percentile interval).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "bootstrap_diff_ci"]

#: Resampled values held in memory at once (bounds memory for long inputs).
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


def bootstrap_diff_ci(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95,
                      n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``mean(a) - mean(b)`` for two independent samples.

    Each resample draws ``len(a)`` values of ``a`` and ``len(b)`` values of ``b``
    with replacement (one NumPy ``default_rng(seed)``, ``a`` first) and takes the
    difference of their means; the interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of those differences (linear
    interpolation).  Example: ``a = [0, 1]``, ``b = [0]``: the resampled means
    of ``a`` are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the 95%
    interval is ``(0.0, 1.0)``.

    Args:
        a, b: ``(n_a,)`` and ``(n_b,)`` finite numbers, each ``n >= 1``.
        confidence: coverage in ``(0, 1)``.
        n_resamples: bootstrap resamples, ``>= 1``.
        seed: seed of the resampling generator.

    Returns:
        ``(lo, hi)`` Python floats; ``(d, d)`` when both samples are constant.

    Raises:
        ValueError: as :func:`bootstrap_ci`, for either sample.
    """
    x, y = _as_values(a, "bootstrap_diff_ci (a)"), _as_values(b, "bootstrap_diff_ci (b)")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (e.g. 0.95), got {confidence}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")
    if np.all(x == x[0]) and np.all(y == y[0]):
        return float(x[0] - y[0]), float(x[0] - y[0])
    rng = np.random.default_rng(seed)
    diffs = np.empty(int(n_resamples))
    rows = max(1, _CHUNK_VALUES // (x.size + y.size))
    for start in range(0, int(n_resamples), rows):
        k = min(rows, int(n_resamples) - start)
        mx = x[rng.integers(0, x.size, size=(k, x.size))].mean(axis=1)
        my = y[rng.integers(0, y.size, size=(k, y.size))].mean(axis=1)
        diffs[start : start + k] = mx - my
    alpha = 1.0 - confidence
    lo, hi = np.quantile(diffs, [alpha / 2, 1.0 - alpha / 2])
    return float(lo), float(hi)
