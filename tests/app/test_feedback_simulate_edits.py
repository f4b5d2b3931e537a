"""Simulated annotators edit: a rater-guided rewrite, sent through the HTTP API, exported as pairs and SFT rows."""

import numpy as np
import pytest

from textgym.app.feedback.simulate import judge, rewrite


def word_rater(prompts, completions):
    """+1 per 'good', -1 per 'bad'."""
    return np.array([sum((w == "good") - (w == "bad") for w in c.split()) for c in completions], dtype=np.float64)


def test_rewrite_is_a_greedy_search_over_one_word_changes():
    rng = np.random.default_rng(0)
    # step 1 candidates: delete a / bad / day -> -1, 0, -1; append a / day / good -> -1, -1, 0: the first best
    # ("a day", 0) wins; step 2: delete -> 0, 0; append a / day / good -> 0, 0, +1: "a day good"
    assert rewrite("a good day", " a bad day", word_rater, rng) == " a day good"
    assert rewrite("a good day", " a bad day", word_rater, rng, steps=1) == " a day"
    # nothing raises a constant rater's score: no edit
    assert rewrite("a good day", " a bad day", lambda p, c: np.zeros(len(c)), rng) is None
    # the vocabulary can be given (the item's words); an empty text only gets appended words
    assert rewrite("p", "", word_rater, rng, vocabulary=["good", "x"], steps=1) == "good"


def test_judge_edits_the_completion_it_perceives_as_best():
    item = {"id": 3, "completions": [{"id": 10, "text": "x"}, {"id": 11, "text": "y"}]}
    asked = []

    def editor(cid):
        asked.append(cid)
        return "better"

    out = judge(item, np.array([0.0, 1.0]), np.random.default_rng(0), 0.0, edit_rate=1.0, editor=editor)
    assert asked == [11] and out["edit"] == {"completion_id": 11, "text": "better"}
    assert "edit" not in judge(item, np.array([0.0, 1.0]), np.random.default_rng(0), 0.0, editor=editor)
    out = judge(item, np.array([0.0, 1.0]), np.random.default_rng(0), 0.0, edit_rate=1.0, editor=lambda c: None)
    assert "edit" not in out  # the rater found no better text: no edit is sent


def test_simulated_edits_are_stored_and_exported_as_edit_pairs_and_sft_rows(tmp_path):
    pytest.importorskip("fastapi")
    from textgym.app.feedback.db import Project
    from textgym.app.feedback.export import preference_pairs, sft_rows
    from textgym.app.feedback.serve import BackgroundServer
    from textgym.app.feedback.simulate import run_simulation

    p = Project(tmp_path / "fb.db", create=True, judgments_per_item=2)
    p.add_items([{"prompt": f"Say something good {i}:", "completions": [f" a bad day {i}", f" a day {i}"]}
                 for i in range(6)])
    tokens = {f"sim-{i}": p.add_annotator(f"sim-{i}") for i in range(2)}
    with BackgroundServer(p) as url:
        res = run_simulation(url, tokens, word_rater, noise=0.0, seed=0, edit_rate=1.0)
    assert res.errors == [] and len(res.acks) == 12
    assert res.edits == 12  # 'good' is in every prompt and completion set: an improvement always exists
    judgments = p.judgments()
    texts = {c["id"]: c["text"] for it in p.items() for c in it.completions}
    edits = [j["edit"] for j in judgments]
    assert all(e is not None for e in edits)
    # the best completion (" a day i", score 0) is the one rewritten, into one the rater scores higher
    assert all(texts[base].startswith(" a day") for base, _ in edits)
    assert all(word_rater([""], [new])[0] > word_rater([""], [texts[base]])[0] for base, new in edits)
    rows = sft_rows(p.items(), judgments)
    assert sorted(r["completion"] for r in rows) == sorted(new for _, new in edits)
    pairs = [r for r in preference_pairs(p.items(), judgments) if r["source"] == "edit"]
    assert len(pairs) == 12 and all(r["chosen_id"] is None for r in pairs)
    assert sorted(r["chosen"] for r in pairs) == sorted(new for _, new in edits)
    assert all(word_rater([""], [r["chosen"]])[0] > word_rater([""], [r["rejected"]])[0] for r in pairs)


def test_cli_edit_rate(tmp_path, capsys):
    pytest.importorskip("fastapi")
    import json

    from textgym.app.cli import main

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": "Say it twice twice", "completions": ["twice", "once"]}) + "\n"
                            for _ in range(3)))
    db = tmp_path / "fb.db"
    assert main(["feedback", "new", str(db), "--from-jsonl", str(rows), "--judgments-per-item", "1"]) == 0
    assert main(["feedback", "simulate", str(db), "--annotators", "1", "--rater", "length", "--noise", "0",
                 "--edit-rate", "1"]) == 0
    out = capsys.readouterr().out
    assert "stored 3 judgments (3 with an edit)" in out, out  # `length` counts words: appending one raises it
    assert main(["feedback", "simulate", str(db), "--edit-rate", "1.5"]) == 2
    assert "--edit-rate: a probability from 0 to 1" in capsys.readouterr().err
