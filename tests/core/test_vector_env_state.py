"""TextGenVectorEnv.state_dict / load_state_dict: the sample order and RNGs, for exact resume."""

import numpy as np
import pytest

from textgym import TextGenVectorEnv

SAMPLES = [{"prompt": p} for p in ["ab", "hello", "123", "z", "qq", "xy", "k"]]


def const(prompts, completions, **kw):
    return np.zeros(len(completions), np.float32)


def picked(env, rounds):
    """Sample indices of ``rounds`` resets (the env's own order; no seed after the first)."""
    out = []
    for _ in range(rounds):
        _, info = env.reset()
        out.append(info["sample_index"].tolist())
    return out


def test_a_restored_env_continues_the_same_sample_order(char_tok):
    a = TextGenVectorEnv(char_tok, SAMPLES, const, 3, max_prompt_length=5, max_new_tokens=2)
    a.reset(seed=5)
    picked(a, 4)  # part-way through an epoch
    state = a.state_dict()
    expected = picked(a, 5)
    b = TextGenVectorEnv(char_tok, SAMPLES, const, 3, max_prompt_length=5, max_new_tokens=2)
    b.reset(seed=123)  # a different position and seed: the state overrides both
    b.load_state_dict(state)
    assert picked(b, 5) == expected
    assert a.shuffle is True and b.shuffle is True


def test_load_state_dict_rejects_another_number_of_rows(char_tok):
    a = TextGenVectorEnv(char_tok, SAMPLES, const, 3, max_prompt_length=5, max_new_tokens=2)
    b = TextGenVectorEnv(char_tok, SAMPLES, const, 2, max_prompt_length=5, max_new_tokens=2)
    with pytest.raises(ValueError, match="3 rows, this env 2.*same num_envs"):
        b.load_state_dict(a.state_dict())
