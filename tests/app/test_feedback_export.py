"""Preference pairs and SFT rows from judgments: each source, the majority rule, splits, the files."""

import json

from textgym.app.feedback.db import Item
from textgym.app.feedback.export import judgment_pairs, preference_pairs, sft_rows, split_of, write_jsonl

ITEMS = [Item(1, "P1", [{"id": 1, "position": 0, "text": "a"}, {"id": 2, "position": 1, "text": "b"},
                        {"id": 3, "position": 2, "text": "c"}]),
         Item(2, "P2", [{"id": 4, "position": 0, "text": "left"}, {"id": 5, "position": 1, "text": "right"}])]


def jd(jid, who, item_id, **kw):
    return {"id": jid, "annotator": who, "item_id": item_id, "skipped": False, "ratings": {}, "ranks": {},
            "vote": None, "edit": None, "flags": [], **kw}


def test_pairs_of_one_judgment_each_source_and_priority():
    # ranking 1 > 2 = 3: pairs (1,2), (1,3); ratings 3: 7 vs 2: 2 gives (3,2) (margin 5); the ranking's
    # (1,3) wins over the ratings' opposite view (3: 7 > 1: 4 by 3)
    j = jd(1, "A", 1, ranks={1: 1, 2: 2, 3: 2}, ratings={1: 4, 2: 2, 3: 7})
    assert sorted(judgment_pairs(j, [1, 2, 3])) == [(1, 2, "ranking"), (1, 3, "ranking"), (3, 2, "rating")]
    assert judgment_pairs(j, [1, 2, 3], margin=6) == [(1, 2, "ranking"), (1, 3, "ranking")]
    assert judgment_pairs(jd(2, "A", 2, vote="right"), [4, 5]) == [(5, 4, "vote")]
    assert judgment_pairs(jd(3, "A", 2, vote="tie"), [4, 5]) == []
    assert judgment_pairs(jd(4, "A", 2, vote="both_bad", ratings={4: 1, 5: 2}), [4, 5]) == []
    assert judgment_pairs(jd(5, "A", 2, vote="left", skipped=True), [4, 5]) == []


def test_majority_aggregation_and_raw_rows():
    js = [jd(1, "A", 2, vote="left"), jd(2, "B", 2, vote="left"), jd(3, "C", 2, vote="right"),
          jd(4, "A", 1, ranks={1: 1, 2: 2, 3: 3}), jd(5, "B", 1, ranks={2: 1, 1: 2, 3: 3})]
    rows = preference_pairs(ITEMS, js)
    by = {(r["item_id"], r["chosen_id"], r["rejected_id"]): r for r in rows}
    # item 2: left 2 votes vs right 1 -> one row, "left" chosen
    r = by[(2, 4, 5)]
    assert (r["prompt"], r["chosen"], r["rejected"]) == ("P2", "left", "right")
    assert r["annotators"] == ["A", "B"] and (r["votes_for"], r["votes_against"]) == (2, 1)
    # item 1: (1,2) split 1:1 -> dropped; (1,3) and (2,3) unanimous
    assert (1, 1, 2) not in by and (1, 2, 1) not in by
    assert by[(1, 1, 3)]["votes_for"] == 2 and by[(1, 2, 3)]["source"] == "ranking"
    assert len(rows) == 3
    raw = preference_pairs(ITEMS, js, aggregate="none")
    assert len(raw) == 3 + 3 + 3  # 3 votes, 3 + 3 ranking pairs
    assert {r["id"] for r in raw} >= {"2:4>5:A", "2:5>4:C", "1:2>1:B"}


def test_edits_become_pairs_and_sft_rows(tmp_path):
    js = [jd(1, "A", 1, edit=(2, "b, but better"), ratings={1: 5}), jd(2, "B", 1, edit=(2, "b!"), skipped=True)]
    pairs = preference_pairs(ITEMS, js)
    assert [(p["chosen"], p["rejected"], p["source"], p["chosen_id"]) for p in pairs] == [
        ("b, but better", "b", "edit", None)]
    rows = sft_rows(ITEMS, js)
    assert rows == [{"id": "1:edit:A", "prompt": "P1", "completion": "b, but better", "item_id": 1,
                     "base_completion_id": 2, "annotator": "A", "split": split_of(1)}]
    out = tmp_path / "sub" / "sft.jsonl"
    assert write_jsonl(rows, out) == 1
    assert json.loads(out.read_text()) == rows[0]
    assert [p.name for p in out.parent.iterdir()] == ["sft.jsonl"]  # no temporary file left


def test_split_is_a_stable_hash_of_the_item():
    splits = [split_of(i) for i in range(1, 1001)]
    assert splits[:3] == [split_of(1), split_of(2), split_of(3)]
    counts = {s: splits.count(s) for s in ("train", "validation", "test")}
    assert sum(counts.values()) == 1000 and 740 <= counts["train"] <= 860 and counts["test"] >= 60
