"""PPO's update composed by hand: the advantages it optimizes, its loss terms and weights, value clipping,
gradient-norm clipping and the logged entropy / explained variance."""

from __future__ import annotations

import math

import pytest
import torch

from agent_helpers import char_env, tiny_char
from textgym.agents import PPO, LMActorCritic, PPOConfig
from textgym.agents.functional import compute_gae, kl_penalized_rewards, masked_mean, masked_whiten
from textgym.agents.common.updates import policy_forward

QUIET = dict(progress_bar=False, tensorboard=False)


def make(**cfg):
    env = char_env(8, stop_token_ids=list(range(1, 10)))  # episodes of different lengths
    return PPO(LMActorCritic(*tiny_char()), env, PPOConfig(**{**QUIET, **cfg}))


def trained(**cfg):
    """After one update the policy differs from its reference (KL != 0) and the value head is not ~0."""
    algo = make(learning_rate=1e-2, **cfg)
    algo.learn(iterations=1)
    return algo


def freeze(algo):
    """Learning rate 0: every minibatch sees the rollout's policy (ratio 1, V = the rollout's values)."""
    for g in algo.optimizer.param_groups:
        g["lr"] = 0.0


def gae_by_hand(algo, batch, values=None):
    cfg = algo.config
    rewards, _ = kl_penalized_rewards(batch.rewards, batch.logprobs, batch.ref_logprobs, batch.mask, cfg.kl_coef)
    values = batch.values if values is None else values
    return compute_gae(rewards, values, batch.mask, torch.zeros(batch.mask.shape[0]), cfg.gamma, cfg.lam)


def spy_advantages(algo, monkeypatch):
    seen = []
    real = algo.optimize_minibatch

    def spy(batch, advantages, returns, rows):
        seen.append((advantages.clone(), returns.clone()))
        return real(batch, advantages, returns, rows)

    monkeypatch.setattr(algo, "optimize_minibatch", spy)
    return seen


@pytest.mark.parametrize("whiten", [True, False])
def test_the_optimized_advantages_are_whitened_gae_or_raw_gae(whiten, monkeypatch):
    algo = trained(kl_coef=0.2, gamma=0.9, lam=0.8, whiten_advantages=whiten, minibatch_size=4, n_epochs=2)
    batch = algo.collect_rollouts()
    seen = spy_advantages(algo, monkeypatch)
    algo.update(batch)
    assert len(seen) == 4  # 2 epochs x 2 minibatches, all on the same batch advantages
    adv, ret = gae_by_hand(algo, batch)
    assert float(adv[batch.mask].std()) > 0.05 and float(adv[batch.mask].mean()) != pytest.approx(0.0, abs=1e-3)
    expected = masked_whiten(adv, batch.mask) if whiten else adv
    for got_adv, got_ret in seen:
        torch.testing.assert_close(got_adv, expected)
        torch.testing.assert_close(got_ret, ret)  # value targets are never whitened


def test_loss_at_ratio_one_is_minus_mean_advantage_plus_weighted_value_loss_minus_weighted_entropy():
    vf_coef, ent_coef = 0.37, 0.05
    algo = trained(kl_coef=0.2, gamma=0.9, lam=0.8, whiten_advantages=False, vf_coef=vf_coef, ent_coef=ent_coef,
                   n_epochs=1)
    freeze(algo)
    batch = algo.collect_rollouts()
    m = batch.mask
    metrics = algo.update(batch)
    assert algo.minibatch_log[0]["ratio_max_dev"] < 1e-5

    adv, ret = gae_by_hand(algo, batch)
    policy_loss = -float(masked_mean(adv, m))
    value_loss = 0.5 * float(masked_mean((batch.values - ret) ** 2, m))
    with torch.no_grad():
        logits = policy_forward(algo.collector, batch).processed  # (N, t, V), the sampling distribution
        logp = torch.log_softmax(logits, -1)
        entropy = float(masked_mean(-(logp.exp() * logp).sum(-1), m[:, : logits.shape[1]]))
    assert abs(policy_loss) > 1e-3 and value_loss > 1e-4 and entropy > 1.0  # every term matters
    assert metrics["loss/policy"] == pytest.approx(policy_loss, rel=1e-4, abs=1e-6)
    assert metrics["loss/value"] == pytest.approx(value_loss, rel=1e-4, abs=1e-7)
    assert metrics["stats/entropy"] == pytest.approx(entropy, rel=1e-5)
    total = policy_loss + vf_coef * value_loss - ent_coef * entropy
    assert metrics["loss/total"] == pytest.approx(total, rel=1e-4, abs=1e-6)

    # the logged explained variance: 1 - Var[R - V] / Var[R] over real tokens (biased variances)
    r, v = ret[m], batch.values[m]
    ev = 1.0 - float(((r - v) - (r - v).mean()).pow(2).mean()) / float((r - r.mean()).pow(2).mean())
    assert metrics["stats/explained_variance"] == pytest.approx(ev, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("clip", [0.2, None])
def test_value_loss_is_clipped_around_the_rollout_values(clip):
    """Old values shifted by +1: the new V lies 1 below them, so clipping holds V_clip = V_old - 0.2."""
    algo = trained(kl_coef=0.2, gamma=0.9, lam=0.8, clip_range_value=clip, n_epochs=1)
    freeze(algo)
    batch = algo.collect_rollouts()
    m = batch.mask
    v_new = batch.values  # what the value head gives now (lr 0)
    shifted = batch._replace(values=torch.where(m, batch.values + 1.0, 0.0))
    metrics = algo.update(shifted)
    _, ret = gae_by_hand(algo, shifted)  # targets from the (shifted) rollout values
    err = (v_new - ret) ** 2
    if clip is not None:
        err = torch.maximum(err, (shifted.values - clip - ret) ** 2)
    expected = 0.5 * float(masked_mean(err, m))
    unclipped = 0.5 * float(masked_mean((v_new - ret) ** 2, m))
    assert metrics["loss/value"] == pytest.approx(expected, rel=1e-4)
    if clip is not None:
        assert expected > unclipped * 1.1 and metrics["stats/value_clipfrac"] > 0.5
    else:
        assert metrics["stats/value_clipfrac"] == 0.0


def test_gradient_norm_is_clipped_to_max_grad_norm_before_each_step(monkeypatch):
    algo = trained(max_grad_norm=1e-3, minibatch_size=4, n_epochs=2)
    params = algo.policy.trainable_parameters()
    norms = []
    real_step = algo.optimizer.step

    def spy_step(*args, **kwargs):
        norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))))
        return real_step(*args, **kwargs)

    monkeypatch.setattr(algo.optimizer, "step", spy_step)
    metrics = algo.train_step()
    assert len(norms) == 4 and metrics["stats/optimizer_steps"] == 4
    assert metrics["stats/grad_norm"] > 1e-2  # the logged (pre-clipping) norm: clipping really happened
    for n in norms:
        assert n == pytest.approx(1e-3, rel=1e-3)  # scaled down to max_grad_norm, not beyond


def test_logged_entropy_of_a_uniform_policy_is_log_v():
    algo = make(learning_rate=0.0, ent_coef=0.0, n_epochs=1)
    with torch.no_grad():
        algo.policy.lm.get_output_embeddings().weight.zero_()  # logits 0: uniform over the action space
    metrics = algo.train_step()
    assert metrics["stats/entropy"] == pytest.approx(math.log(algo.policy.action_size), rel=1e-5)
