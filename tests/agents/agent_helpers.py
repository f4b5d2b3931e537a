"""Tiny envs and policies built inline for the agent tests (no network, seconds)."""

from __future__ import annotations

import numpy as np
import torch

from textgym import TextGenVectorEnv
from textgym.tokenizers import char_tokenizer


def char_env(num_envs=4, *, max_prompt_length=8, max_new_tokens=6, stop_token_ids=None, prompts=None,
             reward=None, seed_samples=None):
    """A synthetic env on the character tokenizer: reward = fraction of 'a' in the completion."""
    tok = char_tokenizer()
    prompts = prompts or ["ab", "hello", "x", "count:3=", "qq", "zzzzz"]
    samples = [{"prompt": p} for p in prompts]

    def frac_a(prompts, completions, **kw):
        return np.array([c.count("a") / max(len(c), 1) for c in completions], np.float32)

    return TextGenVectorEnv(tok, samples, reward or frac_a, num_envs=num_envs, max_prompt_length=max_prompt_length,
                            max_new_tokens=max_new_tokens, stop_token_ids=stop_token_ids, autoreset_mode="Disabled")


def char_gpt2(dropout=0.0, seed=0):
    """A 2-layer GPT-2 on the character tokenizer (vocab 57), optionally with dropout everywhere."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = char_tokenizer()
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2, resid_pdrop=dropout,
                     embd_pdrop=dropout, attn_pdrop=dropout, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    return GPT2LMHeadModel(cfg), tok


def tiny_char(seed=0):
    from textgym.models import load

    return load("tiny-char", seed=seed)
