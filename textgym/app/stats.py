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

# the bootstrap lives on the agents floor (evaluation code uses it); re-exported here
from textgym.agents.common.bootstrap import _as_values, bootstrap_ci, bootstrap_diff_ci

__all__ = ["bootstrap_ci", "bootstrap_diff_ci", "iqm"]


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
