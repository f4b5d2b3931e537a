"""sb3-contrib's MaskablePPO on textgym envs with allowed_token_ids: MaskableTextGymLMPolicy and sb3-maskable-ppo."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("sb3_contrib")

from sb3_contrib import MaskablePPO  # noqa: E402
from sb3_contrib.common.maskable.utils import get_action_masks  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_checker import check_env  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

import textgym  # noqa: E402,F401  (registers the env ids)
from agent_helpers import char_env  # noqa: E402
from textgym.action_mask import token_ids_of  # noqa: E402
from textgym.agents import (  # noqa: E402
    MaskableTextGymLMPolicy, SB3MaskablePPO, SB3MaskablePPOConfig, TextGymLMPolicy,
)
from textgym.agents.algorithms.registry import get_algorithm, get_config_class  # noqa: E402
from textgym.agents.algorithms.sb3_algos import make_sb3_vec_env  # noqa: E402
from textgym.agents.common.allowed_tokens import AllowedTokensProcessor  # noqa: E402
from textgym.tokenizers import char_tokenizer  # noqa: E402
from textgym.vector_env import TextGenVectorEnv  # noqa: E402

QUIET = dict(progress_bar=False, tensorboard=False)
TOK = char_tokenizer()
EOS = TOK.eos_token_id  # 1
ID = {c: TOK.convert_tokens_to_ids(c) for c in "0123456789ax"}  # tiny-char: '0'..'9' = 3..12, 'a' = 13
SMALL = [EOS, ID["0"], ID["1"]]  # a 3-token vocabulary: [1, 3, 4]
DIGITS = token_ids_of(TOK, "0123456789")


def sort_envs(n, allowed=SMALL):
    return DummyVecEnv([lambda: gym.make("textgym/Sort-v0", allowed_token_ids=allowed)] * n)


def sevens(prompts, completions, **kw):
    """Reward of the masked task: the fraction of '7' in a digits-only answer (random digits: ~0.08)."""
    return np.array([c.count("7") / max(len(c), 1) for c in completions], np.float32)


def sevens_env(n, prompts=("12+", "3*4", "x=", "9-", "5/5"), **kw):
    """The masked task's vector env, reset with seed 0 (evaluate() continues its sample order)."""
    env = TextGenVectorEnv(TOK, [{"prompt": p} for p in prompts], sevens, num_envs=n, max_prompt_length=8,
                           max_new_tokens=4, stop_token_ids=[EOS], allowed_token_ids=DIGITS,
                           autoreset_mode="Disabled", **kw)
    env.reset(seed=0)
    return env


def observations(n=6, seed=0):
    """``n`` observations of Sort-v0 part-way through episodes (different lengths), as torch tensors."""
    env = gym.make("textgym/Sort-v0")
    rows = []
    for i in range(n):
        obs, _ = env.reset(seed=seed + i)
        for t in range(i % 3):
            obs, *_ = env.step(ID[str(t)])
        rows.append(obs)
    return {k: torch.as_tensor(np.stack([r[k] for r in rows])) for k in ("input_ids", "attention_mask")}


def maskable(env, **kw):
    return MaskablePPO(MaskableTextGymLMPolicy, env, policy_kwargs={"model": "tiny-char"}, seed=0, device="cpu",
                       **kw)


# ---------------------------------------------------------------------------------------------- the env side
def test_the_sb3_envs_expose_exactly_the_allowed_ids():
    vec = sort_envs(3)
    masks = get_action_masks(vec)  # sb3-contrib's own look-up (VecEnv.env_method("action_masks"))
    assert masks.shape == (3, 57) and masks.dtype == bool
    assert [np.flatnonzero(m).tolist() for m in masks] == [SMALL] * 3
    # the adapter's SB3 envs inherit the textgym vector env's allowed ids
    sb3_vec = make_sb3_vec_env(sevens_env(2))
    assert [np.flatnonzero(m).tolist() for m in get_action_masks(sb3_vec)] == [DIGITS] * 2
    check_env(gym.make("textgym/Sort-v0", allowed_token_ids=SMALL).unwrapped)  # SB3's own checker


