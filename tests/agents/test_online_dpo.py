"""Online DPO: best-vs-worst pairs per group, the DPO loss on policy vs reference sequence log-probs."""

from __future__ import annotations

import math

import pytest
import torch

from agent_helpers import tiny_char
from algo_helpers import QUIET, check_learns, check_one_update, check_resume, stop_env
from textgym.agents import LMActorCritic, OnlineDPO, OnlineDPOConfig
from textgym.agents.algorithms.online_dpo import preference_pairs
from textgym.agents.common.rollout import trim_to_content
from textgym.agents.common.sampling import logprobs_of, process_logits


def make(n=8, **cfg):
    return OnlineDPO(LMActorCritic(*tiny_char()), stop_env(n), OnlineDPOConfig(**{**QUIET, "group_size": 2, **cfg}))


def test_pairs_are_best_and_worst_of_each_group_and_ties_are_dropped():
    scores = torch.tensor([1.0, 3.0, 2.0, 2.0, 0.5, -1.0, 4.0, 0.0, 4.0])
    chosen, rejected = preference_pairs(scores, 3)  # groups [1, 3, 2], [2, 0.5, -1], [4, 0, 4]
    assert chosen.tolist() == [1, 3, 6] and rejected.tolist() == [0, 5, 7]
    chosen, rejected = preference_pairs(torch.tensor([1.0, 1.0, 0.0, 2.0]), 2)
    assert chosen.tolist() == [3] and rejected.tolist() == [2]  # the tied first group carries no pair


def test_loss_at_the_start_is_log_two_and_its_gradient_is_dpo_s():
    algo = make(n=8, learning_rate=0.0, beta=0.5)
    batch = algo.collect_rollouts()
    ref_seq = torch.where(batch.mask, batch.ref_logprobs, 0.0).sum(-1)
    chosen, rejected = torch.tensor([0, 2, 4, 6]), torch.tensor([1, 3, 5, 7])
    loss, sums = algo.compute_loss(batch, chosen, rejected, ref_seq, 0.5, n_pairs_mb=4.0)
    assert float(loss) == pytest.approx(math.log(2), abs=1e-5)  # policy = reference: h = 0
    assert sums["accuracy"] == 0.0 and sums["margin"] == pytest.approx(0.0, abs=1e-5)
    # the gradient of -log sigmoid(beta h) at h = 0 is -beta/2 * (grad log pi(y_c) - grad log pi(y_r)), averaged
    params = algo.policy.trainable_parameters()
    ids, am, t = trim_to_content(batch.input_ids, batch.attention_mask, batch.mask)
    logp = logprobs_of(process_logits(algo.policy.score(ids, am, t).logits, algo.collector.sampling),
                       batch.actions[:, :t])
    seq = torch.where(batch.mask[:, :t], logp, 0.0).sum(-1)
    expected = torch.autograd.grad(-0.25 * (seq[chosen] - seq[rejected]).mean(), params, allow_unused=True)
    got = torch.autograd.grad(loss, params, allow_unused=True)
    for g, e in zip(got, expected):
        if e is not None:
            torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-4)


def test_one_update_logs_pairs_and_implicit_reward_statistics():
    algo = make(n=8, learning_rate=1e-3)
    row = check_one_update(algo, ["rewards/accuracy", "rewards/margin", "stats/pairs", "stats/tied_groups",
                                  "stats/beta"])
    assert row["stats/pairs"] + row["stats/tied_groups"] == 4


def test_all_tied_groups_take_no_step():
    algo = make(n=8, learning_rate=1e-2)
    batch = algo.collect_rollouts()
    batch = batch._replace(rewards=torch.zeros_like(batch.rewards))
    before = [p.detach().clone() for p in algo.policy.trainable_parameters()]
    metrics = algo.update(batch)
    assert metrics["stats/pairs"] == 0 and metrics["stats/tied_groups"] == 4
    assert metrics["stats/optimizer_steps"] == 0
    assert all(torch.equal(p, q) for p, q in zip(before, algo.policy.trainable_parameters()))


def test_resume_is_exact(tmp_path):
    check_resume(lambda: make(n=8, learning_rate=1e-3), OnlineDPO, tmp_path)


def test_bad_settings_fail_with_one_line():
    with pytest.raises(ValueError, match="beta must be > 0"):
        OnlineDPOConfig(beta=0.0)
    with pytest.raises(ValueError, match="loss_type must be one of"):
        OnlineDPOConfig(loss_type="kto")


@pytest.mark.slow
def test_learns():
    check_learns(OnlineDPO, OnlineDPOConfig(group_size=4, learning_rate=1e-2, beta=0.1, **QUIET))
