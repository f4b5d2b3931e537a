"""The RL math of REINFORCE, A2C, RLOO, GRPO and NLPO on hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from textgym.agents.functional import (
    clipped_policy_loss,
    discounted_returns,
    group_advantages,
    nstep_returns,
    rloo_baseline,
    top_p_mask,
)
from textgym.agents.common.sampling import SamplingParams, logprobs_of, process_logits

# one row of 3 real tokens in 4 slots: rewards 1, 2, 3; values 10, 20, 30
R = torch.tensor([[1.0, 2.0, 3.0, 0.0]])
V = torch.tensor([[10.0, 20.0, 30.0, 99.0]])  # 99 on padding must never leak
M = torch.tensor([[True, True, True, False]])


def test_discounted_returns_by_hand():
    # gamma 0.5: G_2 = 3, G_1 = 2 + 0.5 * 3 = 3.5, G_0 = 1 + 0.5 * 3.5 = 2.75; 0 on padding
    torch.testing.assert_close(discounted_returns(R, M, 0.5), torch.tensor([[2.75, 3.5, 3.0, 0.0]]))
    torch.testing.assert_close(discounted_returns(R, M, 1.0), torch.tensor([[6.0, 5.0, 3.0, 0.0]]))
    # two rows of different lengths: the short row's padding reward is ignored
    r = torch.tensor([[1.0, 1.0, 1.0], [2.0, 5.0, 7.0]])
    m = torch.tensor([[True, True, True], [True, False, False]])
    torch.testing.assert_close(discounted_returns(r, m, 0.9), torch.tensor([[2.71, 1.9, 1.0], [2.0, 0.0, 0.0]]))


def test_nstep_returns_by_hand():
    # n = 2, gamma = 0.5, terminated (V_L = 0):
    # R_0 = 1 + .5*2 + .25*V_2 = 2 + 7.5 = 9.5;  R_1 = 2 + .5*3 + .25*V_3(=0) = 3.5;  R_2 = 3 + .5*V_3 = 3
    torch.testing.assert_close(nstep_returns(R, V, M, torch.tensor([0.0]), 0.5, 2),
                               torch.tensor([[9.5, 3.5, 3.0, 0.0]]))
    # truncated with V(s_3) = 4: R_1 = 3.5 + .25*4 = 4.5;  R_2 = 3 + .5*4 = 5
    torch.testing.assert_close(nstep_returns(R, V, M, torch.tensor([4.0]), 0.5, 2),
                               torch.tensor([[9.5, 4.5, 5.0, 0.0]]))
    # n = 1 is TD(0): r_t + gamma V_{t+1}
    torch.testing.assert_close(nstep_returns(R, V, M, torch.tensor([4.0]), 0.5, 1),
                               torch.tensor([[1 + 10.0, 2 + 15.0, 3 + 2.0, 0.0]]))
    # n >= L: the Monte-Carlo return plus the discounted bootstrap
    mc = discounted_returns(R, M, 0.5) + torch.tensor([[0.5**3, 0.5**2, 0.5, 0.0]]) * 4.0
    torch.testing.assert_close(nstep_returns(R, V, M, torch.tensor([4.0]), 0.5, 10), mc)
    # a row that fills every slot bootstraps from the extra column
    full = torch.tensor([[True, True, True, True]])
    out = nstep_returns(torch.tensor([[0.0, 0.0, 0.0, 1.0]]), V, full, torch.tensor([8.0]), 1.0, 1)
    torch.testing.assert_close(out, torch.tensor([[20.0, 30.0, 99.0, 9.0]]))
    with pytest.raises(ValueError, match="n must be >= 1"):
        nstep_returns(R, V, M, torch.tensor([0.0]), 0.5, 0)


def test_rloo_baseline_is_the_mean_of_the_others():
    torch.testing.assert_close(rloo_baseline(torch.tensor([1.0, 2.0, 3.0, 6.0]), 4),
                               torch.tensor([11 / 3, 10 / 3, 3.0, 2.0]))
    # two groups of two: each baseline is the other sample
    torch.testing.assert_close(rloo_baseline(torch.tensor([1.0, 5.0, -2.0, 0.5]), 2),
                               torch.tensor([5.0, 1.0, 0.5, -2.0]))
    # the leave-one-out advantages of a group sum to zero
    r = torch.tensor([0.3, 0.9, 0.1, 0.7, 0.2, 0.2])
    assert float((r - rloo_baseline(r, 3)).reshape(2, 3).sum(-1).abs().max()) < 1e-6
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        rloo_baseline(torch.ones(4), 1)
    with pytest.raises(ValueError, match="do not split into groups of 3"):
        rloo_baseline(torch.ones(4), 3)


def test_group_advantages_normalise_within_each_group_and_equal_rewards_give_exactly_zero():
    r = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.1, 0.1, 0.1, 0.1])
    adv = group_advantages(r, 4, eps=1e-4)
    std = math.sqrt(14 / 3)  # deviations -2, -1, 0, 3 -> sample variance 14 / 3
    expected = torch.tensor([-2.0, -1.0, 0.0, 3.0]) / (std + 1e-4)
    torch.testing.assert_close(adv[:4], expected)
    assert torch.equal(adv[4:], torch.zeros(4))  # 0.1 * 4 / 4 != 0.1 in floats: still exactly 0
    assert torch.isfinite(group_advantages(torch.zeros(6), 3)).all()
    assert torch.equal(group_advantages(torch.zeros(6), 3), torch.zeros(6))
    # a group of two: +-(1/2) / (sqrt(1/2) + eps)
    torch.testing.assert_close(group_advantages(torch.tensor([0.0, 1.0]), 2, eps=1e-4),
                               torch.tensor([-0.5, 0.5]) / (math.sqrt(0.5) + 1e-4))
    with pytest.raises(ValueError, match="eps must be > 0"):
        group_advantages(r, 4, eps=0.0)
    with pytest.raises(ValueError, match=r"expected a \(N,\) tensor"):
        group_advantages(r.reshape(2, 4), 4)


def test_top_p_mask_keeps_exactly_the_nucleus_and_renormalises():
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])  # sorted: 0.5 (1), 0.3 (3), 0.15 (0), 0.05 (2)
    logits = probs.log()
    assert top_p_mask(logits, 0.7).tolist() == [False, True, False, True]  # 0.5 + 0.3 reaches 0.7
    assert top_p_mask(logits, 0.85).tolist() == [True, True, False, True]  # + 0.15 reaches 0.85
    assert top_p_mask(logits, 1.0).all()
    assert top_p_mask(logits, 1e-6).tolist() == [False, True, False, False]  # the top token is always kept
    # batched, and -inf logits are never kept
    two = torch.stack([logits, torch.tensor([0.0, float("-inf"), 0.0, float("-inf")])])
    assert top_p_mask(two, 0.9).tolist() == [[True, True, False, True], [True, False, True, False]]
    # renormalised log-probabilities over the kept set {1, 3}: log(0.5 / 0.8), log(0.3 / 0.8)
    masked = logits.masked_fill(~top_p_mask(logits, 0.7), float("-inf"))
    lp = logprobs_of(process_logits(masked, SamplingParams()).expand(3, 4), torch.tensor([1, 3, 0]))
    torch.testing.assert_close(lp[:2], torch.tensor([math.log(0.625), math.log(0.375)]))
    assert lp[2] == float("-inf")
    with pytest.raises(ValueError, match=r"top-p mass must be in \(0, 1\]"):
        top_p_mask(logits, 0.0)


def test_weighted_clipped_policy_loss_is_a_per_token_weighted_sum():
    logp = torch.tensor([[0.0, math.log(2.0)], [math.log(0.5), 0.0]])
    old = torch.zeros(2, 2)
    adv = torch.tensor([[1.0, 1.0], [-1.0, 2.0]])
    mask = torch.tensor([[True, True], [True, False]])
    w = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    loss, sums = clipped_policy_loss(logp, old, adv, mask, 0.2, 2.0, weights=w)
    # per token -min(r A, clip(r) A): (1, 1) -> -1; (2, 1) -> -1.2; (0.5, -1) -> min(-0.5, -0.8) = -0.8 -> 0.8
    expected = (0.5 * -1.0 + 0.5 * -1.2 + 1.0 * 0.8) / 2.0
    assert float(loss) == pytest.approx(expected)
    assert float(sums["clipfrac"]) == pytest.approx(0.5 + 1.0)  # tokens (0, 1) and (1, 0) clipped, weighted
    unweighted, _ = clipped_policy_loss(logp, old, adv, mask, float("inf"), 1.0)  # no clipping
    assert float(unweighted) == pytest.approx(-1.0 - 2.0 + 0.5)
