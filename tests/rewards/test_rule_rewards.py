"""Rule rewards: length, repetition, regex, keyword coverage, constant."""

import re

import numpy as np
import pytest

import textgym.rewards as R
from textgym.reward_api import call_reward


def score(reward, completions, **columns):
    return call_reward(reward, ["p"] * len(completions), completions, columns=columns or None)[0]


def test_length_target_in_words_chars_and_tokens():
    ten = " ".join(["w"] * 10)
    five = " ".join(["w"] * 5)
    twenty = " ".join(["w"] * 20)
    # triangular: 1 - |n - 10| / 10
    assert score(R.LengthReward(10), [ten, five, twenty, ""]).tolist() == [1.0, 0.5, 0.0, 0.0]
    # tolerance 2 and width 4: n = 13 -> 1 - (3 - 2) / 4
    assert score(R.LengthReward(10, tolerance=2, width=4), [" ".join(["w"] * 13)])[0] == pytest.approx(0.75)
    assert score(R.LengthReward(4, unit="chars"), ["abcd", "ab"]).tolist() == [1.0, 0.5]
    per_char = R.LengthReward(2, unit="tokens", tokenizer=lambda s: list(s.replace(" ", "")))
    assert score(per_char, ["a b", "abcd"]).tolist() == [1.0, 0.0]


def test_length_with_hf_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={"[UNK]": 0, "hello": 1, "world": 2, "!": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # splits "world!" into "world", "!"
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    r = R.make("length", target=4, unit="tokens", tokenizer=hf)
    # "hello world!" -> 3 tokens -> 1 - |3 - 4| / 4; "hello hello world !" -> 4 tokens
    assert score(r, ["hello world!", "hello hello world !"]).tolist() == pytest.approx([0.75, 1.0])


def test_length_limits_penalty_and_raw():
    r = R.LengthReward(max_length=10, min_length=4, unit="chars")
    # 15 chars: -(15 - 10)/10; 2 chars: -(4 - 2)/4; 6 chars: within limits
    assert score(r, ["x" * 15, "xx", "x" * 6]).tolist() == [-0.5, -0.5, 0.0]
    assert score(R.make("length"), ["a b c", "", "  "]).tolist() == [3.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="needs a tokenizer"):
        R.LengthReward(5, unit="tokens")
    with pytest.raises(ValueError, match="unit must be"):
        R.LengthReward(5, unit="lines")


def test_repetition_fraction_of_repeated_ngrams():
    # bigrams of "a b a b a b": ab ba ab ba ab -> 5 total, 2 distinct -> 1 - 2/5 = 0.6 repeated
    r = R.RepetitionPenalty(n=2)
    got = score(r, ["a b a b a b", "a b c", "a", "", "The cat. The cat."])
    # last: words [the cat the cat] -> bigrams the-cat cat-the the-cat -> 1 - 2/3
    assert got.tolist() == pytest.approx([-0.6, 0.0, 0.0, 0.0, -1 / 3])
    assert score(R.RepetitionPenalty(n=3, unit="chars"), ["aaaa"])[0] == pytest.approx(-0.5)  # aaa aaa -> 1 - 1/2


def test_regex_modes():
    assert score(R.RegexReward(r"\d+", mode="fullmatch"), ["123", "12a", ""]).tolist() == [1.0, 0.0, 0.0]
    fmt = R.make("regex", pattern=r"<answer>.+?</answer>", flags=re.DOTALL, no_match_score=-1.0)
    assert score(fmt, ["x <answer>4\n</answer>", "<answer></answer>"]).tolist() == [1.0, -1.0]
    assert score(R.RegexReward("ab", mode="match", strip=True), ["  abc", "cab"]).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="invalid pattern"):
        R.RegexReward("(")


def test_keyword_coverage_with_inflections():
    r = R.make("keyword-coverage")
    got = score(r, ["The dogs caught a frisbee.", "A dog runs in the park", "ice creams melted", "", "x"],
                concepts=["dog#frisbee#catch", ["dog", "run", "beach"], ["ice cream", "melt"], ["dog"], []])
    # caught -> catch (WordNet irregular), dogs -> dog, runs -> run, creams -> cream, melted -> melt
    assert got.tolist() == pytest.approx([1.0, 2 / 3, 1.0, 0.0, 1.0])
    regular_only = R.KeywordCoverageReward(irregular=False)
    got = score(regular_only, ["The dogs caught a frisbee."], concepts=["dog#frisbee#catch"])
    assert got[0] == pytest.approx(2 / 3)
    assert score(r, ["the mice stopped"], concepts=[["mouse", "stop"]])[0] == 1.0
    with pytest.raises(R.RewardError, match="needs a 'concepts' column"):
        call_reward(r, ["p"], ["x"])


def test_constant():
    assert score(R.make("constant", value=2.5), ["a", ""]).tolist() == [2.5, 2.5]
    with pytest.raises(ValueError, match="finite"):
        R.ConstantReward(float("nan"))


ODD = ["", "   \n\t ", "\x00\x01\x07\x1b[31m\x7f", "word " * 50000, "ünïcödé 🙂 漢字"]


@pytest.mark.parametrize("name,kwargs,columns", [
    ("length", {"target": 5}, {}),
    ("repetition", {}, {}),
    ("regex", {"pattern": r"\w+"}, {}),
    ("keyword-coverage", {}, {"concepts": [["word"]] * len(ODD)}),
    ("constant", {}, {}),
])
def test_rule_rewards_give_finite_scores_on_odd_completions(name, kwargs, columns):
    got = score(R.make(name, **kwargs), ODD, **columns)
    assert got.shape == (len(ODD),) and got.dtype == np.float32 and np.isfinite(got).all()
