"""Pure RL math: GAE by hand, KL estimators by hand, controllers, masked statistics, clipped losses."""

from __future__ import annotations

import math

import pytest
import torch

from textgym.agents import functional as F
from textgym.agents.common import kl_controllers as K

G, L = 0.9, 0.8  # gamma, lambda used in the hand computations


def test_gae_terminated_episode_by_hand():
    # 3 tokens, score 1 on the last one, values V0..V2 = 0.5, 0.6, 0.7; terminated -> V3 := 0
    r = torch.tensor([[0.0, 0.0, 1.0]])
    v = torch.tensor([[0.5, 0.6, 0.7]])
    m = torch.ones(1, 3, dtype=torch.bool)
    adv, ret = F.compute_gae(r, v, m, torch.zeros(1), G, L)
    # delta2 = 1 + 0.9*0 - 0.7 = 0.3                     A2 = 0.3
    # delta1 = 0 + 0.9*0.7 - 0.6 = 0.03                  A1 = 0.03 + 0.72*0.3   = 0.246
    # delta0 = 0 + 0.9*0.6 - 0.5 = 0.04                  A0 = 0.04 + 0.72*0.246 = 0.21712
    torch.testing.assert_close(adv, torch.tensor([[0.21712, 0.246, 0.3]]))
    # returns = A + V = 0.71712, 0.846, 1.0
    torch.testing.assert_close(ret, torch.tensor([[0.71712, 0.846, 1.0]]))


def test_gae_truncated_episode_bootstraps():
    r = torch.tensor([[0.0, 0.0, 1.0]])
    v = torch.tensor([[0.5, 0.6, 0.7]])
    m = torch.ones(1, 3, dtype=torch.bool)
    adv, ret = F.compute_gae(r, v, m, torch.tensor([0.4]), G, L)  # truncated: V3 = V(s_3) = 0.4
    # delta2 = 1 + 0.9*0.4 - 0.7 = 0.66                  A2 = 0.66
    # delta1 = 0.03                                      A1 = 0.03 + 0.72*0.66   = 0.5052
    # delta0 = 0.04                                      A0 = 0.04 + 0.72*0.5052 = 0.403744
    torch.testing.assert_close(adv, torch.tensor([[0.403744, 0.5052, 0.66]]))
    torch.testing.assert_close(ret, torch.tensor([[0.903744, 1.1052, 1.36]]))


def test_gae_rows_of_different_lengths_ignore_padding():
    # row 0: the 3-token episode above, in 5 slots, garbage (nan) in the padding
    # row 1: one token, reward 2, V0 = 1, truncated with V1 = 3: delta0 = 2 + 0.9*3 - 1 = 3.7
    nan = float("nan")
    r = torch.tensor([[0.0, 0.0, 1.0, nan, nan], [2.0, nan, nan, nan, nan]])
    v = torch.tensor([[0.5, 0.6, 0.7, nan, nan], [1.0, nan, nan, nan, nan]])
    m = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    adv, ret = F.compute_gae(r, v, m, torch.tensor([0.0, 3.0]), G, L)
    torch.testing.assert_close(adv, torch.tensor([[0.21712, 0.246, 0.3, 0, 0], [3.7, 0, 0, 0, 0]]))
    torch.testing.assert_close(ret[1], torch.tensor([4.7, 0, 0, 0, 0]))


def test_gae_gamma_lambda_one_is_monte_carlo_return_minus_value():
    r = torch.tensor([[0.1, -0.2, 1.0]])
    v = torch.tensor([[0.3, 0.2, 0.1]])
    adv, ret = F.compute_gae(r, v, torch.ones(1, 3, dtype=torch.bool), torch.zeros(1), 1.0, 1.0)
    torch.testing.assert_close(ret, torch.tensor([[0.9, 0.8, 1.0]]))  # reward-to-go
    torch.testing.assert_close(adv, ret - v)


def test_gae_shape_errors():
    with pytest.raises(ValueError, match="same"):
        F.compute_gae(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="bootstrap"):
        F.compute_gae(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(3))


@pytest.mark.parametrize(
    "p, q, expected",
    [
        # r = log(0.5 / 0.25) = log 2 = 0.693147
        (0.5, 0.25, {"k1": 0.693147, "k2": 0.5 * 0.693147**2, "abs": 0.693147, "k3": 0.5 - 1 + 0.693147}),
        # r = log(0.25 / 0.5) = -log 2: k1 negative, k3 = 2 - 1 - log 2 = 0.306853
        (0.25, 0.5, {"k1": -0.693147, "k2": 0.240227, "abs": 0.693147, "k3": 0.306853}),
        (0.3, 0.3, {"k1": 0.0, "k2": 0.0, "abs": 0.0, "k3": 0.0}),
    ],
)
def test_kl_estimators_by_hand(p, q, expected):
    logp, ref = torch.tensor([math.log(p)]), torch.tensor([math.log(q)])
    for kind, value in expected.items():
        assert float(F.kl_estimate(logp, ref, kind)) == pytest.approx(value, abs=1e-5), kind


