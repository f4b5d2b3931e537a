"""Bias probes: CrowS-Pairs scoring on a model built to prefer one sentence, CIs against hand values,
group statistics and gaps (empty / one-sample groups), BOLD sampling and generation, the CDA word swap."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from textgym.agents.common import bias
from textgym.agents.common.bootstrap import bootstrap_ci, bootstrap_diff_ci
from textgym.agents.trainers.counterfactual import augment_rows, swap_gender


class MarkerLM(torch.nn.Module):
    """A causal "LM" whose next-token distribution is peaked on ``favoured`` ids once ``marker`` was seen
    (uniform otherwise): sentences that continue after the marker word are more likely."""

    def __init__(self, vocab: int, marker: list[int], favoured: list[int]):
        super().__init__()
        self.vocab, self.marker, self.favoured = vocab, marker, favoured
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        b, length = input_ids.shape
        seen = torch.zeros(b, length, dtype=torch.bool)
        for m in self.marker:
            seen |= (input_ids == m).cumsum(-1) > 0
        logits = torch.zeros(b, length, self.vocab)
        logits[..., self.favoured] = 5.0 * seen.unsqueeze(-1).float()
        return SimpleNamespace(logits=logits)


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


PAIRS = [  # (sent_more, sent_less, bias_type): the edit is one character, x vs y
    ("the x cat sat.", "the y cat sat.", "gender"),
    ("a x dog ran.", "a y dog ran.", "gender"),
    ("x is on the mat.", "y is on the mat.", "age"),
]


def rows(pairs):
    return [{"sent_more": a, "sent_less": b, "bias_type": t} for a, b, t in pairs]


def marker_lm(tok, marker_char):
    favoured = sorted({i for text in ("cat sat.", "dog ran.", " is on the mat.") for i in ids(tok, text)})
    return MarkerLM(len(tok), ids(tok, marker_char), favoured)


@pytest.mark.parametrize("method", bias.CROWS_METHODS)
def test_a_model_preferring_the_stereotype_scores_100_and_the_other_way_0(char_tok, method):
    res = bias.crows_pairs_score(marker_lm(char_tok, "x"), rows(PAIRS), char_tok, method=method)
    assert res.outcomes == [1.0, 1.0, 1.0]
    assert (res.overall.value, res.overall.lo, res.overall.hi, res.overall.n) == (100.0, 100.0, 100.0, 3)
    assert res.by_type["gender"].value == 100.0 and res.by_type["gender"].n == 2
    flipped = bias.crows_pairs_score(marker_lm(char_tok, "y"), rows(PAIRS), char_tok, method=method)
    assert flipped.overall.value == 0.0 and flipped.outcomes == [0.0, 0.0, 0.0]


def test_a_symmetric_set_scores_exactly_50_and_type_counts_add_up(char_tok):
    sym = rows(PAIRS) + rows([(b, a, t) for a, b, t in PAIRS])
    res = bias.crows_pairs_score(marker_lm(char_tok, "x"), sym, char_tok)
    assert res.overall.value == 50.0
    assert {t: e.value for t, e in res.by_type.items()} == {"age": 50.0, "gender": 50.0}
    assert sum(e.n for e in res.by_type.values()) == res.overall.n == 6
    # any model at all: a real (random) tiny LM on the symmetric set is also exactly 50
    from textgym.models import load

    model, tok = load("tiny-gpt2")
    real = bias.crows_pairs_score(model, sym, tok, batch_size=4)
    assert real.overall.value == 50.0


def test_shared_tokens_and_a_final_edit_is_a_tie(char_tok):
    assert bias.shared_token_positions([1, 2, 3, 4], [1, 9, 3, 4]) == ([0, 2, 3], [0, 2, 3])
    assert bias.shared_token_positions([5, 6], [7]) == ([], [])
    # the edit is the last character: every shared token precedes it, both sums are equal -> tie (0.5)
    res = bias.crows_pairs_score(marker_lm(char_tok, "x"), rows([("the cat x", "the cat y", "age")]), char_tok)
    assert res.outcomes == [0.5] and res.overall.value == 50.0 and res.overall.lo is None


def test_sequence_logprobs_match_a_hand_computation(char_tok):
    lm = marker_lm(char_tok, "x")
    v = len(char_tok)
    seq = ids(char_tok, "xc")
    (lp,) = bias.sequence_token_logprobs(lm, [seq], start_id=0)
    # token "x" after the start token: uniform; "c" after "x": favoured (c is in "cat sat.")
    k = len(lm.favoured)
    assert lp[0] == pytest.approx(-math.log(v))
    assert lp[1] == pytest.approx(5.0 - math.log(k * math.exp(5.0) + (v - k)))


def test_stereotype_score_cis_against_hand_values():
    overall, by_type = bias.stereotype_score([1, 0], ["a", "b"])
    # mean of {0, 1} resampled: 0, 0.5, 1 with p 1/4, 1/2, 1/4 -> 95% interval (0, 100)
    assert (overall.value, overall.lo, overall.hi) == (50.0, 0.0, 100.0)
    assert by_type["a"].text() == "100.0 (n=1, no CI)"
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    assert bootstrap_diff_ci([0.0, 1.0], [0.0]) == (0.0, 1.0)
    assert bootstrap_diff_ci([1.0, 1.0], [0.0, 0.0, 0.0]) == (1.0, 1.0)
    # diff of two {0, 1} samples: -1 with p 1/16 > 2.5% -> (-1, 1)
    assert bootstrap_diff_ci([0.0, 1.0], [0.0, 1.0]) == (-1.0, 1.0)
    with pytest.raises(ValueError, match="no CrowS-Pairs pairs"):
        bias.stereotype_score([], [])
    with pytest.raises(ValueError, match="empty"):
        bootstrap_diff_ci([], [1.0])


def test_group_stats_and_gap_on_given_scores_never_nan():
    scores = {"a": [0.0, 1.0], "b": [0.0, 0.0], "empty": [], "single": [0.9]}
    stats = {g.group: g for g in bias.group_stats(scores)}
    assert (stats["a"].mean, stats["a"].lo, stats["a"].hi, stats["a"].n) == (0.5, 0.0, 1.0, 2)
    assert (stats["b"].mean, stats["b"].lo, stats["b"].hi) == (0.0, 0.0, 0.0)
    assert stats["empty"].mean is None and stats["empty"].note == "no samples" and stats["empty"].n == 0
    assert stats["single"].mean == 0.9 and stats["single"].lo is None and stats["single"].note == "one sample: no CI"
    gap = bias.largest_gap(scores)
    assert (gap.high, gap.low, gap.gap, gap.lo, gap.hi) == ("a", "b", 0.5, 0.0, 1.0)
    assert gap.note == "left out (fewer than 2 samples): empty, single"
    none = bias.largest_gap({"a": [0.2, 0.4], "b": [0.7]})
    assert none.gap is None and none.lo is None and "fewer than two groups with 2+ samples (1 of 2)" in none.note
    for value in (*[v for g in stats.values() for v in (g.mean, g.lo, g.hi)], gap.gap, gap.lo, gap.hi):
        assert value is None or math.isfinite(value)


def test_bold_sample_is_stratified_and_seeded():
    data = [{"domain": d, "category": c, "prompt": f"{d}{c}{i}"} for d in ("g", "r") for c in ("p", "q")
            for i in range(5 if c == "p" else 2)]
    s = bias.bold_sample(data, per_group=3, seed=0)
    from collections import Counter

    assert Counter((r["domain"], r["category"]) for r in s) == {("g", "p"): 3, ("g", "q"): 2, ("r", "p"): 3,
                                                                ("r", "q"): 2}
    assert [r["prompt"] for r in s] == [r["prompt"] for r in bias.bold_sample(data, per_group=3, seed=0)]
    assert [r["prompt"] for r in s] != [r["prompt"] for r in bias.bold_sample(data, per_group=3, seed=1)]
    assert all(r["domain"] == "r" for r in bias.bold_sample(data, 3, domains=["r"]))
    with pytest.raises(ValueError, match=r"unknown BOLD domain\(s\) \['x'\]"):
        bias.bold_sample(data, 3, domains=["x"])


def test_bold_bias_end_to_end_on_a_tiny_model_is_reproducible():
    from textgym.agents.common.policy import LMActorCritic
    from textgym.envs import datasets as tds
    from textgym.models import load

    model, tok = load("tiny-gpt2")
    policy = LMActorCritic(model, tok, reference=model)
    data = tds.load("bold-prompts", "test")
    kw = dict(per_group=2, domains=["gender", "religious_ideology"], max_new_tokens=4, batch_size=8, seed=3)
    res = bias.bold_bias(policy, data, **kw)
    assert set(res.groups) == {"sentiment", "vader"}
    assert [g.group for g in res.groups["vader"]["gender"]] == ["American_actors", "American_actresses"]
    assert all(g.n == 2 for gs in res.groups["vader"].values() for g in gs)
    assert len(res.samples) == 2 * 2 + 7 * 2
    for scorer in res.gaps:
        for gap in res.gaps[scorer].values():
            assert gap.gap is not None and gap.lo <= gap.gap <= gap.hi + 1e-12
    again = bias.bold_bias(policy, data, **kw)
    assert [s["continuation"] for s in again.samples] == [s["continuation"] for s in res.samples]
    with pytest.raises(ValueError, match="unknown scorer"):
        bias.bold_bias(policy, data, scorers=["textblob"])


def test_counterfactual_swap_and_augmentation():
    assert swap_gender("He thanked his mother.") == "She thanked her father."
    assert swap_gender("HE met the Actress; she smiled at him") == "SHE met the Actor; he smiled at her"
    assert swap_gender("the manager hesitated") == "the manager hesitated"  # whole words only
    out = augment_rows([{"prompt": "a", "completion": "b"}, {"prompt": "the man", "completion": "she left"}])
    assert out == [{"prompt": "a", "completion": "b"}, {"prompt": "the man", "completion": "she left"},
                   {"prompt": "the woman", "completion": "he left", "counterfactual": True}]
