"""REINFORCE++: the KL-penalised return-to-go, whitened over the whole batch; no critic; learning."""

from __future__ import annotations

import pytest
import torch

from agent_helpers import tiny_char
from algo_helpers import QUIET, check_learns_token_count, stop_env
from textgym.agents import LMActorCritic, REINFORCEPlusPlus, REINFORCEPlusPlusConfig
from textgym.agents.algorithms.registry import get_algorithm
import textgym.agents.algorithms.reinforce as reinforce_module


def test_advantages_are_returns_to_go_whitened_over_the_batch(monkeypatch):
    calls = []
    real = reinforce_module.actor_critic_step
    monkeypatch.setattr(reinforce_module, "actor_critic_step",
                        lambda algo, batch, adv, ret: calls.append((batch, adv.clone(), ret)) or real(algo, batch, adv, ret))
    assert get_algorithm("reinforce++") is REINFORCEPlusPlus
    algo = REINFORCEPlusPlus(LMActorCritic(*tiny_char()), stop_env(8),
                             REINFORCEPlusPlusConfig(kl_coef=0.1, learning_rate=1e-2, **QUIET))
    algo.learn(iterations=2)
    for b, adv, ret in calls:
        m = b.mask
        r = torch.where(m, b.rewards - 0.1 * (b.logprobs - b.ref_logprobs), 0.0)  # k1 KL in the reward
        g = torch.flip(torch.cumsum(torch.flip(r, [1]), 1), [1])  # return-to-go, gamma = 1
        vals = g[m]
        expected = torch.where(m, (g - vals.mean()) / torch.sqrt(vals.var(unbiased=True) + 1e-8), 0.0)
        torch.testing.assert_close(adv, expected, atol=1e-5, rtol=1e-5)
        assert float(adv[m].mean()) == pytest.approx(0.0, abs=1e-5) and float(adv[m].std()) == pytest.approx(1.0, rel=1e-4)
        assert ret is None  # no critic
        assert float(vals.std()) > 0.01  # the whitening had something to do


@pytest.mark.slow
def test_learns_token_count():
    check_learns_token_count(REINFORCEPlusPlus, REINFORCEPlusPlusConfig(learning_rate=2e-3, kl_coef=0.0, **QUIET))
