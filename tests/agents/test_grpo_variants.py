"""Dr. GRPO, DAPO, GSPO (GRPO's options and their registered presets): advantages, clips, dynamic sampling,
overlong shaping, the sequence-level ratio, learning."""

from __future__ import annotations

import math

import pytest
import torch

from agent_helpers import tiny_char
from algo_helpers import QUIET, check_learns_token_count, stop_env
from textgym.agents import DAPO, GSPO, DAPOConfig, DrGRPO, DrGRPOConfig, GRPOConfig, GSPOConfig, LMActorCritic
from textgym.agents.algorithms.registry import get_algorithm
from textgym.agents.common.groups import refill_informative_groups
from textgym.agents.common.rollout import RolloutBatch
from textgym.agents.functional import clipped_policy_loss, group_advantages, kl_estimate, overlong_penalty


def test_registered_names_and_presets():
    assert get_algorithm("dr-grpo") is DrGRPO and get_algorithm("DAPO") is DAPO and get_algorithm("gspo") is GSPO
    dr, dapo, gspo = DrGRPOConfig(), DAPOConfig(), GSPOConfig()
    assert (dr.scale_rewards, dr.loss_aggregation) == (False, "constant")
    assert (dapo.clip_bounds, dapo.dynamic_sampling, dapo.loss_aggregation, dapo.beta) == ((0.2, 0.28), True, "token", 0)
    assert (gspo.importance_sampling_level, gspo.clip_bounds) == ("sequence", (3e-4, 4e-4))
    assert GRPOConfig(clip_range=0.1).clip_bounds == (0.1, 0.1)  # GRPO itself: unchanged
    for bad in [dict(clip_range_high=0.0), dict(max_extra_rollouts=-1), dict(overlong_buffer=0),
                dict(loss_aggregation="mean"), dict(importance_sampling_level="word"), dict(overlong_penalty=-1.0)]:
        with pytest.raises(ValueError):
            GRPOConfig(**bad)


def test_dr_grpo_advantages_are_group_centred_without_the_std():
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.5, 0.5, 0.5, 0.5])
    torch.testing.assert_close(group_advantages(rewards, 4, scale=False),
                               torch.tensor([-2.0, -1.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]))
    std = math.sqrt((4 + 1 + 0 + 9) / 3)  # GRPO's, for contrast
    assert float(group_advantages(rewards, 4)[3]) == pytest.approx(3.0 / (std + 1e-4))


def test_dr_grpo_loss_divides_token_sums_by_completions_times_the_budget():
    algo = DrGRPO(LMActorCritic(*tiny_char()), stop_env(8), DrGRPOConfig(group_size=4, learning_rate=0.0,
                                                                       rescore_policy=True, **QUIET))
    batch = algo.collect_rollouts()
    seen = {}
    real = algo.optimize_minibatch
    algo.optimize_minibatch = lambda b, a, w, beta, rows: seen.update(w=w.clone()) or real(b, a, w, beta, rows)
    algo.update(batch)
    assert torch.equal(seen["w"], batch.mask.float())  # every token weighs 1, whatever the completion's length
    t_budget = batch.mask.shape[1]
    adv = torch.where(batch.mask, torch.linspace(-1.0, 1.0, 8)[:, None], 0.0)
    loss, _ = algo.compute_loss(batch, adv, batch.mask.float(), 0.04, 8.0 * t_budget)
    k3 = torch.where(batch.mask, kl_estimate(batch.logprobs, batch.ref_logprobs, "k3"), 0.0)
    expected = float((torch.where(batch.mask, -adv, 0.0).sum() + 0.04 * k3.sum()) / (8 * t_budget))
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_dapo_clip_higher_on_given_ratios():
    ratios = torch.tensor([[0.7, 0.9, 1.25, 1.35]])
    adv = torch.tensor([[-1.0, 1.0, 1.0, 1.0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    logp = ratios.log().requires_grad_()
    loss, sums = clipped_policy_loss(logp, torch.zeros(1, 4), adv, mask, (0.2, 0.28), 4.0)
    # per token -min(r A, clip(r, 0.8, 1.28) A): 0.8 (r=0.7 clipped up, A<0), -0.9, -1.25 (inside 1.28), -1.28
    assert float(loss.detach()) == pytest.approx((0.8 - 0.9 - 1.25 - 1.28) / 4)
    assert float(sums["clipfrac"]) == 2.0  # 0.7 < 0.8 and 1.35 > 1.28
    loss.backward()
    # d/dlogp of -r A / 4 where unclipped (r = e^logp); 0 where the clip is active
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.9 / 4, -1.25 / 4, 0.0]]))
    sym, sym_sums = clipped_policy_loss(ratios.log(), torch.zeros(1, 4), adv, mask, 0.2, 4.0)
    assert float(sym) == pytest.approx((0.8 - 0.9 - 1.2 - 1.2) / 4) and float(sym_sums["clipfrac"]) == 3.0


