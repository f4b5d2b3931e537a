"""``textgym train`` reads a feedback project: ``reward_model.data.feedback`` and ``sft.data.feedback``."""

import pytest

from textgym.app.pipeline import preference_rows
from textgym.app.feedback.db import Project
from textgym.app.feedback.export import split_of, training_sft_rows
from textgym.app.feedback.judgments import parse_judgment
from textgym.app.config import ConfigError, parse_config


@pytest.fixture()
def judged(tmp_path):
    p = Project(tmp_path / "fb.db", create=True, judgments_per_item=1)
    p.add_items([{"prompt": f"p{i}", "completions": [f"good {i}", f"bad {i}"]} for i in range(40)])
    who = p.authenticate(p.add_annotator("ann")).id
    for it in p.items():
        a, b = it.completion_ids
        p.submit(who, parse_judgment({"item_id": it.id, "idempotency_key": f"key-{it.id:06d}", "vote": "left",
                                      "edit": {"completion_id": b, "text": f"better {it.id}"}}, it))
    return p


def raw(**sections):
    return {"model": "tiny-gpt2", "env": {"id": "textgym/TokenCount-v0"}, "train": {"iterations": 1}, **sections}


def test_reward_model_stage_reads_the_project(judged):
    cfg = parse_config(raw(reward_model={"model": "tiny-gpt2", "data": {"feedback": str(judged.path),
                                                                         "split": "train", "eval_split": "test"}}))
    train = preference_rows(cfg.reward_model.data, "train")
    test = preference_rows(cfg.reward_model.data, "test", limit=2)
    n_train = sum(split_of(i) == "train" for i in range(1, 41))
    assert len(train) == 2 * n_train  # per item: the vote's pair and the edit's pair
    assert {(r["chosen"].split()[0], r["rejected"].split()[0]) for r in train} == {("good", "bad"), ("better", "bad")}
    assert len(test) == 2 and all(split_of(r["item_id"]) == "test" for r in test)


def test_sft_stage_reads_the_edits(judged):
    cfg = parse_config(raw(sft={"data": {"feedback": str(judged.path), "split": "all"}}))
    assert cfg.sft.data.feedback == str(judged.path) and cfg.sft.data.task is None
    rows = training_sft_rows(cfg.sft.data.feedback, cfg.sft.data.split)
    assert len(rows) == 40 and rows[0]["prompt"] == "p0" and rows[0]["completion"] == "better 1"


@pytest.mark.parametrize("section, message", [
    ({"reward_model": {"model": "tiny-gpt2", "data": {"feedback": "nowhere.db"}}}, "no such feedback project"),
    ({"reward_model": {"model": "tiny-gpt2", "data": {"feedback": "{db}", "dataset": "hh-rlhf-harmless"}}},
     "give one of reward_model.data.path"),
    ({"reward_model": {"model": "tiny-gpt2", "data": {"feedback": "{db}", "split": "dev"}}}, "split"),
    ({"sft": {"data": {"feedback": "{db}", "path": "{db}"}}}, "give one of sft.data.task, sft.data.path"),
    ({"sft": {"data": {"feedback": "nowhere.db"}}}, "no such feedback project"),
])
def test_bad_feedback_sources_are_config_errors(judged, section, message):
    import json

    section = json.loads(json.dumps(section).replace("{db}", str(judged.path)))
    with pytest.raises(ConfigError) as err:
        parse_config(raw(**section))
    assert message in str(err.value)
