"""Agreement numbers against hand-computed values."""

import pytest

from textgym.app.feedback.agreement import agreement_report, ranking_agreement, rating_alpha, vote_agreement


def judgment(annotator, item_id, ratings=None, ranks=None, vote=None):
    return {"annotator": annotator, "item_id": item_id, "ratings": ratings or {}, "ranks": ranks or {},
            "vote": vote, "skipped": False}


def test_interval_alpha_hand_value():
    # 2 annotators, 3 completions: A = (1, 2, 3), B = (1, 2, 4).  n = 6 pairable values.
    # D_o = (1/n) sum_u 1/(m_u - 1) sum_{c != k} d^2 = (1/6) * 2 * (3 - 4)^2 = 1/3
    # D_e = 1/(n (n - 1)) sum_{i != j} d^2 over the values 1,1,2,2,3,4 = 2 * 41 / 30
    # alpha = 1 - D_o / D_e = 1 - (1/3) / (82/30) = 1 - 10/82 = 36/41
    js = [judgment("A", 1, {1: 1, 2: 2, 3: 3}), judgment("B", 1, {1: 1, 2: 2, 3: 4})]
    assert rating_alpha(js, "interval") == pytest.approx(36 / 41, abs=1e-9)


def test_alpha_edge_cases():
    same = [judgment("A", 1, {1: 5, 2: 3}), judgment("B", 1, {1: 5, 2: 3})]
    assert rating_alpha(same, "ordinal") == pytest.approx(1.0)
    assert rating_alpha([judgment("A", 1, {1: 5})], "ordinal") is None          # one coder
    assert rating_alpha([judgment("A", 1, {1: 5}), judgment("B", 1, {2: 3})]) is None  # nothing pairable
    assert rating_alpha([judgment("A", 1, {1: 4}), judgment("B", 1, {1: 4})]) is None  # no variation
    # completely crossed: A = (1, 7), B = (7, 1): D_o = D_e * n/(n-1) ... alpha below 0
    assert rating_alpha([judgment("A", 1, {1: 1, 2: 7}), judgment("B", 1, {1: 7, 2: 1})], "interval") < 0


def test_ranking_and_vote_agreement_hand_values():
    # item 1: A ranks 1 < 2 < 3, B ranks 1 < 3 < 2: pairs (1,2) agree, (1,3) agree, (2,3) disagree -> 2/3
    js = [judgment("A", 1, ranks={1: 1, 2: 2, 3: 3}), judgment("B", 1, ranks={1: 1, 2: 3, 3: 2})]
    assert ranking_agreement(js) == (pytest.approx(2 / 3), 3)
    # a tie is its own answer: A ties 2 and 3, B orders them -> (2,3) disagrees
    js2 = [judgment("A", 1, ranks={1: 1, 2: 2, 3: 2}), judgment("B", 1, ranks={1: 1, 2: 2, 3: 3})]
    assert ranking_agreement(js2) == (pytest.approx(2 / 3), 3)
    # votes: item 5 has left, left, right -> pairs (l,l) agree, (l,r) x2 disagree = 1/3
    vs = [judgment("A", 5, vote="left"), judgment("B", 5, vote="left"), judgment("C", 5, vote="right")]
    assert vote_agreement(vs) == (pytest.approx(1 / 3), 3)
    report = agreement_report(js + vs + [{**judgment("D", 5, vote="right"), "skipped": True}])
    assert report["ranking_pairwise"] == pytest.approx(2 / 3) and report["vote_pairs"] == 3
    assert report["rating_alpha_ordinal"] is None
