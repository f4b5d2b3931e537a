"""RLOO: sequence rewards with the summed KL, leave-one-out advantages, the sequence-level REINFORCE gradient."""

from __future__ import annotations

import pytest
import torch

from agent_helpers import tiny_char
from algo_helpers import QUIET, check_learns, check_learns_token_count, check_one_update, check_resume, stop_env
from textgym.agents import RLOO, LMActorCritic, RLOOConfig
from textgym.agents.functional import kl_estimate, rloo_baseline
from textgym.agents.common.sampling import logprobs_of, process_logits
from textgym.agents.common.rollout import trim_to_content


def make(n=8, **cfg):
    return RLOO(LMActorCritic(*tiny_char()), stop_env(n), RLOOConfig(**{**QUIET, "group_size": 4, **cfg}))


def test_advantage_is_the_sequence_reward_minus_the_mean_of_the_others(monkeypatch):
    algo = make(n=8, kl_coef=0.5, learning_rate=1e-2)
    algo.learn(iterations=1)  # the policy differs from the reference: the KL term is not 0
    batch = algo.collect_rollouts()
    scores = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 1.0, 1.0])
    rewards = torch.zeros_like(batch.rewards)
    rewards[torch.arange(8), batch.lengths - 1] = scores
    batch = batch._replace(rewards=rewards, scores=scores)
    seen = {}
    real = algo.optimize_minibatch

    def spy(b, adv, rows):
        seen["adv"] = adv.clone()
        return real(b, adv, rows)

    monkeypatch.setattr(algo, "optimize_minibatch", spy)
    algo.update(batch)
    kl = torch.where(batch.mask, kl_estimate(batch.logprobs, batch.ref_logprobs, "k1"), 0.0).sum(-1)
    r = scores - 0.5 * kl  # R_i = score_i - beta * sum_t KL_t
    loo = torch.cat([(r[:4].sum() - r[:4]) / 3, (r[4:].sum() - r[4:]) / 3])
    torch.testing.assert_close(seen["adv"], r - loo)
    # the library's baseline on the scores alone, by hand: group 1 -> 11/3, 10/3, 3, 2; group 2 -> 2/3, 2/3, 1/3, 1/3
    torch.testing.assert_close(rloo_baseline(scores, 4),
                               torch.tensor([11 / 3, 10 / 3, 3.0, 2.0, 2 / 3, 2 / 3, 1 / 3, 1 / 3]))
    assert float(kl.abs().max()) > 1e-4


def test_the_default_step_is_the_sequence_level_reinforce_gradient():
    algo = make(n=8, learning_rate=0.0)
    batch = algo.collect_rollouts()
    adv = torch.tensor([0.5, -1.0, 2.0, -1.5, 1.0, 0.0, -0.25, 0.25])
    # expected gradient: of -1/N sum_i A_i log pi(y_i | x), log pi(y_i | x) = sum of the token logprobs
    params = algo.policy.trainable_parameters()
    ids, am, t = trim_to_content(batch.input_ids, batch.attention_mask, batch.mask)
    logp = logprobs_of(process_logits(algo.policy.score(ids, am, t).logits, algo.collector.sampling),
                       batch.actions[:, :t])
    seq = torch.where(batch.mask[:, :t], logp, 0.0).sum(-1)
    expected = torch.autograd.grad(-(adv * seq).mean(), params, allow_unused=True)
    loss, sums = algo.compute_loss(batch, adv, 8.0, float(batch.mask.sum()))
    got = torch.autograd.grad(loss, params, allow_unused=True)
    for g, e in zip(got, expected):
        if e is None:
            assert g is None or float(g.abs().max()) == 0.0  # the value head: no gradient
        else:
            torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-4)
    assert float(loss.detach()) == pytest.approx(float(-adv.mean()), abs=1e-6)  # ratio exactly 1
    assert sums["approx_kl"] == pytest.approx(0.0, abs=1e-6)


def test_clipped_epochs_clip_the_sequence_ratio():
    algo = make(n=8, learning_rate=3e-2, clip_range=0.05, n_epochs=3, minibatch_size=4)
    metrics = algo.train_step()
    assert metrics["stats/optimizer_steps"] == 6
    assert algo.minibatch_log[0]["clipfrac"] == 0.0  # ratio 1 before the first step
    assert max(m["clipfrac"] for m in algo.minibatch_log[2:]) > 0  # later epochs: sequence ratios moved past 5%


def test_one_update_changes_the_weights_and_logs_its_metrics():
    algo = make(n=8, learning_rate=1e-3)
    head = [p.detach().clone() for p in algo.policy.value_head.parameters()]
    check_one_update(algo, ["stats/approx_kl", "stats/clipfrac", "stats/advantage_std"])
    assert all(torch.equal(p, q) for p, q in zip(head, algo.policy.value_head.parameters()))  # no critic


def test_num_envs_must_be_a_multiple_of_the_group_size():
    with pytest.raises(ValueError, match=r"num_envs \(8\) must be a multiple of group_size \(3\)"):
        make(n=8, group_size=3)


def test_save_load_continue_equals_uninterrupted(tmp_path):
    check_resume(lambda: make(n=8, learning_rate=5e-3), RLOO, tmp_path)


def test_learns_a_synthetic_task():
    check_learns(RLOO, RLOOConfig(learning_rate=3e-3, kl_coef=0.0, group_size=4, **QUIET))


@pytest.mark.slow
def test_learns_token_count():
    check_learns_token_count(RLOO, RLOOConfig(learning_rate=2e-3, kl_coef=0.0, group_size=8, **QUIET))
