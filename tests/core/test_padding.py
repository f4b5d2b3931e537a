"""The observation layout gives padding-independent logprobs with position ids from the mask."""

import numpy as np
import pytest
import torch

from textgym import TextGenEnv
from textgym.models import load


def next_token_logprobs(model, obs):
    ids = torch.as_tensor(obs["input_ids"])[None]
    mask = torch.as_tensor(obs["attention_mask"])[None]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)  # DESIGN §2: position ids from the attention mask
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[0]
    last = int(np.flatnonzero(obs["attention_mask"])[-1])
    return torch.log_softmax(logits[last].double(), -1)


@pytest.mark.parametrize("preset", ["tiny-llama", "tiny-gpt2"])
def test_same_tokens_same_logprobs_whatever_the_padding(preset):
    model, tok = load(preset, seed=3)
    model.eval()
    samples = [{"prompt": "The film was"}]
    completion = tok(" not bad at all")["input_ids"]
    results = []
    for p in (4, 9, 17):  # 1, 6 and 14 slots of left padding
        env = TextGenEnv(tok, samples, lambda pr, c: 0.0, max_prompt_length=p, max_new_tokens=len(completion) + 1)
        obs, _ = env.reset(seed=0)
        per_step = [next_token_logprobs(model, obs)]
        for t in completion:
            obs, *_ = env.step(t)
            per_step.append(next_token_logprobs(model, obs))
        results.append(torch.stack(per_step))
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], atol=1e-5, rtol=0)
