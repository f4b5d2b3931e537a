"""Rollouts: batch layout, masks, score placement, cached decoding, stored logprobs == recomputed ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_helpers import char_env, tiny_char
from textgym.agents import LMActorCritic, RolloutCollector, SamplingParams
from textgym.agents.common.rollout import trim_to_content
from textgym.agents.common.sampling import logprobs_of, process_logits

STOPS = list(range(1, 16))  # EOS (1) and 14 more stop tokens: a mix of early and late ends


def collector(sampling=None, n=8, stops=STOPS, t=6, seed=0, rescore=True):
    model, tok = tiny_char(seed)
    env = char_env(n, max_new_tokens=t, stop_token_ids=stops)
    return RolloutCollector(LMActorCritic(model, tok), env, sampling or SamplingParams(), seed=seed,
                            rescore_policy=rescore)


@pytest.mark.parametrize("rescore", [True, False], ids=["rescore", "generation-time"])
def test_batch_layout_masks_and_score_placement(rescore):
    col = collector(n=16, rescore=rescore)
    b = col.collect(seed=0)
    n, t, p = 16, 6, 8
    assert b.input_ids.shape == b.attention_mask.shape == (n, p + t) and b.input_ids.dtype == torch.int64
    for f in (b.actions, b.logprobs, b.ref_logprobs, b.values, b.mask, b.rewards):
        assert f.shape == (n, t)
    for f in (b.scores, b.terminated, b.truncated, b.bootstrap_values):
        assert f.shape == (n,)
    assert b.prompt_length == p
    lengths = b.lengths
    assert b.terminated.any() and b.truncated.any() and (lengths < t).any()  # the test covers both ends
    assert torch.equal(b.terminated | b.truncated, torch.ones(n, dtype=torch.bool))
    for i in range(n):
        L = int(lengths[i])
        assert b.mask[i, :L].all() and not b.mask[i, L:].any()  # real tokens are a prefix
        assert (b.actions[i, L:] == col.pad_id).all()  # finished rows produce nothing after their end
        assert (b.logprobs[i, L:] == 0).all() and (b.values[i, L:] == 0).all() and (b.rewards[i, L:] == 0).all()
        assert (b.attention_mask[i, p + L:] == 0).all() and (b.attention_mask[i, p:p + L] == 1).all()
        assert torch.equal(b.input_ids[i, p:p + L], b.actions[i, :L])
        # the score lands on the last real token (the stop token when terminated), nothing elsewhere
        assert b.rewards[i, L - 1] == pytest.approx(float(b.scores[i]))
        assert (b.rewards[i, : L - 1] == 0).all()
        if b.terminated[i]:
            assert int(b.actions[i, L - 1]) in STOPS and b.bootstrap_values[i] == 0
        else:
            assert L == t and not any(int(a) in STOPS for a in b.actions[i, :L])
    assert (b.bootstrap_values[b.truncated] != 0).all()


@pytest.mark.parametrize("rescore", [True, False], ids=["rescore", "generation-time"])
def test_truncated_bootstrap_is_the_value_after_the_last_token(rescore):
    col = collector(n=4, stops=[1], rescore=rescore)
    b = col.collect(seed=0)
    i = int(torch.nonzero(b.truncated)[0])
    with torch.no_grad():  # V(s_T): value at the position of the last token, i.e. after it
        full = col.policy.next_token_logits(b.input_ids[i : i + 1], b.attention_mask[i : i + 1])
    assert float(b.bootstrap_values[i]) == pytest.approx(float(full.values[0]), abs=1e-5)


@pytest.mark.parametrize(
    "sampling",
    [SamplingParams(), SamplingParams(temperature=0.6), SamplingParams(temperature=1.3, top_k=8),
     SamplingParams(temperature=0.8, top_p=0.7), SamplingParams(top_k=20, top_p=0.9)],
    ids=["t1", "t0.6", "t1.3-k8", "t0.8-p0.7", "k20-p0.9"],
)
@pytest.mark.parametrize("rescore", [True, False], ids=["rescore", "generation-time"])
def test_stored_logprobs_equal_recomputed_ones(sampling, rescore):
    col = collector(sampling, n=8, rescore=rescore)
    b = col.collect(seed=1)
    # the generation-time logprobs (cached, incremental) agree with the scoring pass
    assert col.last_logprob_mismatch < 1e-4
    # recompute as the update does, one row at a time (other padding, other batch shape)
    for i in range(8):
        row = b.index(slice(i, i + 1))
        ids, am, t = trim_to_content(row.input_ids, row.attention_mask, row.mask)
        with torch.no_grad():
            logits = col.policy.score(ids, am, t).logits
        lp = logprobs_of(process_logits(logits, sampling), row.actions[:, :t])
        m = row.mask[:, :t]
        torch.testing.assert_close(lp[m], row.logprobs[:, :t][m], atol=1e-5, rtol=0)
    if sampling.truncates:  # the stored logprobs are those of the truncated distribution, not the raw one
        ids, am, t = trim_to_content(b.input_ids, b.attention_mask, b.mask)
        with torch.no_grad():
            raw = torch.log_softmax(col.policy.score(ids, am, t).logits / sampling.temperature, -1)
        raw_lp = raw.gather(-1, b.actions[:, :t, None]).squeeze(-1)
        assert (b.logprobs[:, :t][b.mask[:, :t]] > raw_lp[b.mask[:, :t]] + 1e-4).all()


def test_kl_to_reference_is_exactly_zero_before_training_even_with_top_k():
    col = collector(SamplingParams(temperature=0.7, top_k=10, top_p=0.9), n=8)
    b = col.collect(seed=0)
    assert torch.equal(b.logprobs, b.ref_logprobs)
    assert torch.isfinite(b.ref_logprobs).all()


def test_generation_time_logprobs_give_kl_within_float_noise():
    b = collector(n=8, rescore=False).collect(seed=0)
    assert (b.logprobs - b.ref_logprobs).abs().max() < 1e-5


def test_one_incremental_forward_per_generated_token():
    col = collector(n=4, stops=[1], t=7)
    lengths = []
    for lm in (col.policy.lm, col.policy.ref_model):
        lm.register_forward_pre_hook(lambda m, a, kw: lengths.append(kw["input_ids"].shape[1]), with_kwargs=True)
    b = col.collect(seed=0)
    steps = int(b.lengths.max())
    # prefill (P = 8 prompt slots) + one 1-token forward per step after the first + the scoring passes
    assert lengths[0] == 8
    assert lengths[1:steps] == [1] * (steps - 1)
    assert all(n > 1 for n in lengths[steps:])  # scoring: full sequences, batched (policy + reference)
    assert len(lengths) == steps + 2


def test_env_is_the_source_of_truth_for_episode_ends():
    col = collector(n=8, stops=STOPS)
    b = col.collect(seed=2)
    env = col.env
    assert env.finished.all()
    assert np.array_equal(env.num_generated, b.lengths.numpy())


def test_collector_checks_the_env():
    from textgym import TextGenVectorEnv
    from textgym.tokenizers import char_tokenizer

    model, tok = tiny_char()
    policy = LMActorCritic(model, tok)
    auto = TextGenVectorEnv(char_tokenizer(), [{"prompt": "a"}], lambda p, c: 0.0, num_envs=2)
    with pytest.raises(ValueError, match="Disabled"):
        RolloutCollector(policy, auto)
    with pytest.raises(TypeError, match="TextGenVectorEnv"):
        RolloutCollector(policy, object())
    small = LMActorCritic(model, tok, action_size=40)
    with pytest.raises(ValueError, match="action space"):
        RolloutCollector(small, char_env(2))


def test_sampling_params_validation():
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    z = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    kept = torch.isfinite(process_logits(z, SamplingParams(top_k=2)))
    assert kept.tolist() == [[True, True, False, False]]
    # softmax([3,2,1,0]) = .644 .237 .087 .032: top_p 0.8 keeps the first two (.644 < .8 <= .881)
    kept = torch.isfinite(process_logits(z, SamplingParams(top_p=0.8)))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(process_logits(z, SamplingParams(top_p=0.5)))
    assert kept.tolist() == [[True, False, False, False]]


def test_eos_is_a_real_token_even_when_pad_is_eos():
    """GPT-2 pads with its EOS id: the prompt padding is masked, a generated EOS is a real, scored token."""
    from textgym import TextGenVectorEnv
    from textgym.models import load

    model, tok = load("tiny-gpt2")
    eos = tok.eos_token_id
    assert tok.pad_token_id == eos

    def push_eos(module, args, out):  # +9: P(EOS) ~ e^9 / (e^9 + 50256) = 0.14 per step
        out[..., eos] += 9.0
        return out

    model.lm_head.register_forward_hook(push_eos)
    env = TextGenVectorEnv(tok, [{"prompt": "Hi"}, {"prompt": "A longer prompt here"}],
                           lambda p, c: float(len(c)), num_envs=8, max_prompt_length=8, max_new_tokens=5,
                           autoreset_mode="Disabled")
    b = RolloutCollector(LMActorCritic(model, tok), env, seed=0).collect(seed=0)
    p = b.prompt_length
    assert (b.input_ids[:, :p][b.attention_mask[:, :p] == 0] == eos).all()  # padding = EOS id, masked
    ended_by_eos = b.terminated
    assert ended_by_eos.any() and (~ended_by_eos).any()
    for i in torch.nonzero(ended_by_eos)[:, 0]:
        L = int(b.lengths[i])
        assert int(b.actions[i, L - 1]) == eos and b.mask[i, L - 1]  # the EOS itself is a real token
        assert b.attention_mask[i, p + L - 1] == 1
        assert b.rewards[i, L - 1] == pytest.approx(float(b.scores[i]))  # score on the EOS
        assert torch.isfinite(b.logprobs[i, L - 1]) and b.logprobs[i, L - 1] < 0


@pytest.mark.parametrize("rescore", [True, False])
def test_a_policy_that_is_its_own_reference_skips_the_reference_pass(rescore, monkeypatch):
    model, tok = tiny_char()
    policy = LMActorCritic(model, tok, reference=model)
    assert policy.reference_is_policy
    calls = []
    monkeypatch.setattr(policy, "reference_logits", lambda *a, **k: calls.append(1))
    b = RolloutCollector(policy, char_env(8, stop_token_ids=STOPS, max_new_tokens=6), seed=0,
                         rescore_policy=rescore).collect(seed=0)
    assert calls == []  # no reference forward
    assert torch.equal(b.ref_logprobs, b.logprobs) and bool((b.logprobs[b.mask] < 0).all())
