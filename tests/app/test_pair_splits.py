"""Preference pairs from your own file: its ``split`` column decides the split (the generic hash rule only
without one), and the reward-model / preference stage says how many pairs each split got and by what rule."""

from __future__ import annotations

import json
from types import SimpleNamespace

import datasets as hf_datasets
import pytest

from textgym.app.config_schema import RewardModelDataConfig
from textgym.app.pipeline_supervised import SupervisedStages
from textgym.envs.datasets import load


def pairs_file(tmp_path, splits):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "chosen": "good", "rejected": "bad", **(
        {"split": s} if s is not None else {})}) + "\n" for i, s in enumerate(splits)))
    return path


def test_a_split_column_decides_for_files_and_datasets(tmp_path):
    path = pairs_file(tmp_path, ["train"] * 9 + ["test"] * 3)  # the trial's file: 9 train, 3 test
    assert list(load(str(path), "train")["prompt"]) == [f"p{i}" for i in range(9)]
    assert list(load(str(path), "test")["prompt"]) == ["p9", "p10", "p11"]
    assert len(load(str(path), "all")) == 12
    with pytest.raises(ValueError, match=r"unknown split 'validation'.*'split' column.*Valid splits: test, train"):
        load(str(path), "validation")
    ds = hf_datasets.Dataset.from_dict({"prompt": ["a", "b", "c"], "split": ["test", "train", "train"]})
    assert list(load(ds, "train")["prompt"]) == ["b", "c"]


def test_a_split_column_with_a_missing_value_is_an_error(tmp_path):
    path = pairs_file(tmp_path, ["train", None, "test"])
    with pytest.raises(ValueError, match=r"row\(s\) \[1\] have no value"):
        load(str(path), "train")


def test_without_a_split_column_the_hash_rule_still_applies(tmp_path):
    path = pairs_file(tmp_path, [None] * 40)
    parts = [list(load(str(path), s)["prompt"]) for s in ("train", "validation", "test")]
    assert sorted(sum(parts, [])) == sorted(f"p{i}" for i in range(40)) and len(parts[0]) < 40


def _said(data: RewardModelDataConfig, section: str = "reward_model") -> tuple[list[str], tuple]:
    said: list[str] = []
    fake = SimpleNamespace(cfg=SimpleNamespace(**{section: SimpleNamespace(data=data)}), _say=said.append)
    return said, SupervisedStages._pair_splits(fake, section)


def test_the_stage_says_how_many_pairs_each_split_got_and_why(tmp_path):
    path = pairs_file(tmp_path, ["train"] * 9 + ["test"] * 3)
    said, (train, held) = _said(RewardModelDataConfig(path=str(path), split="train", eval_split="test"))
    assert len(train) == 9 and len(held) == 3
    assert said == ["[reward model] 9 training pairs ('train'), 3 held-out pairs ('test'); split by the file's "
                    "'split' column"]
    said, (train, held) = _said(RewardModelDataConfig(path=str(path), split="train", eval_split=None, max_rows=4),
                                "preference")
    assert len(train) == 4 and held is None
    assert said[0].startswith("[preference] 4 training pairs ('train') (the first 4: max_rows), no held-out split")
    plain = pairs_file(tmp_path, [None] * 40)
    said, (train, held) = _said(RewardModelDataConfig(path=str(plain), split="train", eval_split="test"))
    assert f"{len(train)} training pairs ('train'), {len(held)} held-out pairs ('test'); split by 80/10/10 by a " \
           "hash of each row's id" in said[0]
