"""Prompt formats: ``"chat"`` applies the tokenizer's chat template, a callable gets the whole sample."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from textgym import TextGenEnv

# ------------------------------------------------------------------ prompt formats
SAMPLES = [{"prompt": "Name a colour.", "topic": "colour"}, {"prompt": "Say hi", "topic": "greeting"}]
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def _prompt_ids(env, index):
    obs, _ = env.reset(options={"sample_index": index})
    return obs["input_ids"][obs["attention_mask"] == 1].tolist()


def _const(prompts, completions, **kw):
    return np.zeros(len(completions), np.float32)


def test_chat_prompt_format_applies_the_tokenizers_template(gpt2_tok):
    tok = copy.deepcopy(gpt2_tok)
    tok.chat_template = CHAT
    env = TextGenEnv(tok, SAMPLES, _const, prompt_format="chat", max_prompt_length=32, max_new_tokens=2)
    for i, s in enumerate(SAMPLES):
        text = f"<|user|>{s['prompt']}\n<|assistant|>"
        assert _prompt_ids(env, i) == tok(text, add_special_tokens=False)["input_ids"]
        assert _prompt_ids(env, i) == tok.apply_chat_template([{"role": "user", "content": s["prompt"]}],
                                                              add_generation_prompt=True, tokenize=True,
                                                              return_dict=False)
    with pytest.raises(ValueError, match="chat template"):
        TextGenEnv(gpt2_tok, SAMPLES, _const, prompt_format="chat")


def test_callable_prompt_format_gets_the_whole_sample(gpt2_tok):
    fmt = lambda s: f"Topic: {s['topic']}. {s['prompt']}\nAnswer:"  # noqa: E731
    env = TextGenEnv(gpt2_tok, SAMPLES, _const, prompt_format=fmt, max_prompt_length=32, max_new_tokens=2)
    for i, s in enumerate(SAMPLES):
        assert _prompt_ids(env, i) == gpt2_tok(fmt(s))["input_ids"]
    # the reward still sees the raw prompt of the sample, not the formatted one
    seen = []

    def spy(prompts, completions, **kw):
        seen.extend(prompts)
        return np.zeros(len(completions), np.float32)

    env = TextGenEnv(gpt2_tok, SAMPLES, spy, prompt_format=fmt, max_prompt_length=32, max_new_tokens=1)
    env.reset(options={"sample_index": 1})
    env.step(gpt2_tok.eos_token_id)
    assert seen == ["Say hi"]
