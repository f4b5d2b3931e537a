"""Validation of judgments (the same rules for the HTML form and the JSON API)."""

import pytest

from textgym.app.feedback.db import Item
from textgym.app.feedback.judgments import JudgmentError, parse_form, parse_judgment

ITEM2 = Item(7, "p", [{"id": 1, "position": 0, "text": "a"}, {"id": 2, "position": 1, "text": "b"},
                      {"id": 3, "position": 2, "text": "c"}])
ITEMAB = Item(8, "p", [{"id": 4, "position": 0, "text": "x"}, {"id": 5, "position": 1, "text": "y"}])
KEY = "k" * 12


def j(item=ITEM2, **kw):
    return parse_judgment({"item_id": item.id, "idempotency_key": KEY, **kw}, item)


def test_a_full_judgment_is_parsed():
    got = j(ratings={"1": 7, "2": 1}, comments={"2": " meh "}, ranking=[[1], [2, 3]], edit={"completion_id": 2,
            "text": "b, better"}, flags=[3, 3], flag_reason="rude")
    assert got.ratings == {1: 7, 2: 1} and got.comments == {2: "meh"}
    assert got.ranking == [[1], [2, 3]] and got.ranks() == {1: 1, 2: 2, 3: 2}
    assert got.edit == (2, "b, better") and got.flags == [3] and got.flag_reason == "rude"
    assert j(ITEMAB, vote="both_bad").vote == "both_bad"


@pytest.mark.parametrize("kw, message", [
    ({"ratings": {"1": 8}}, "must be 1-7, got 8"),
    ({"ratings": {"1": 0}}, "must be 1-7, got 0"),
    ({"ratings": {"1": 2.5}}, "expected an integer"),
    ({"ratings": {"1": True}}, "expected an integer"),
    ({"ratings": {"9": 3}}, "completion 9 is not one of this item's completions [1, 2, 3]"),
    ({"ranking": [[1], [2]]}, "must order each shown completion exactly once"),
    ({"ranking": [[1], [2], [2, 3]]}, "must order each shown completion exactly once"),
    ({"ranking": [[1, 2, 3, 4]]}, "completion 4 is not one of"),
    ({"ranking": [[1], [], [2, 3]]}, "must order each shown completion exactly once"),
    ({"vote": "left"}, "an A/B vote needs exactly 2 completions; this item has 3"),
    ({"edit": {"completion_id": 1, "text": "  "}}, "edit.text: empty"),
    ({"edit": {"completion_id": 1, "text": "a"}}, "unchanged from the completion"),
    ({"comments": {"1": "why"}}, "comments go with a rating"),
    ({"flag_reason": "bad"}, "without a flagged completion"),
    ({"skip": True, "ratings": {"1": 3}}, "a skipped item carries no ratings"),
    ({}, "nothing to save"),
    ({"stars": 5}, "unknown field 'stars'"),
    ({"ratings": {"1": 3}, "comments": {"1": "x" * 2001}}, "at most 2000 characters"),
])
def test_invalid_judgments_say_what_is_wrong(kw, message):
    with pytest.raises(JudgmentError, match=None) as err:
        j(**kw)
    assert message in str(err.value)


def test_vote_value_item_id_and_key_are_checked():
    with pytest.raises(JudgmentError, match="vote: one of left, right, tie, both_bad"):
        j(ITEMAB, vote="up")
    with pytest.raises(JudgmentError, match="does not match the item 7"):
        parse_judgment({"item_id": 8, "idempotency_key": KEY, "ratings": {"1": 3}}, ITEM2)
    with pytest.raises(JudgmentError, match="idempotency_key"):
        parse_judgment({"item_id": 7, "idempotency_key": "short", "ratings": {"1": 3}}, ITEM2)
    with pytest.raises(JudgmentError, match="JSON object"):
        parse_judgment([1, 2], ITEM2)


def test_form_fields_become_the_same_judgment():
    form = {"item_id": "7", "idempotency_key": KEY, "rating_1": "6", "rating_2": "", "comment_1": "ok",
            "rank_1": "2", "rank_2": "1", "rank_3": "2", "edit_base": "3", "edit_text": "c!", "flag_2": "1"}
    got = parse_form(form, ITEM2)
    assert got.ratings == {1: 6} and got.comments == {1: "ok"}
    assert got.ranking == [[2], [1, 3]] and got.edit == (3, "c!") and got.flags == [2]
    assert parse_form({"item_id": "7", "idempotency_key": KEY, "action": "skip", "rating_1": "3"}, ITEM2).skip
    with pytest.raises(JudgmentError, match="give every completion a rank"):
        parse_form({"item_id": "7", "idempotency_key": KEY, "rank_1": "1"}, ITEM2)
    with pytest.raises(JudgmentError, match="ranks go from 1"):
        parse_form({"item_id": "7", "idempotency_key": KEY, "rank_1": "1", "rank_2": "2", "rank_3": "4"}, ITEM2)