# ---------------------------------------------------------------------------------------------- the policy
def test_maskable_ppo_never_samples_a_masked_token():
    """4 envs x 128 steps = 512 sampled tokens: all in {EOS, '0', '1'}; unmasked, the same policy leaves the set."""
    seen: list[np.ndarray] = []

    class Actions(BaseCallback):
        def _on_step(self):
            seen.append(np.asarray(self.locals["actions"]).ravel())
            return True

    model = maskable(sort_envs(4), n_steps=128, batch_size=128, n_epochs=1, learning_rate=1e-3)
    model.learn(512, callback=Actions())
    acts = np.concatenate(seen)
    assert acts.size == 512 and set(acts.tolist()) == set(SMALL)  # every allowed token, nothing else
    # the rollout buffer holds the masks it sampled with: exactly the allowed ids
    buf_masks = model.rollout_buffer.action_masks.reshape(-1, 57)
    assert (buf_masks == np.isin(np.arange(57), SMALL)[None]).all()
    # the same LM without masks: with 54 of 57 ids outside the set, 64 draws leave it
    obs = observations(8)
    with torch.no_grad():
        free = model.policy.get_distribution(obs).get_actions()
        masked = model.policy.get_distribution(obs, np.tile(np.isin(np.arange(57), SMALL), (8, 1))).get_actions()
    assert set(masked.tolist()) <= set(SMALL)
    unmasked = PPO(TextGymLMPolicy, sort_envs(1, allowed=None), policy_kwargs={"model": "tiny-char"}, seed=0,
                   device="cpu", n_steps=64, batch_size=64)
    draws = np.concatenate([unmasked.predict({k: v.numpy() for k, v in obs.items()})[0] for _ in range(8)])
    assert not set(draws.tolist()) <= set(SMALL) and free.shape == (8,)


def test_masked_probabilities_sum_to_one_over_the_allowed_tokens():
    model = maskable(sort_envs(1), n_steps=8, batch_size=8)
    policy = model.policy
    obs = observations(6)
    mask = np.zeros((6, 57), dtype=bool)
    mask[:, SMALL] = True
    mask[1, ID["9"]] = True  # masks may differ per row
    with torch.no_grad():
        logits, _ = policy.logits_and_values(obs)  # (6, 57) raw LM-head logits
        dist = policy.get_distribution(obs, mask)
    probs = dist.distribution.probs
    assert torch.all(probs[~torch.as_tensor(mask)] == 0)  # exactly 0 off the mask
    torch.testing.assert_close(probs.sum(-1), torch.ones(6), rtol=0, atol=1e-6)
    # hand value: log pi(a) = z_a - log sum_{b allowed} exp(z_b)
    for r in range(6):
        allowed = np.flatnonzero(mask[r])
        z = logits[r, allowed].double()
        expected = (z - torch.logsumexp(z, 0)).float()
        got = torch.stack([dist.log_prob(torch.full((6,), int(a)))[r] for a in allowed])
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
        assert math.isclose(float(torch.exp(expected).sum()), 1.0, abs_tol=1e-6)
    # masked tokens add nothing to the entropy: it is the entropy of the renormalised allowed distribution
    p = torch.softmax(logits.masked_fill(~torch.as_tensor(mask), float("-inf")), -1)
    hand = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
    torch.testing.assert_close(dist.entropy(), hand, rtol=0, atol=1e-5)


def test_an_all_true_mask_gives_text_gym_lm_policy_outputs():
    masked = maskable(sort_envs(1), n_steps=8, batch_size=8).policy
    plain = PPO(TextGymLMPolicy, sort_envs(1, allowed=None), policy_kwargs={"model": "tiny-char"}, seed=0,
                device="cpu", n_steps=8, batch_size=8).policy
    plain.load_state_dict(masked.state_dict())
    obs = observations(6)
    ones = np.ones((6, 57), dtype=bool)
    actions = torch.tensor([3, 4, 1, 12, 13, 40])
    with torch.no_grad():
        lm, vm = masked.logits_and_values(obs)
        lp, vp = plain.logits_and_values(obs)
        torch.testing.assert_close(lm, lp, rtol=0, atol=0)
        torch.testing.assert_close(vm, vp, rtol=0, atol=0)
        for mask in (ones, None):
            v1, logp1, ent1 = masked.evaluate_actions(obs, actions, mask)
            v2, logp2, ent2 = plain.evaluate_actions(obs, actions)
            torch.testing.assert_close(v1, v2, rtol=0, atol=0)
            torch.testing.assert_close(logp1, logp2, rtol=0, atol=1e-6)
            torch.testing.assert_close(ent1, ent2, rtol=0, atol=1e-6)
        torch.testing.assert_close(masked.predict_values(obs), plain.predict_values(obs), rtol=0, atol=0)
        assert torch.equal(masked(obs, deterministic=True, action_masks=ones)[0], plain(obs, deterministic=True)[0])


def test_the_lm_gets_token_ids_not_one_hot_vectors():
    model = maskable(sort_envs(2), n_steps=8, batch_size=16, n_epochs=1)
    seen = []
    model.policy.lm_policy.lm.get_input_embeddings().register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    model.learn(16)
    assert seen and all(x.dtype == torch.int64 and x.ndim == 2 for x in seen)