def _fake_batch(rewards, marker, k_tokens=3):
    """A RolloutBatch of len(rewards) rows of ``k_tokens`` tokens; row i's prompt token is marker + i."""
    n = len(rewards)
    r = torch.zeros(n, k_tokens)
    r[:, -1] = torch.tensor(rewards)
    ids = torch.cat([marker + torch.arange(n)[:, None], torch.ones(n, k_tokens, dtype=torch.long)], 1)
    z = torch.zeros(n, k_tokens)
    return RolloutBatch(ids, torch.ones_like(ids), torch.ones(n, k_tokens, dtype=torch.long), z, z, z,
                        torch.ones(n, k_tokens, dtype=torch.bool), r, torch.tensor(rewards), torch.ones(n, dtype=torch.bool),
                        torch.zeros(n, dtype=torch.bool), torch.zeros(n))


def test_dynamic_sampling_drops_an_all_equal_group_and_refills():
    first = _fake_batch([1.0, 1.0, 0.0, 1.0], marker=100)  # group 0 all equal, group 1 informative
    more = [_fake_batch([2.0, 2.0, 1.0, 0.0], marker=200)]  # group 0 all equal, group 1 informative
    returns = lambda b: b.rewards.sum(-1)
    out, stats = refill_informative_groups(first, lambda: more.pop(), returns, 2, max_extra_rollouts=3)
    assert out.input_ids[:, 0].tolist() == [102, 103, 202, 203]  # the two informative groups, in order
    assert stats == {"stats/dropped_groups": 2.0, "stats/extra_rollouts": 1.0, "stats/discarded_tokens": 12.0}
    # no extra rollout allowed: the batch keeps its size with the all-equal group after the informative one
    out, stats = refill_informative_groups(first, lambda: pytest.fail("must not collect"), returns, 2, 0)
    assert out.input_ids[:, 0].tolist() == [102, 103, 100, 101]
    assert stats == {"stats/dropped_groups": 0.0, "stats/extra_rollouts": 0.0, "stats/discarded_tokens": 0.0}


def test_dapo_update_logs_dynamic_sampling_and_counts_the_dropped_tokens():
    algo = DAPO(LMActorCritic(*tiny_char()), stop_env(8), DAPOConfig(group_size=4, learning_rate=1e-3, **QUIET))
    m = algo.train_step()
    assert algo.collector.rescore_policy is False  # one epoch, one minibatch: the ratio is 1 by construction
    assert m["train/episodes"] == 8  # the batch keeps its size
    assert m["stats/extra_rollouts"] <= 4 and (m["stats/dropped_groups"] > 0) == (m["stats/discarded_tokens"] > 0)
    # every generated token counts in the budget: the batch's and the left-out groups'
    assert m["train/timesteps"] == pytest.approx(8 * m["stats/episode_length"] + m["stats/discarded_tokens"])


