"""``rescore_policy`` at the algorithm level: the scoring pass recomputes the policy (default) or keeps the
generation-time log-probabilities and values (``False``)."""

from __future__ import annotations

import pytest
import torch

from agent_helpers import tiny_char
from algo_helpers import QUIET, stop_env
from textgym.agents import A2C, PPO, A2CConfig, LMActorCritic, PPOConfig


def _count_policy_forwards(algo, monkeypatch):
    calls = []
    real = algo.policy.score

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(algo.policy, "score", spy)
    return calls


@pytest.mark.parametrize("rescore", [True, False])
def test_ppo_scoring_pass_follows_rescore_policy(rescore, monkeypatch):
    algo = PPO(LMActorCritic(*tiny_char()), stop_env(8),
               PPOConfig(rescore_policy=rescore, learning_rate=1e-2, n_epochs=1, **QUIET))
    algo.learn(iterations=1)  # the policy now differs from its reference
    assert algo.collector.rescore_policy is rescore
    calls = _count_policy_forwards(algo, monkeypatch)
    batch = algo.collect_rollouts()
    assert (len(calls) > 0) is rescore  # the policy's full forward runs only when rescoring
    if not rescore:
        assert algo.collector.last_logprob_mismatch == 0.0  # the generation-time log-probabilities are kept
    assert bool((batch.logprobs[batch.mask] < 0).all()) and bool((batch.logprobs[~batch.mask] == 0).all())
    assert float((batch.logprobs - batch.ref_logprobs).abs().max()) > 1e-3  # the reference is still scored
    # either way the first minibatch starts at ratio 1 (up to the KV cache's float noise)
    for g in algo.optimizer.param_groups:
        g["lr"] = 0.0
    algo.update(batch)
    assert algo.minibatch_log[0]["ratio_max_dev"] < 1e-4


def test_a2c_and_evaluation_pass_rescore_policy_on(monkeypatch):
    algo = A2C(LMActorCritic(*tiny_char()), stop_env(8), A2CConfig(rescore_policy=False, **QUIET))
    calls = _count_policy_forwards(algo, monkeypatch)
    algo.collect_rollouts()
    algo.evaluate(stop_env(8), n_episodes=8)
    assert calls == []
    algo.config.rescore_policy = True
    algo.evaluate(stop_env(8), n_episodes=8)
    assert calls


def test_default_skips_rescoring_exactly_when_one_step_per_rollout(monkeypatch):
    from textgym.agents import GRPOConfig, REINFORCEConfig, RLOOConfig

    # ratio 1 by construction: one optimizer step per rollout (REINFORCE; RLOO / GRPO with one epoch, one minibatch)
    for cfg in (REINFORCEConfig(), RLOOConfig(), GRPOConfig()):
        assert cfg.rescore_policy is None and cfg.rescores_policy() is False
    # several steps need the rescored ratio; PPO and A2C keep rescoring
    for cfg in (GRPOConfig(n_epochs=2), RLOOConfig(minibatch_size=4), PPOConfig(), A2CConfig()):
        assert cfg.rescores_policy() is True
    assert GRPOConfig(rescore_policy=True).rescores_policy() is True  # an explicit setting wins
    assert PPOConfig(rescore_policy=False).rescores_policy() is False
    from textgym.agents import GRPO

    algo = GRPO(LMActorCritic(*tiny_char()), stop_env(8), GRPOConfig(group_size=4, **QUIET))
    assert algo.collector.rescore_policy is False
    calls = _count_policy_forwards(algo, monkeypatch)
    algo.collect_rollouts()
    assert calls == []  # no policy rescoring pass
