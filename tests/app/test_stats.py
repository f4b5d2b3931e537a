"""textgym.app.stats: IQM and the percentile-bootstrap CI on hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from textgym.app.stats import bootstrap_ci, iqm


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (list(range(1, 9)), 4.5),  # n = 8: mean of 3, 4, 5, 6
        ([1, 2, 3, 100], 2.5),  # n = 4: mean of 2, 3 (the outlier is dropped)
        ([5.0], 5.0),
        ([1, 3], 2.0),  # each value keeps a quarter of the mass
        ([1, 2, 10], 19 / 6),  # n = 3: (x1 + 4 x2 + x3) / 6
        ([10, 4, 1, 3, 2], 3.0),  # n = 5: (0.15*2 + 0.2*3 + 0.15*4) / 0.5, order does not matter
        ([1, 3, 5, 7, 9, 11, 13, 15, 17], 9.0),  # n = 9: 0.75*5 + 7 + 9 + 11 + 0.75*13, / 4.5
        ([1, 2, 3, 4, 5, 6, 7, 8, 100], 5.0),  # (0.75*3 + 4 + 5 + 6 + 0.75*7) / 4.5
    ],
)
def test_iqm_hand_computed(values, expected):
    assert iqm(values) == pytest.approx(expected, abs=1e-12)


def test_iqm_equals_trimmed_mean_when_n_is_a_multiple_of_four():
    x = np.random.default_rng(3).normal(size=12)
    middle = np.sort(x)[3:9]  # what scipy.stats.trim_mean(x, 0.25) keeps
    assert iqm(x) == pytest.approx(middle.mean(), abs=1e-12)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0, 2.0]], [float("inf")]])
def test_bad_values_are_rejected(bad):
    with pytest.raises(ValueError):
        iqm(bad)
    with pytest.raises(ValueError):
        bootstrap_ci(bad)


def test_bootstrap_ci_hand_computed():
    # [0, 1]: resample means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4 -> the 2.5% / 97.5% quantiles are 0 and 1
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    # [0, 0, 3]: resample mean = number of 3s drawn ~ Binomial(3, 1/3): P(0)=8/27, P(<=1)=20/27, P(<=2)=26/27
    assert bootstrap_ci([0, 0, 3], confidence=0.95) == (0.0, 3.0)
    assert bootstrap_ci([0, 0, 3], confidence=0.8) == (0.0, 2.0)  # 10% -> 0, 90% -> 2


def test_bootstrap_ci_degenerate_inputs():
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_bootstrap_ci_contains_the_mean_is_deterministic_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (5, 50, 500):
        x = rng.normal(1.0, 2.0, size=n)
        lo, hi = bootstrap_ci(x, n_resamples=4000)
        assert x.min() <= lo < x.mean() < hi <= x.max()
        assert bootstrap_ci(x, n_resamples=4000) == (lo, hi)  # same seed, same interval
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_ci_matches_the_normal_interval_for_many_values():
    x = np.random.default_rng(1).normal(0.0, 1.0, size=400)
    lo, hi = bootstrap_ci(x)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(x.size)  # normal-theory 95% half-width
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert (lo + hi) / 2 == pytest.approx(x.mean(), abs=0.1 * half)


def test_bootstrap_ci_rejects_bad_settings():
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)