def test_allowed_tokens_processor_sets_minus_inf_off_the_mask():
    proc = AllowedTokensProcessor(np.array([False, True, False, True]))
    z = torch.tensor([[0.5, 1.0, 2.0, -1.0]])
    out = proc.step(z)
    assert out.tolist() == [[-math.inf, 1.0, -math.inf, -1.0]]
    # softmax over the kept: e^1 / (e^1 + e^-1) = 0.8808
    assert torch.softmax(out, -1)[0, 1].item() == pytest.approx(math.e / (math.e + 1 / math.e), abs=1e-6)
    assert proc.sequence(z[None], None, None, None).shape == (1, 1, 4)
    with pytest.raises(ValueError, match="allows no token|with a True entry"):
        AllowedTokensProcessor(np.zeros(4, dtype=bool))


# ---------------------------------------------------------------------------------------------- the adapter
def test_registry_name_and_config():
    assert get_algorithm("sb3-maskable-ppo") is SB3MaskablePPO
    assert get_config_class("SB3-Maskable-PPO") is SB3MaskablePPOConfig


def test_adapter_learns_evaluates_predicts_and_round_trips_within_the_mask(tmp_path):
    cfg = SB3MaskablePPOConfig(learning_rate=1e-2, n_steps=8, batch_size=16, n_epochs=1, **QUIET)
    algo = SB3MaskablePPO("tiny-char", sevens_env(4), cfg)
    assert isinstance(algo.model, MaskablePPO) and isinstance(algo.policy, MaskableTextGymLMPolicy)
    start = algo.evaluate(sevens_env(8), n_episodes=16, seed=3)
    assert start["kl_ref"] == pytest.approx(0.0, abs=1e-6)  # still the reference (renormalised over the mask)
    algo.learn(iterations=2)
    assert algo.num_timesteps == 64 and algo.iteration == 2
    env = sevens_env(8)
    ev = algo.evaluate(env, n_episodes=16, seed=3)
    assert 0.0 <= ev["score_mean"] <= 1.0  # the penalty (-1) never paid: no disallowed token
    obs, _ = sevens_env(5).reset(seed=0)
    for _ in range(20):
        actions, _ = algo.predict(obs)
        assert set(actions.tolist()) <= set(DIGITS)
    algo.save(tmp_path / "ckpt")
    loaded = SB3MaskablePPO.load(tmp_path / "ckpt", sevens_env(4))
    assert isinstance(loaded.model, MaskablePPO) and loaded.iteration == 2
    for p, q in zip(algo.policy.state_dict().values(), loaded.policy.state_dict().values()):
        assert torch.equal(p, q)
    assert loaded.evaluate(sevens_env(8), n_episodes=16, seed=3) == algo.evaluate(sevens_env(8), n_episodes=16, seed=3)


def test_the_collector_draws_only_allowed_tokens_in_evaluation():
    from textgym.agents.common.rollout import RolloutCollector

    algo = SB3MaskablePPO("tiny-char", sevens_env(2), SB3MaskablePPOConfig(n_steps=4, batch_size=8, **QUIET))
    env = sevens_env(16)
    batch = RolloutCollector(algo.policy.lm_policy, env, logits_processor=AllowedTokensProcessor(env.allowed_tokens),
                             seed=0).collect()
    assert set(batch.actions[batch.mask].tolist()) <= set(DIGITS) and torch.isfinite(batch.logprobs).all()


def held_out_eval(algo, n=64):
    ev = algo.evaluate(sevens_env(16, prompts=("7+7", "a=", "44", "1*9", "zz=")), n_episodes=n, seed=11)
    half = 1.96 * ev["score_std"] / math.sqrt(n)
    return ev["score_mean"], half


def test_maskable_ppo_learns_the_masked_task():
    """Digits-only answers, reward = fraction of '7' (random masked policy ~0.08): >= 0.6 within 20 iterations.

    Held-out prompts: the final score lies above the start's 95 % confidence interval.  Seeds 0-2 reach
    0.6 in 4-6 iterations (~7 s on one CPU thread); held-out 0.13-0.14 (+-0.06) -> 0.76-0.90.
    """
    algo = SB3MaskablePPO("tiny-char", sevens_env(16),
                          SB3MaskablePPOConfig(learning_rate=3e-3, n_steps=16, batch_size=64, n_epochs=4, **QUIET))
    start, start_half = held_out_eval(algo)
    scores = []
    algo.learn(iterations=20, callback=lambda a, m: scores.append(m["reward/score"]) or m["reward/score"] < 0.6)
    end, _ = held_out_eval(algo)
    assert scores[0] < 0.2 and scores[-1] >= 0.6, scores
    assert start < 0.2 and end > start + start_half, (start, start_half, end)
