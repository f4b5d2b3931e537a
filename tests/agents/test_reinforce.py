"""REINFORCE: discounted returns of KL-penalised rewards, value and moving-average baselines, checkpointed EMA."""

from __future__ import annotations

import pytest
import torch

from agent_helpers import tiny_char
from algo_helpers import QUIET, check_learns, check_learns_token_count, check_one_update, check_resume, stop_env
from textgym.agents import REINFORCE, LMActorCritic, REINFORCEConfig
from textgym.agents.functional import discounted_returns, kl_penalized_rewards
import textgym.agents.algorithms.reinforce as reinforce_module


def make(n=8, **cfg):
    return REINFORCE(LMActorCritic(*tiny_char()), stop_env(n), REINFORCEConfig(**{**QUIET, **cfg}))


def _spy(monkeypatch):
    calls = []
    real = reinforce_module.actor_critic_step

    def spy(algo, batch, advantages, returns):
        calls.append({"batch": batch, "advantages": advantages.clone(),
                      "returns": None if returns is None else returns.clone()})
        return real(algo, batch, advantages, returns)

    monkeypatch.setattr(reinforce_module, "actor_critic_step", spy)
    return calls


def test_moving_average_baseline_by_hand(monkeypatch):
    calls = _spy(monkeypatch)
    algo = make(n=8, baseline="moving_average", baseline_momentum=0.8, gamma=0.9, kl_coef=0.1, learning_rate=1e-2)
    algo.learn(iterations=3)
    g0 = []
    for i, c in enumerate(calls):
        b = c["batch"]
        rewards, _ = kl_penalized_rewards(b.rewards, b.logprobs, b.ref_logprobs, b.mask, 0.1, "k1")
        g = discounted_returns(rewards, b.mask, 0.9)
        g0.append(float(g[:, 0].mean()))
        # baseline of update i: bias-corrected EMA of the previous batches' mean G_0 (0 before any)
        if i == 0:
            baseline = 0.0
        elif i == 1:
            baseline = g0[0]  # (0.2 * G0) / (1 - 0.8)
        else:
            baseline = (0.8 * 0.2 * g0[0] + 0.2 * g0[1]) / (1 - 0.8**2)
        torch.testing.assert_close(c["advantages"], torch.where(b.mask, g - baseline, 0.0), atol=1e-6, rtol=1e-5)
        assert c["returns"] is None  # no value loss
    ema = 0.8 * (0.8 * 0.2 * g0[0] + 0.2 * g0[1]) + 0.2 * g0[2]
    assert algo.baseline_ema == pytest.approx(ema, rel=1e-5)
    assert algo.moving_average == pytest.approx(ema / (1 - 0.8**3), rel=1e-5)
    assert any(float(b) != 0.0 for b in [g0[0], g0[1]])  # the baselines were not trivially 0


def test_value_baseline_uses_the_rollout_values_and_trains_the_value_head(monkeypatch):
    calls = _spy(monkeypatch)
    algo = make(n=8, gamma=0.95, learning_rate=1e-2, vf_coef=1.0)
    head = algo.policy.value_head.weight.detach().clone()
    metrics = algo.train_step()
    b = calls[0]["batch"]
    rewards, _ = kl_penalized_rewards(b.rewards, b.logprobs, b.ref_logprobs, b.mask, 0.05, "k1")
    g = discounted_returns(rewards, b.mask, 0.95)
    torch.testing.assert_close(calls[0]["returns"], g)
    torch.testing.assert_close(calls[0]["advantages"], torch.where(b.mask, g - b.values, 0.0))
    assert not torch.equal(head, algo.policy.value_head.weight)
    assert metrics["loss/value"] > 0
    # the logged value loss is 0.5 * token-mean of (V - G)^2 with the rollout values (weights unchanged then)
    expected = 0.5 * float(((b.values - g) ** 2)[b.mask].mean())
    assert metrics["loss/value"] == pytest.approx(expected, rel=1e-4)


def test_one_update_changes_the_weights_and_logs_its_metrics():
    check_one_update(make(n=8, learning_rate=1e-3), ["loss/value", "stats/return", "stats/baseline"])


def test_config_errors():
    with pytest.raises(ValueError, match="baseline must be one of"):
        REINFORCEConfig(baseline="mean")
    with pytest.raises(ValueError, match=r"baseline_momentum must be in \[0, 1\)"):
        REINFORCEConfig(baseline_momentum=1.0)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        REINFORCEConfig(gamma=1.5)


def test_save_load_continue_equals_uninterrupted_with_the_moving_average(tmp_path):
    a, b = check_resume(lambda: make(n=8, baseline="moving_average", learning_rate=5e-3), REINFORCE, tmp_path)
    assert b.baseline_updates == a.baseline_updates == 3
    assert b.moving_average == pytest.approx(a.moving_average)


def test_learns_a_synthetic_task():
    check_learns(REINFORCE, REINFORCEConfig(learning_rate=3e-3, kl_coef=0.0, **QUIET))


@pytest.mark.slow
def test_learns_token_count():
    check_learns_token_count(REINFORCE, REINFORCEConfig(learning_rate=2e-3, kl_coef=0.0, **QUIET))
