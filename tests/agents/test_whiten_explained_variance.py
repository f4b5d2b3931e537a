"""masked_whiten, explained_variance and the entropy of the sampling distribution, on hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

import textgym.agents.functional as F
from textgym.agents.common.sampling import entropy_of

# [2, 4, 6] and one padding slot per row: mean 4, unbiased variance ((-2)^2 + 0 + 2^2) / (3 - 1) = 4, std 2
X = torch.tensor([[2.0, 4.0, 99.0], [6.0, -50.0, float("nan")]])
M = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)


def test_whiten_divides_by_the_unbiased_standard_deviation():
    w = F.masked_whiten(X, M)
    # (x - 4) / sqrt(4): a missing sqrt would give +-0.5, the biased variance 8/3 would give +-1.2247
    torch.testing.assert_close(w, torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), atol=1e-6, rtol=0)


def test_whitened_values_have_mean_zero_and_unbiased_variance_one():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 9, generator=gen) * 3.0 + 5.0
    m = torch.arange(9).expand(6, 9) < torch.tensor([[9], [3], [1], [7], [5], [2]])
    w = F.masked_whiten(x, m)
    assert float(F.masked_mean(w, m)) == pytest.approx(0.0, abs=1e-6)
    assert float(F.masked_var(w, m, unbiased=True)) == pytest.approx(1.0, abs=1e-5)
    assert bool((w[~m] == 0).all())


def test_whiten_without_shifting_keeps_the_mean():
    w = F.masked_whiten(X, M, shift_mean=False)
    # (x - 4) / 2 + 4
    torch.testing.assert_close(w, torch.tensor([[3.0, 4.0, 0.0], [5.0, 0.0, 0.0]]), atol=1e-6, rtol=0)
    assert float(F.masked_mean(w, M)) == pytest.approx(float(F.masked_mean(X, M)), abs=1e-6)
    assert float(F.masked_var(w, M)) == pytest.approx(1.0, abs=1e-6)


def test_explained_variance_by_hand():
    target = torch.tensor([[1.0, 2.0, 3.0, 4.0, 123.0]])
    m = torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool)
    assert F.explained_variance(target.clone(), target, m) == pytest.approx(1.0)  # a perfect critic
    assert F.explained_variance(torch.full_like(target, 2.5), target, m) == pytest.approx(0.0, abs=1e-7)  # the mean
    # residual [0, 0, 0, 1]: biased variance 1/4 - (1/4)^2 = 0.1875; Var[target] = 1.25: 1 - 0.15
    pred = torch.tensor([[1.0, 2.0, 3.0, 3.0, -7.0]])
    assert F.explained_variance(pred, target, m) == pytest.approx(0.85, abs=1e-6)
    # worse than predicting the mean: negative. pred = -target: residual 2 x target, Var 4 x 1.25: 1 - 4
    assert F.explained_variance(-target, target, m) == pytest.approx(-3.0, abs=1e-6)


def test_explained_variance_of_a_constant_target_is_nan_as_documented():
    target = torch.tensor([[3.0, 3.0, 3.0, 8.0]])
    m = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)  # the 8 is padding: the real targets are constant
    assert math.isnan(F.explained_variance(torch.tensor([[1.0, 2.0, 3.0, 0.0]]), target, m))


@pytest.mark.parametrize("v", [2, 57, 1000])
def test_entropy_of_uniform_logits_is_log_v(v):
    logits = torch.zeros(3, 2, v)
    torch.testing.assert_close(entropy_of(logits), torch.full((3, 2), math.log(v)))
    # a top-k style mask (-inf on all but k tokens): uniform over k
    masked = torch.full((1, v), float("-inf"))
    masked[0, :2] = 0.0
    assert float(entropy_of(masked)[0]) == pytest.approx(math.log(2))
    # a one-hot distribution: 0 nats
    assert float(entropy_of(torch.tensor([[0.0] + [-1e4] * (v - 1)]))[0]) == pytest.approx(0.0, abs=1e-6)
