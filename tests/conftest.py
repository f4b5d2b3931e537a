"""Test-wide settings: no network, a private model cache (``private_model_cache``), shared tiny fixtures."""

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


@pytest.fixture(scope="session", autouse=True)
def private_model_cache(tmp_path_factory):
    """``$TEXTGYM_CACHE`` -> an empty temp folder for the whole session (subprocesses inherit it).

    Every cache a test fills (SmolLM2's safetensors copy, MiniLM, WordNet, evaluate's modules)
    starts empty, so the conversion / extraction paths run instead of a copy from an earlier run,
    and tests never write into the user's cache.  Only setting a variable: cheap.
    """
    path = tmp_path_factory.mktemp("textgym-cache")
    old = os.environ.get("TEXTGYM_CACHE")
    os.environ["TEXTGYM_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TEXTGYM_CACHE", None)
    else:
        os.environ["TEXTGYM_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def tiny_sentiment_classifier(private_model_cache, tmp_path_factory):
    """Point the ``"sentiment"`` reward (the IMDB env's default) at a tiny random classifier.

    Without this, the first test that builds ``textgym/IMDB-v0`` with its default
    reward would train textgym's real classifier (minutes).  Tests that need the
    real one set ``TEXTGYM_SENTIMENT_MODEL`` themselves.
    """
    from textgym.models import load

    path = tmp_path_factory.mktemp("sentiment-tiny")
    model, tok = load("tiny-gpt2", kind="classifier")
    model.config.id2label, model.config.label2id = {0: "negative", 1: "positive"}, {"negative": 0, "positive": 1}
    model.save_pretrained(path)
    tok.save_pretrained(path)
    old = os.environ.get("TEXTGYM_SENTIMENT_MODEL")
    os.environ["TEXTGYM_SENTIMENT_MODEL"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TEXTGYM_SENTIMENT_MODEL", None)
    else:
        os.environ["TEXTGYM_SENTIMENT_MODEL"] = old
