"""Metric rewards (evaluate modules shipped with textgym): hand-computed values on tiny inputs."""

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import textgym.rewards as R
from textgym.reward_api import call_reward


def score(reward, completions, references, **columns):
    scores, _ = call_reward(reward, ["prompt"] * len(completions), completions, references=references,
                            columns=columns or None)
    return scores


# ----------------------------------------------------------------------------- BLEU family


def test_bleu_sentence_level_hand_computed():
    # hyp "the cat the cat" vs ref "the cat sat on the mat" (13a tokens, 4-grams):
    #   p1 = 3/4 (the x2, cat x1 clipped), p2 = 1/3 ("the cat" once of 3 bigrams),
    #   p3 = 0/2 and p4 = 0/1 -> exp smoothing: 1/(2*2) and 1/(4*1)   (Chen & Cherry 2014)
    #   BP = exp(1 - 6/4)
    expected = math.exp(1 - 6 / 4) * (3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** 0.25
    got = score(R.BLEUReward(), ["the cat the cat", "the cat sat on the mat"],
                [["the cat sat on the mat"], ["the cat sat on the mat"]])
    assert got.dtype == np.float32 and got.shape == (2,)
    assert got[0] == pytest.approx(expected, rel=1e-5)
    assert got[1] == pytest.approx(1.0, rel=1e-6)


def test_bleu_effective_order_and_multi_reference():
    # "a b c" vs refs {"a b d", "x"}: closest ref length 3 -> BP = 1; p1 = 2/3, p2 = 1/2,
    # p3 = 0/1 -> smoothed 1/2; no 4-gram in the hypothesis -> effective order 3.
    got = score(R.BLEUReward(), ["a b c"], [["a b d", "x"]])
    assert got[0] == pytest.approx((2 / 3 * 1 / 2 * 1 / 2) ** (1 / 3), rel=1e-5)


def test_bleu_empty_prediction_and_empty_reference_score_zero():
    got = score(R.BLEUReward(), ["", "the cat", ""], [["the cat"], [""], []])
    assert got.tolist() == [0.0, 0.0, 0.0]


def test_sacrebleu_is_bleu_on_0_100_scale():
    expected = 100 * math.exp(1 - 6 / 4) * (3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** 0.25
    got = score(R.SacreBLEUReward(), ["the cat the cat", ""], [["the cat sat on the mat"], ["x"]])
    assert got[0] == pytest.approx(expected, rel=1e-5)
    assert got[1] == 0.0


def test_chrf_hand_computed():
    # "abc" vs "abd": char 1-grams P = R = 2/3, 2-grams 1/2, 3-grams 0; orders 4-6 absent.
    # Averaged over the 3 orders present: P = R = 7/18, so F-beta = 7/18 for any beta.
    got = score(R.ChrFReward(), ["abc", "ab", "", "ab"], [["abd"], ["ab"], ["ab"], [""]])
    assert got[0] == pytest.approx(7 / 18, rel=1e-5)
    assert got[1] == pytest.approx(1.0)
    assert got[2] == 0.0 and got[3] == 0.0


# ----------------------------------------------------------------------------- ROUGE


def test_rouge_variants_hand_computed():
    hyp, ref = "the cat sat", "the cat was here"
    # ROUGE-1: 2 shared unigrams, P = 2/3, R = 2/4 -> F = 4/7; ROUGE-2: 1 shared bigram,
    # P = 1/2, R = 1/3 -> F = 0.4; ROUGE-L: LCS "the cat" = 2 -> F = 4/7.
    assert score(R.make("rouge1"), [hyp], [[ref]])[0] == pytest.approx(4 / 7, rel=1e-5)
    assert score(R.make("rouge2"), [hyp], [[ref]])[0] == pytest.approx(0.4, rel=1e-5)
    assert score(R.make("rougeL"), [hyp], [[ref]])[0] == pytest.approx(4 / 7, rel=1e-5)


def test_rouge_l_uses_subsequence_order():
    # "cat the sat" vs "the cat sat": every unigram matches (ROUGE-1 = 1) but the LCS has
    # length 2, so ROUGE-L P = R = F = 2/3.
    assert score(R.ROUGEReward("rouge1"), ["cat the sat"], [["the cat sat"]])[0] == pytest.approx(1.0)
    assert score(R.ROUGEReward("rougeL"), ["cat the sat"], [["the cat sat"]])[0] == pytest.approx(2 / 3, rel=1e-5)


def test_rouge_best_reference_precision_recall_and_empty():
    got = score(R.ROUGEReward("rouge1"), ["the cat", "", "cat"], [["a dog", "the cat"], ["x"], [""]])
    assert got.tolist() == pytest.approx([1.0, 0.0, 0.0])
    # precision of "the cat sat" against "the cat" is 2/3, recall is 1
    precision = R.ROUGEReward("rouge1", measure="precision")
    assert score(precision, ["the cat sat"], [["the cat"]])[0] == pytest.approx(2 / 3)
    assert score(R.ROUGEReward("rouge1", measure="recall"), ["the cat sat"], [["the cat"]])[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown ROUGE variant"):
        R.ROUGEReward("rougeX")


# ----------------------------------------------------------------------------- METEOR


def test_meteor_exact_synonym_and_empty():
    r = R.METEORReward()
    got = score(r, ["the cat sat on the mat", "my car", "", "cat"],
                [["the cat sat on the mat"], ["my auto"], ["a cat"], [""]])
    # identical 6 tokens: P = R = 1, one chunk -> penalty 0.5 * (1/6)^3
    assert got[0] == pytest.approx(1 - 0.5 * (1 / 6) ** 3, rel=1e-5)
    # "car" ~ "auto" through WordNet 3.0 synonymy: 2 matches in 1 chunk -> 1 - 0.5 * (1/2)^3
    assert got[1] == pytest.approx(1 - 0.5 * (1 / 2) ** 3, rel=1e-5)
    assert got[2] == 0.0 and got[3] == 0.0


def test_meteor_punctuation_tokens_lower_precision():
    # "The cat sat." -> [the, cat, sat, .]: P = 3/4, R = 1, Fmean = PR / (0.9 P + 0.1 R),
    # one chunk of 3 matches -> penalty 0.5 * (1/3)^3.
    p, rec = 3 / 4, 1.0
    expected = p * rec / (0.9 * p + 0.1 * rec) * (1 - 0.5 * (1 / 3) ** 3)
    assert score(R.METEORReward(), ["The cat sat."], [["the cat sat"]])[0] == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- EM / F1


def test_exact_match_squad_normalisation():
    got = score(R.ExactMatchReward(), ["The Cat!", "cats", "", "", "the", " x "],
                [["a cat"], ["cat"], [""], ["x"], [""], ["x"]])
    # "The Cat!" -> "cat" == "a cat" -> "cat"; "cats" != "cat"; "" == ""; "" != "x";
    # "the" normalises to "" (article removed); " x " -> "x".
    assert got.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    raw = score(R.ExactMatchReward(normalize=False), ["The Cat!", " x "], [["a cat"], ["x"]])
    assert raw.tolist() == [0.0, 1.0]


def test_token_f1_squad_hand_computed():
    got = score(R.TokenF1Reward(), ["the cat sat down", "", "", "dog", "a b"],
                [["a cat sat"], ["x"], [""], ["cat", "dog"], ["b c d"]])
    # [cat, sat, down] vs [cat, sat]: P = 2/3, R = 1 -> F1 = 0.8
    assert got[0] == pytest.approx(0.8)
    assert got[1] == 0.0  # empty prediction, non-empty answer
    assert got[2] == 1.0  # both empty (SQuAD 2.0 convention)
    assert got[3] == 1.0  # best of the references
    # "a b" -> [b] (article dropped) vs [b, c, d]: P = 1, R = 1/3 -> F1 = 0.5
    assert got[4] == pytest.approx(0.5)


def test_metric_reward_needs_references():
    with pytest.raises(R.RewardError, match="references=None"):
        call_reward(R.TokenF1Reward(), ["p"], ["x"])


# ----------------------------------------------------------------------------- adapter

_LOCAL_METRIC = '''
import datasets
import evaluate


class CharLength(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="test metric", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references, offset=0):
        lengths = [len(p) - len(r) + offset for p, r in zip(predictions, references)]
        return {"diffs": lengths, "mean_diff": sum(lengths) / len(lengths)}
'''


@pytest.fixture(scope="module")
def local_metric(tmp_path_factory):
    d = tmp_path_factory.mktemp("metrics") / "char_length"
    d.mkdir()
    (d / "char_length.py").write_text(_LOCAL_METRIC)
    return d


def test_evaluate_adapter_with_local_module(local_metric):
    import evaluate

    module = evaluate.load(str(local_metric), keep_in_memory=True)
    r = R.EvaluateReward(module, key="diffs", compute_kwargs={"offset": 1})
    # the module's references feature is a single string, so the first reference is passed
    assert r.inputs == {"predictions": "completions", "references": "reference"}
    got = score(r, ["abcd", "", "xy"], [["ab", "zzzz"], ["a"], ["xy"]])
    assert got.tolist() == [3.0, 0.0, 1.0]


def test_evaluate_adapter_corpus_key_falls_back_to_per_sample(local_metric):
    r = R.EvaluateReward(str(local_metric), key="mean_diff")  # loaded by path
    got = score(r, ["abcd", "", "xy"], [["ab"], ["a"], ["xy"]])
    assert got.tolist() == [2.0, -1.0, 0.0]  # each sample computed on its own


def test_evaluate_adapter_inputs_from_columns_and_bad_key(local_metric):
    r = R.EvaluateReward(str(local_metric), key="diffs",
                         inputs={"predictions": "completions", "references": "source"})
    got = score(r, ["abc", "a"], None, source=["a", "abc"])
    assert got.tolist() == [2.0, -2.0]
    with pytest.raises(R.RewardError, match="available keys"):
        call_reward(R.EvaluateReward(str(local_metric), key="nope"), ["p"], ["a"], references=[["a"]])
    with pytest.raises(R.RewardError, match="needs column 'source'"):
        call_reward(r, ["p"], ["a"])


def test_metric_scripts_are_shipped_and_named():
    names = ["bleu", "sacrebleu", "chrf", "rouge", "meteor", "exact_match", "token_f1"]
    for name in names:
        assert Path(R.metric_path(name)).is_file()
    with pytest.raises(FileNotFoundError, match="built-in metrics"):
        R.metric_path("bertscore")


def test_offline_load_with_fresh_unwritable_home(tmp_path):
    """In a fresh process: no network, HOME unusable (evaluate's caches cannot be created there)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    metrics_dir = Path(R.metric_path("bleu")).parent.parent
    before = sorted(str(p) for p in metrics_dir.rglob("*") if "__pycache__" not in p.parts)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_", "TEXTGYM_"))}
    env.update(HOME=str(blocker / "home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_EVALUATE_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TEXTGYM_CACHE=str(tmp_path / "cache"),
               PYTHONDONTWRITEBYTECODE="1")
    code = textwrap.dedent("""
        import textgym.rewards as R
        print(R.make("bleu")(["p"], ["the cat sat"], references=[["the cat sat"]])[0])
        print(R.make("token-f1")(["p"], ["cat"], references=[["the cat"]])[0])
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [float(x) for x in out.stdout.split()] == pytest.approx([1.0, 1.0])
    assert (tmp_path / "cache" / "hf_modules").is_dir()  # evaluate's module cache moved to TEXTGYM_CACHE
    after = sorted(str(p) for p in metrics_dir.rglob("*") if "__pycache__" not in p.parts)
    assert after == before  # nothing written next to the shipped scripts


ODD = ["", "   \n\t ", "\x00\x01\x07\x1b[31m\x7f", "lorem ipsum dolor sit amet, " * 4000, "ünïcödé 🙂 漢字", "\ud800"]


@pytest.mark.parametrize("name", ["bleu", "sacrebleu", "chrf", "rouge1", "rouge2", "rougeL", "meteor",
                                  "exact-match", "token-f1"])
def test_metric_rewards_give_finite_scores_on_odd_completions(name):
    refs = [["the cat"], [""], [], ["lorem ipsum dolor"], ["漢字"], ["x"]]
    got = score(R.make(name), ODD, refs)
    assert got.shape == (len(ODD),) and got.dtype == np.float32 and np.isfinite(got).all()
    assert got[0] == 0.0  # the empty completion matches none of "the cat"
