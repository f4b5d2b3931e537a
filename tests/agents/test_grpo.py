"""GRPO: grouped rollouts, group-normalised advantages on every token, the k3 KL in the loss, resume, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_helpers import char_env, tiny_char
from algo_helpers import QUIET, check_learns, check_learns_token_count, check_one_update, check_resume, stop_env
from textgym.agents import GRPO, GRPOConfig, LMActorCritic
from textgym.agents.functional import kl_estimate


def make(n=8, policy=None, **cfg):
    policy = policy if policy is not None else LMActorCritic(*tiny_char())
    return GRPO(policy, stop_env(n), GRPOConfig(**{**QUIET, "group_size": 4, **cfg}))


def test_each_rollout_holds_groups_of_one_prompt_and_walks_through_the_data_set():
    algo = make(n=8)  # 2 prompts x 4 samples per rollout; the data set has 6 prompts
    seen = []
    for _ in range(3):
        batch = algo.collect_rollouts()
        idx = algo.env._index.copy()
        assert (idx.reshape(2, 4) == idx[::4, None]).all()  # each group: one sample index
        prompts = batch.input_ids[:, : batch.prompt_length].reshape(2, 4, -1)
        assert (prompts == prompts[:, :1]).all()
        seen += idx[::4].tolist()
    assert sorted(seen) == list(range(6))  # one shuffled epoch: every prompt once


def test_num_envs_must_be_a_multiple_of_the_group_size():
    with pytest.raises(ValueError, match=r"num_envs \(6\) must be a multiple of group_size \(4\)"):
        GRPO(LMActorCritic(*tiny_char()), stop_env(6), GRPOConfig(group_size=4, **QUIET))
    with pytest.raises(ValueError, match="group_size must be an integer >= 2"):
        GRPOConfig(group_size=1)
    with pytest.raises(ValueError, match="only 'k3'"):
        GRPOConfig(kl_estimator="k1")


def _spy(algo, monkeypatch):
    seen = {}
    real = algo.optimize_minibatch

    def spy(batch, advantages, weights, beta, rows):
        seen.update(advantages=advantages.clone(), weights=weights.clone(), beta=beta)
        return real(batch, advantages, weights, beta, rows)

    monkeypatch.setattr(algo, "optimize_minibatch", spy)
    return seen


def test_group_advantages_on_every_token_and_an_equal_group_gives_zero(monkeypatch):
    algo = make(n=8, learning_rate=0.0)
    batch = algo.collect_rollouts()
    last = batch.lengths - 1
    scores = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.5, 0.5, 0.5, 0.5])
    rewards = torch.zeros_like(batch.rewards)
    rewards[torch.arange(8), last] = scores  # the score on each episode's last token
    seen = _spy(algo, monkeypatch)
    metrics = algo.update(batch._replace(rewards=rewards, scores=scores))
    std = float(np.std([1, 2, 3, 6], ddof=1))
    expected = torch.tensor([-2.0, -1.0, 0.0, 3.0, 0, 0, 0, 0]) / (std + 1e-4)
    expected[4:] = 0.0
    adv, w = seen["advantages"], seen["weights"]
    for i in range(8):
        length = int(batch.lengths[i])
        torch.testing.assert_close(adv[i, :length], expected[i].expand(length))
        assert (adv[i, length:] == 0).all() and (w[i, length:] == 0).all()
        torch.testing.assert_close(w[i, :length], torch.full((length,), 1.0 / length))  # "sequence": 1/|o_i|
    assert torch.isfinite(adv).all()
    assert metrics["stats/zero_advantage_groups"] == 0.5


def test_loss_is_the_clipped_objective_plus_beta_times_k3_averaged_per_sequence():
    algo = make(n=8, learning_rate=3e-2, beta=0.3)
    algo.learn(iterations=1)  # the policy now differs from the reference
    batch = algo.collect_rollouts()
    adv = torch.linspace(-1.0, 1.0, 8)[:, None].expand(-1, batch.mask.shape[1])
    adv = torch.where(batch.mask, adv, 0.0)
    lengths = batch.lengths[:, None].float()
    weights = torch.where(batch.mask, 1.0 / lengths, 0.0)
    loss, sums = algo.compute_loss(batch, adv, weights, 0.3, 8.0)
    # the policy has not moved since the rollout: ratio 1, so the surrogate is -A_i on every token
    k3 = torch.where(batch.mask, kl_estimate(batch.logprobs, batch.ref_logprobs, "k3"), 0.0)
    per_seq_kl = k3.sum(-1) / batch.lengths
    expected = float((-torch.linspace(-1.0, 1.0, 8) + 0.3 * per_seq_kl).mean())
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert sums["kl"] / 8 == pytest.approx(float(per_seq_kl.mean()), rel=1e-4, abs=1e-7)
    assert float(per_seq_kl.mean()) > 1e-4  # the KL term was really exercised
    assert sums["approx_kl"] == pytest.approx(0.0, abs=1e-6) and sums["clipfrac"] == 0.0
    # "token" aggregation: every token weighs 1 and the normaliser is the token count
    n_tok = float(batch.mask.sum())
    loss_tok, _ = algo.compute_loss(batch, adv, batch.mask.float(), 0.3, n_tok)
    expected_tok = float((torch.where(batch.mask, -adv, 0.0).sum() + 0.3 * k3.sum()) / n_tok)
    assert float(loss_tok.detach()) == pytest.approx(expected_tok, rel=1e-4, abs=1e-6)


def test_one_update_changes_the_weights_and_logs_its_metrics():
    row = check_one_update(make(n=8, learning_rate=1e-3), ["loss/kl", "stats/approx_kl", "stats/clipfrac",
                                                          "stats/group_reward_std", "stats/zero_advantage_groups"])
    assert row["stats/kl_ref_estimator"] == "k3" and row["stats/kl_coef"] == 0.04


def test_several_epochs_with_minibatches_and_micro_batches():
    algo = make(n=8, learning_rate=1e-2, n_epochs=3, minibatch_size=4, micro_batch_size=2)
    metrics = algo.train_step()
    assert metrics["stats/optimizer_steps"] == 6
    assert algo.minibatch_log[0]["approx_kl"] == pytest.approx(0.0, abs=1e-7)  # ratio 1 on the first minibatch
    assert max(m["approx_kl"] for m in algo.minibatch_log[1:]) > 0


def test_save_load_continue_equals_uninterrupted(tmp_path):
    a, b = check_resume(lambda: make(n=8, learning_rate=5e-3, n_epochs=2, minibatch_size=4, target_kl_ref=1.0,
                                     kl_horizon=50), GRPO, tmp_path)
    assert b.groups.state_dict()["order"] == a.groups.state_dict()["order"]


def test_learns_a_synthetic_task():
    check_learns(GRPO, GRPOConfig(learning_rate=3e-3, beta=0.0, group_size=4, **QUIET))


@pytest.mark.slow
def test_learns_token_count():
    check_learns_token_count(GRPO, GRPOConfig(learning_rate=2e-3, beta=0.0, group_size=8, **QUIET))