def test_overlong_penalty_values():
    lengths = torch.tensor([10, 12, 13, 14, 15, 16])
    # budget 16, buffer 4: 0 up to 12 tokens, then -(L - 12) / 4
    torch.testing.assert_close(overlong_penalty(lengths, 16, 4), torch.tensor([0.0, 0.0, -0.25, -0.5, -0.75, -1.0]))
    torch.testing.assert_close(overlong_penalty(lengths, 16, 4, factor=0.5)[-1], torch.tensor(-0.5))
    for bad in (0, 17):
        with pytest.raises(ValueError, match="overlong buffer"):
            overlong_penalty(lengths, 16, bad)


def test_overlong_penalty_is_added_to_the_returns():
    algo = DAPO(LMActorCritic(*tiny_char()), stop_env(8),
                DAPOConfig(group_size=4, overlong_buffer=2, overlong_penalty=0.5, **QUIET))
    batch = algo.collect_rollouts()
    t = batch.mask.shape[1]
    over = (batch.lengths.float() - (t - 2)).clamp(min=0) / 2
    torch.testing.assert_close(algo.completion_returns(batch), batch.rewards.sum(-1) - 0.5 * over)


def test_an_overlong_buffer_beyond_the_budget_is_refused_before_any_work():
    env = stop_env(8)
    with pytest.raises(ValueError, match=r"overlong_buffer \(99\) is longer than the env's max_new_tokens"):
        DAPO(LMActorCritic(*tiny_char()), env, DAPOConfig(group_size=4, overlong_buffer=99, **QUIET))


def _gspo(**cfg):
    return GSPO(LMActorCritic(*tiny_char()), stop_env(8),
                GSPOConfig(group_size=4, beta=0.0, rescore_policy=True, **{**QUIET, **cfg}))


@pytest.mark.parametrize("clip", [None, 0.01])
def test_gspo_ratio_is_exp_of_the_mean_token_log_ratio_clipped_per_sequence(clip):
    algo = _gspo(clip_range_low=clip, clip_range_high=clip, clip_range=None)
    batch = algo.collect_rollouts()
    steps = torch.arange(batch.mask.shape[1], dtype=torch.float32)
    shift = torch.where(batch.mask, 0.1 * steps - 0.2, 0.0)  # old logp = logp + shift: token ratios exp(-shift)
    old = batch._replace(logprobs=batch.logprobs + shift)
    a = torch.linspace(-1.0, 1.0, 8)
    adv = torch.where(batch.mask, a[:, None], 0.0)
    weights = torch.where(batch.mask, 1.0 / batch.lengths[:, None].float(), 0.0)
    loss, sums = algo.compute_loss(old, adv, weights, 0.0, 8.0)
    s = torch.exp(-(shift.sum(-1) / batch.lengths))  # exp(mean_t log-ratio), one per completion
    lo, hi = (1.0 - clip, 1.0 + clip) if clip else (-math.inf, math.inf)
    expected = -torch.minimum(s * a, s.clamp(lo, hi) * a).mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    assert sums["clipfrac"] == pytest.approx(float(((s < lo) | (s > hi)).sum()))
    if clip:
        assert sums["clipfrac"] > 0  # the clip was exercised
    else:  # the token-level ratio (GRPO) gives another loss on the same batch
        algo.config.importance_sampling_level = "token"
        token_loss, _ = algo.compute_loss(old, adv, weights, 0.0, 8.0)
        assert abs(float(token_loss.detach()) - float(loss.detach())) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dr-grpo", "dapo", "gspo"])
def test_learns_token_count(name):
    cls = get_algorithm(name)
    # training stops as soon as the 10-update mean reaches 0.25, so the evaluation sits at the target: a CI run of
    # DAPO evaluated 0.198 there. As for A2C, the margin is 0.08 (0.17 is 2 standard errors above random's ~0.12).
    check_learns_token_count(cls, cls.config_class(learning_rate=2e-3, beta=0.0, group_size=8, **QUIET),
                             eval_margin=0.08)
