"""Model rewards on tiny randomly initialised models with tokenizers built in code (no network)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import textgym.rewards as R  # noqa: E402
from textgym.reward_api import call_reward  # noqa: E402

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "</s>"] + "good bad movie the a is was great awful plot".split()


def word_tokenizer(with_special: bool):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    extra = {}
    if with_special:  # BERT style: [CLS] text [SEP]
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        extra = {"cls_token": "[CLS]", "sep_token": "[SEP]"}
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                eos_token="</s>", **extra)


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=64, num_labels=2,
                                  id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    return transformers.BertForSequenceClassification(cfg).eval(), word_tokenizer(with_special=True)


@pytest.fixture(scope="module")
def llama_rm():
    """A scalar reward model whose pad token *is* the EOS token (the case transformers mishandles)."""
    torch.manual_seed(0)
    tok = word_tokenizer(with_special=False)
    tok.pad_token = "</s>"
    cfg = transformers.LlamaConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                   num_labels=1, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return transformers.LlamaForSequenceClassification(cfg).eval(), tok


def direct_logits(model, tok, text):
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits[0]


TEXTS = ["good movie", "bad plot was awful", "", "the great movie is a good movie"]


def test_classifier_prob_and_logit_match_direct_forward(bert):
    model, tok = bert
    prob = R.ClassifierReward(model, tok, label=1, output="prob", batch_size=3)
    logit = R.ClassifierReward(model, tok, label="positive", output="logit")  # label by name, any case
    p, _ = call_reward(prob, ["p"] * 4, TEXTS)
    lg, _ = call_reward(logit, ["p"] * 4, TEXTS)
    for i, text in enumerate(TEXTS):
        logits = direct_logits(model, tok, text)  # unpadded, one at a time
        assert p[i] == pytest.approx(torch.softmax(logits, -1)[1].item(), abs=1e-5)
        assert lg[i] == pytest.approx(logits[1].item(), abs=1e-4)
    neg, _ = call_reward(R.ClassifierReward(model, tok, label="NEGATIVE"), ["p"] * 4, TEXTS)
    assert (p + neg).tolist() == pytest.approx([1.0] * 4, abs=1e-6)


def test_classifier_from_directory_and_label_errors(bert, tmp_path):
    model, tok = bert
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    from_path = R.make("classifier", model=str(tmp_path), label="POSITIVE")
    a, _ = call_reward(from_path, ["p"] * 4, TEXTS)
    b, _ = call_reward(R.ClassifierReward(model, tok), ["p"] * 4, TEXTS)
    assert a.tolist() == pytest.approx(b.tolist(), abs=1e-6)
    with pytest.raises(ValueError, match="unknown label 'neutral'"):
        R.ClassifierReward(model, tok, label="neutral")
    with pytest.raises(ValueError, match="out of range"):
        R.ClassifierReward(model, tok, label=2)
    with pytest.raises(ValueError, match="needs tokenizer"):
        R.ClassifierReward(model)
    with pytest.raises(FileNotFoundError):
        R.ClassifierReward(str(tmp_path / "missing"))


def test_classifier_truncation_keeps_chosen_side(bert):
    model, tok = bert
    long_text = "good " * 3 + "bad " * 200
    right = R.ClassifierReward(model, tok, max_length=5, truncation="right", output="logit")
    left = R.ClassifierReward(model, tok, max_length=5, truncation="left", output="logit")
    r, _ = call_reward(right, ["p"], [long_text])
    l_, _ = call_reward(left, ["p"], [long_text])
    # max_length 5 = [CLS] + 3 words + [SEP]
    assert r[0] == pytest.approx(direct_logits(model, tok, "good good good")[1].item(), abs=1e-4)
    assert l_[0] == pytest.approx(direct_logits(model, tok, "bad bad bad")[1].item(), abs=1e-4)


def manual_last_token_score(model, tok, text):
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state
        return model.score(hidden[0, -1]).item()


def test_reward_model_reads_last_real_token_even_when_pad_is_eos(llama_rm):
    model, tok = llama_rm
    rm = R.RewardModelReward(model, tok, text="completion")
    texts = ["good movie </s>", "the plot was awful and bad", "great"]
    scores, _ = call_reward(rm, ["p"] * 3, texts)  # padded batch (pad id == EOS id)
    expected = [manual_last_token_score(model, tok, t) for t in texts]
    assert scores.tolist() == pytest.approx(expected, abs=1e-4)
    # transformers' own pooling searches for pad_token_id, so it stops before the real EOS
    enc = tok(texts[:1], return_tensors="pt")
    with torch.no_grad():
        hf = model(**enc).logits[0, 0].item()
    assert not math.isclose(hf, expected[0], abs_tol=1e-4)


def test_reward_model_prompt_plus_completion_and_append_eos(llama_rm, tmp_path):
    model, tok = llama_rm
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    rm = R.make("reward-model", model=str(tmp_path), append_eos=True)
    scores, _ = call_reward(rm, ["the movie ", "a "], ["was good", ""])
    expected = [manual_last_token_score(model, tok, "the movie was good</s>"),
                manual_last_token_score(model, tok, "a </s>")]
    assert scores.tolist() == pytest.approx(expected, abs=1e-4)


def test_reward_model_rejects_multi_label_models(bert):
    model, tok = bert
    with pytest.raises(ValueError, match="num_labels=1"):
        R.RewardModelReward(model, tok)


def test_sentiment_reward_picks_positive_label_and_defaults_to_cached_classifier(bert, tmp_path, monkeypatch):
    model, tok = bert
    s = R.make("sentiment", model=model, tokenizer=tok)
    assert s.label_index == 1  # "POSITIVE"
    monkeypatch.delenv("TEXTGYM_SENTIMENT_MODEL", raising=False)
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="sentiment_classifier.*sentiment-vader"):
        R.make("sentiment")  # not trained yet in this cache: the message says how to
    model.save_pretrained(tmp_path / "models" / "sentiment-minilm")
    tok.save_pretrained(tmp_path / "models" / "sentiment-minilm")
    default = R.make("sentiment")  # now found in the cache without model=
    assert default.label_index == 1
    assert default(["p"], ["good movie"]) == pytest.approx(s(["p"], ["good movie"]), abs=1e-6)


def test_sentiment_model_env_var_overrides_the_cache(bert, tmp_path, monkeypatch):
    from textgym.rewards.model import default_sentiment_model_dir

    monkeypatch.setenv("TEXTGYM_SENTIMENT_MODEL", str(tmp_path / "mine"))
    assert default_sentiment_model_dir() == tmp_path / "mine"
    monkeypatch.delenv("TEXTGYM_SENTIMENT_MODEL")
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    assert default_sentiment_model_dir() == tmp_path / "models" / "sentiment-minilm"


def test_vader_sentiment_lexicon_values():
    v = R.make("sentiment-vader")
    got, _ = call_reward(v, ["p"] * 3, ["terrible awful bad", "", "the the the"])
    # VADER compound = s / sqrt(s^2 + 15) with lexicon valences terrible -2.1, awful -2.0, bad -2.5;
    # reward = (compound + 1) / 2.  Neutral or empty text: compound 0 -> 0.5.
    s = -2.1 - 2.0 - 2.5
    assert got[0] == pytest.approx((s / math.sqrt(s * s + 15) + 1) / 2, abs=1e-4)
    assert got[1:].tolist() == [0.5, 0.5]


def test_model_rewards_odd_completions(bert, llama_rm):
    odd = ["", "   \n\t", "\x00\x01\x07\x1b[31m", "good " * 5000]
    rewards = [R.ClassifierReward(*bert), R.RewardModelReward(*llama_rm), R.make("sentiment-vader")]
    for reward in rewards:
        scores, _ = call_reward(reward, ["p"] * 4, odd)
        assert scores.shape == (4,) and scores.dtype == np.float32 and np.isfinite(scores).all()
