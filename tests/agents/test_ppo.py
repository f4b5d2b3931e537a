"""PPO: ratio 1 before any update, gradient accumulation, safety, LoRA, logging, exact resume, learning."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from agent_helpers import char_env, char_gpt2, tiny_char
from algo_helpers import check_learns, check_learns_token_count
from textgym.agents import PPO, LMActorCritic, PPOConfig
from textgym.agents.functional import compute_gae, kl_penalized_rewards, masked_whiten

QUIET = dict(progress_bar=False, tensorboard=False)


def make(policy=None, n=8, **cfg):
    if policy is None:
        policy = LMActorCritic(*tiny_char())
    return PPO(policy, char_env(n, stop_token_ids=list(range(1, 10))), PPOConfig(**{**QUIET, **cfg}))


def params_of(algo):
    return [p.detach().clone() for p in algo.policy.trainable_parameters()]


def test_first_minibatch_ratio_is_one_even_with_dropout_in_the_model():
    model, tok = char_gpt2(dropout=0.3)
    algo = make(LMActorCritic(model, tok), n=8, learning_rate=0.0, minibatch_size=4, micro_batch_size=2, n_epochs=2)
    metrics = algo.train_step()
    first = algo.minibatch_log[0]
    assert first["ratio_max_dev"] < 1e-5  # ratio = 1 on every real token
    assert first["clipfrac"] == 0.0
    assert abs(first["approx_kl"]) < 1e-9
    assert metrics["stats/clipfrac"] == 0.0 and abs(metrics["stats/approx_kl"]) < 1e-9  # lr 0: every minibatch


def _grads(algo, batch, adv, ret, rows, micro):
    algo.optimizer.zero_grad(set_to_none=True)
    n_tok = batch.mask[rows].sum()
    total = 0.0
    for chunk in rows.split(micro):
        loss, _ = algo.compute_loss(batch.index(chunk), adv[chunk], ret[chunk], n_tok)
        loss.backward()
        total += float(loss)
    grads = [p.grad.clone() for p in algo.policy.trainable_parameters()]
    algo.optimizer.zero_grad(set_to_none=True)
    return total, grads


def test_gradient_accumulation_equals_the_full_batch_loss_and_gradients():
    algo = make(n=8, ent_coef=0.01)
    batch = algo.collect_rollouts()
    assert len(set(batch.lengths.tolist())) > 1  # rows of different lengths: token-mean, not row-mean
    rewards, _ = kl_penalized_rewards(batch.rewards, batch.logprobs, batch.ref_logprobs, batch.mask, 0.05)
    adv, ret = compute_gae(rewards, batch.values, batch.mask, batch.bootstrap_values, 1.0, 0.95)
    adv = masked_whiten(adv, batch.mask)
    rows = torch.arange(8)
    full_loss, full_grads = _grads(algo, batch, adv, ret, rows, 8)
    for micro in (1, 3):
        loss, grads = _grads(algo, batch, adv, ret, rows, micro)
        assert loss == pytest.approx(full_loss, abs=1e-6)
        for g, f in zip(grads, full_grads):
            torch.testing.assert_close(g, f, atol=1e-6, rtol=1e-4)


def test_non_finite_loss_skips_the_step_and_leaves_weights_alone():
    algo = make(n=4)
    batch = algo.collect_rollouts()
    batch = batch._replace(rewards=torch.where(batch.mask, float("nan"), 0.0))
    before = params_of(algo)
    metrics = algo.update(batch)
    assert metrics["stats/skipped_steps"] == algo.config.n_epochs and metrics["stats/optimizer_steps"] == 0
    for p, q in zip(before, algo.policy.trainable_parameters()):
        assert torch.equal(p, q)
    assert not algo.optimizer.state  # no Adam moments either


def test_one_update_changes_the_parameters_and_logs_every_metric(tmp_path):
    algo = make(n=8, learning_rate=1e-3, run_dir=str(tmp_path / "run"), tensorboard=True, log_samples=2)
    before = params_of(algo)
    algo.learn(iterations=1)
    assert any(not torch.equal(p, q) for p, q in zip(before, algo.policy.trainable_parameters()))
    names = ["stats/approx_kl", "stats/clipfrac", "stats/kl_ref", "stats/kl_ref_estimator", "stats/entropy",
             "reward/score", "reward/total", "loss/policy", "loss/value", "stats/kl_coef", "time/rollout",
             "time/update"]
    row = algo.logger.history[-1]
    assert all(k in row for k in names) and row["stats/kl_ref_estimator"] == "k1"
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and all(k in rows[0] for k in names)
    assert list((tmp_path / "run" / "tb").iterdir())
    assert (tmp_path / "run" / "samples.jsonl").read_text().count("\n") == 2
    assert (tmp_path / "run" / "config.json").is_file()
    algo.close()


def test_kl_and_score_land_only_on_real_tokens_of_a_rollout():
    algo = make(n=8, kl_coef=0.3, learning_rate=1e-2)
    algo.learn(iterations=1)  # the policy now differs from the reference: KL != 0
    b = algo.collect_rollouts()
    rewards, kl = kl_penalized_rewards(b.rewards, b.logprobs, b.ref_logprobs, b.mask, 0.3)
    assert (rewards[~b.mask] == 0).all() and (kl[~b.mask] == 0).all()
    assert (kl[b.mask] != 0).any()
    assert (b.lengths < b.mask.shape[1]).any()  # some rows finished early
    for i in range(8):
        last = int(b.lengths[i]) - 1
        assert float(rewards[i, last]) == pytest.approx(float(b.scores[i]) - 0.3 * float(kl[i, last]), abs=1e-6)
        torch.testing.assert_close(rewards[i, :last], -0.3 * kl[i, :last])


@pytest.mark.parametrize("kind", ["k1", "k2", "abs", "k3"])
def test_logged_kl_is_the_applied_one(kind):
    algo = make(n=4, kl_estimator=kind, kl_coef=0.5, learning_rate=1e-2)
    algo.learn(iterations=1)  # now the policy differs from the reference
    batch = algo.collect_rollouts()
    metrics = algo.update(batch)
    from textgym.agents.functional import kl_estimate

    kl = kl_estimate(batch.logprobs, batch.ref_logprobs, kind)[batch.mask]
    per_episode = torch.zeros(4).index_add_(0, torch.nonzero(batch.mask)[:, 0], kl)
    assert metrics["stats/kl_ref"] == pytest.approx(float(per_episode.mean()), rel=1e-5, abs=1e-7)
    total = float((batch.rewards.sum(1) - 0.5 * per_episode).mean())
    assert metrics["reward/total"] == pytest.approx(total, rel=1e-5, abs=1e-6)
    assert metrics["stats/kl_ref_estimator"] == kind


def test_adaptive_kl_coefficient_and_early_stop():
    algo = make(n=8, kl_coef=0.1, target_kl_ref=1e-6, kl_horizon=100, learning_rate=1e-2, target_kl=1e-9,
                kl_estimator="k3", minibatch_size=2, n_epochs=4)  # k3 >= 0: no negative KL from noise
    m1 = algo.train_step()
    assert m1["stats/early_stopped"] == 1.0 and m1["stats/optimizer_steps"] < 16
    assert m1["stats/kl_ref"] == 0.0  # policy == reference: KL below the target
    m2 = algo.train_step()
    assert m2["stats/kl_coef"] < m1["stats/kl_coef"]  # so beta went down
    assert m2["stats/kl_ref"] > 1e-6
    m3 = algo.train_step()
    assert m3["stats/kl_coef"] > m2["stats/kl_coef"]  # KL above the tiny target: beta goes up


def test_lora_base_untouched_and_kl_exactly_zero_before_the_first_update():
    model, tok = tiny_char()
    policy = LMActorCritic(model, tok, lora={"r": 4, "lora_alpha": 8})
    algo = make(policy, n=8, learning_rate=1e-2)
    base = {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_" not in n}
    batch = algo.collect_rollouts()
    assert torch.equal(batch.logprobs, batch.ref_logprobs)
    metrics = algo.update(batch)
    assert metrics["stats/kl_ref"] == 0.0
    for n, p in policy.model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base[n]), n
    assert any(float(p.abs().sum()) > 0 for n, p in policy.model.named_parameters() if "lora_B" in n)
    batch = algo.collect_rollouts()
    assert not torch.equal(batch.logprobs, batch.ref_logprobs)  # the adapter moved; the reference did not


def _resume_case(lora, tmp_path):
    def build():
        if lora:  # a model object: the checkpoint stores the base weights too
            return LMActorCritic(*tiny_char(), lora={"r": 4, "lora_alpha": 8})
        return "tiny-char"  # a name: the checkpoint rebuilds the reference from it

    cfg = dict(n=8, learning_rate=5e-3, minibatch_size=4, n_epochs=2, target_kl_ref=1.0, kl_horizon=50)
    a = make(build(), **cfg)
    a.learn(iterations=1)
    a.save(tmp_path / "ckpt")
    m_a = a.train_step()
    p_a = params_of(a)
    b = PPO.load(tmp_path / "ckpt", char_env(8, stop_token_ids=list(range(1, 10))))
    assert b.iteration == 1
    m_b = b.train_step()
    for k, v in m_a.items():
        if not k.startswith("time/") and isinstance(v, float) and not math.isnan(v):
            assert m_b[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    for p, q in zip(p_a, params_of(b)):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    assert b.kl_ctl.kl_coef == a.kl_ctl.kl_coef


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_save_load_continue_equals_uninterrupted(lora, tmp_path):
    _resume_case(lora, tmp_path)


def test_save_is_atomic_and_policy_dir_is_a_hf_model(tmp_path):
    algo = make(n=4)
    algo.save(tmp_path / "ckpt")
    algo.save(tmp_path / "ckpt")  # overwriting works
    assert (tmp_path / "ckpt" / "policy" / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt" / "policy")


def test_evaluate_generate_predict():
    algo = make(n=4)
    paid = []  # every score the eval env's reward paid (two batches of 4 episodes)

    def length(prompts, completions, **kw):  # varies from episode to episode (many stop tokens)
        paid.extend(len(c) / 10 for c in completions)
        return np.array(paid[len(paid) - len(completions):], np.float32)

    ev = algo.evaluate(char_env(4, stop_token_ids=list(range(1, 10)), reward=length), n_episodes=8)
    assert ev["n_episodes"] == 8 and len(paid) == 8 and len(set(paid)) > 1 and ev["kl_ref"] == 0.0
    assert ev["score_mean"] == pytest.approx(float(np.mean(paid)), abs=1e-6)
    texts = algo.generate(["ab", "hello world"], max_new_tokens=5)
    assert len(texts) == 2 and all(isinstance(t, str) and len(t) <= 5 for t in texts)
    assert algo.generate(["ab"], greedy=True) == algo.generate(["ab"], greedy=True)
    obs, _ = char_env(3).reset(seed=0)
    actions, _ = algo.predict(obs, deterministic=True)
    assert actions.shape == (3,) and actions.dtype == np.int64


def test_learn_counts_timesteps_and_stops_on_callback():
    algo = make(n=4)
    tokens = []  # generated tokens per iteration: 4 episodes x their mean length
    algo.learn(total_timesteps=10, callback=lambda a, m: tokens.append(round(4 * m["stats/episode_length"])))
    assert sum(tokens[:-1]) < 10 <= sum(tokens)  # stops after the iteration that reaches 10 tokens
    assert algo.num_timesteps == sum(tokens) == algo.logger.history[-1]["train/timesteps"]
    it = algo.iteration
    algo.learn(iterations=5, callback=lambda a, m: False)
    assert algo.iteration == it + 1
    with pytest.raises(ValueError, match="exactly one"):
        algo.learn()


def test_learns_a_synthetic_task():
    """Reward = fraction of "a" in the completion (random policy ~0.02): a 3-update mean >= 0.6 within 30 updates."""
    check_learns(PPO, PPOConfig(learning_rate=3e-3, kl_coef=0.0, minibatch_size=16, **QUIET), target=0.6,
                 iterations=30)


@pytest.mark.slow
def test_learns_token_count():
    """textgym/TokenCount-v0 (random policy ~0.12): mean score >= 0.35 over 10 updates within 80 updates."""
    check_learns_token_count(PPO, PPOConfig(learning_rate=2e-3, kl_coef=0.0, minibatch_size=16, n_epochs=2, **QUIET),
                             target=0.35)


@pytest.mark.parametrize("bootstrap_truncated", [False, True])
def test_truncated_episodes_are_bootstrapped_only_when_configured(bootstrap_truncated, monkeypatch):
    """textgym envs pay the score on the truncating step, so by default GAE gets no V(s_T) there."""
    import textgym.agents.algorithms.ppo as ppo_module

    seen = {}
    real_gae = ppo_module.compute_gae

    def spy(rewards, values, mask, bootstrap, gamma, lam):
        seen["bootstrap"] = bootstrap.clone()
        return real_gae(rewards, values, mask, bootstrap, gamma, lam)

    monkeypatch.setattr(ppo_module, "compute_gae", spy)
    policy = LMActorCritic(*tiny_char())
    env = char_env(4, stop_token_ids=[0])  # only <pad> stops: random episodes nearly always truncate
    algo = PPO(policy, env, PPOConfig(**QUIET, bootstrap_truncated=bootstrap_truncated, learning_rate=0.0))
    batch = algo.collect_rollouts()
    assert bool(batch.truncated.any())
    algo.update(batch)
    trunc = batch.truncated
    expected = torch.where(trunc, batch.bootstrap_values, 0.0) if bootstrap_truncated else torch.zeros(len(trunc))
    torch.testing.assert_close(seen["bootstrap"], expected)
    if bootstrap_truncated:
        assert bool((batch.bootstrap_values[trunc] != 0).all())  # the value head's V(s_T) was really used
