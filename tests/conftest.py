"""Test-wide settings: no network, a private model cache, shared tiny fixtures."""

import os

# A stray Hub call must fail at once instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def gpt2_tok():
    """GPT-2 BPE with pad = EOS (the tiny-gpt2 preset's tokenizer)."""
    from textgym.tokenizers import gpt2_bpe_tokenizer

    return gpt2_bpe_tokenizer(pad="eos")


@pytest.fixture(scope="session")
def char_tok():
    """The character tokenizer of the tiny-char preset (pad 0, eos 1, unk 2)."""
    from textgym.tokenizers import char_tokenizer

    return char_tokenizer()