def test_kl_estimators_k1_k3_unbiased_k2_abs_nonnegative():
    torch.manual_seed(0)
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.3, 0.5])
    true_kl = float((p * (p / q).log()).sum())
    a = torch.multinomial(p, 200_000, replacement=True)
    logp, ref = p.log()[a], q.log()[a]
    for kind in ("k1", "k3"):
        assert float(F.kl_estimate(logp, ref, kind).mean()) == pytest.approx(true_kl, rel=0.03)
    for kind in ("k2", "abs", "k3"):
        assert float(F.kl_estimate(logp, ref, kind).min()) >= 0.0
    with pytest.raises(ValueError, match="unknown KL estimator"):
        F.kl_estimate(logp, ref, "k4")


def test_adaptive_controller_moves_beta_towards_target():
    # Ziegler et al.: e = clip(KL/target - 1, -0.2, 0.2); beta *= 1 + e * n / horizon
    ctl = K.AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    assert ctl.update(12.0, 1000) == pytest.approx(0.1 * (1 + 0.2 * 0.1))  # KL too high: beta up (clipped e)
    ctl = K.AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    assert ctl.update(3.0, 1000) == pytest.approx(0.1 * (1 - 0.2 * 0.1))  # too low: beta down
    ctl = K.AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    assert ctl.update(6.6, 1000) == pytest.approx(0.1 * (1 + 0.1 * 0.1))  # e = 0.1
    assert K.FixedKLController(0.1).update(100.0, 1000) == 0.1
    state = ctl.state_dict()
    other = K.AdaptiveKLController(1.0, 6.0)
    other.load_state_dict(state)
    assert other.kl_coef == ctl.kl_coef
    with pytest.raises(ValueError):
        K.AdaptiveKLController(0.0, 6.0)


def test_masked_stats_ignore_padding_and_never_nan():
    x = torch.tensor([[1.0, 2.0, float("nan")], [3.0, float("inf"), 0.0]])
    m = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    assert float(F.masked_mean(x, m)) == pytest.approx(2.0)
    assert float(F.masked_var(x, m)) == pytest.approx(1.0)  # unbiased: ((1)^2 + 0 + 1) / 2
    assert float(F.masked_var(x, m, unbiased=False)) == pytest.approx(2 / 3)
    w = F.masked_whiten(x, m)
    assert torch.isfinite(w).all() and float(F.masked_mean(w, m)) == pytest.approx(0.0, abs=1e-6)
    assert (w[~m] == 0).all()
    # a single valid token: whitened to 0, no NaN
    one = torch.zeros(2, 3, dtype=torch.bool)
    one[1, 0] = True
    assert torch.equal(F.masked_whiten(x, one), torch.zeros(2, 3))
    assert float(F.masked_mean(x, torch.zeros_like(one))) == 0.0  # no valid token: 0, not nan


def test_clipped_losses_by_hand():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1 (old logp = 0)
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    m = torch.ones(1, 3, dtype=torch.bool)
    loss, s = F.clipped_policy_loss(logp, old, adv, m, 0.2, normalizer=3)
    # -min(1.5*1, 1.2*1) = -1.2 ; -min(-0.5, -0.8) = 0.8 ; -min(2.2, 2.2) = -2.2  -> mean -0.8667
    assert float(loss) == pytest.approx((-1.2 + 0.8 - 2.2) / 3)
    assert float(s["clipfrac"]) == 2.0  # token sum: ratios 1.5 and 0.5 are outside [0.8, 1.2]
    k3 = [(r - 1) - math.log(r) for r in (1.5, 0.5, 1.1)]
    assert float(s["approx_kl"]) == pytest.approx(sum(k3), rel=1e-5)
    v = torch.tensor([[1.0, 0.0]])
    v_old = torch.tensor([[0.0, 0.0]])
    ret = torch.tensor([[0.5, 1.0]])
    vl, _ = F.clipped_value_loss(v, v_old, ret, torch.ones(1, 2, dtype=torch.bool), 0.2, normalizer=2)
    # token 0: unclipped (1-0.5)^2 = 0.25, clipped (0.2-0.5)^2 = 0.09 -> 0.25 ; token 1: (0-1)^2 = 1 both
    assert float(vl) == pytest.approx(0.5 * (0.25 + 1.0) / 2)


def test_kl_penalized_rewards_only_on_real_tokens():
    env_r = torch.tensor([[0.0, 0.0, 0.7, 0.0], [0.3, 0.0, 0.0, 0.0]])
    logp = torch.tensor([[-1.0, -2.0, -0.5, -9.0], [-1.0, -9.0, -9.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, 0.0], [-2.0, 0.0, 0.0, 0.0]])
    m = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    r, kl = F.kl_penalized_rewards(env_r, logp, ref, m, 0.1, "k1")
    torch.testing.assert_close(kl, torch.tensor([[0.5, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]))
    # r = env - 0.1 * kl: [-0.05, 0.1, 0.7, 0], [0.3 - 0.1, 0, 0, 0]
    torch.testing.assert_close(r, torch.tensor([[-0.05, 0.1, 0.7, 0.0], [0.2, 0.0, 0.0, 0.0]]))
