"""SFT data filters of a run config: ``sft.data.completion_words`` and ``sft.data.min_reward``."""

from __future__ import annotations

import pytest

from textgym.app.pipeline import Pipeline, RunFolderError
from textgym.app.config import ConfigError, parse_config


def pipeline(tmp_path, **data):
    raw = {
        "model": "tiny-gpt2",
        "env": {"id": "textgym/IMDB-v0", "num_envs": 2,
                "kwargs": {"reward": {"name": "regex", "pattern": "good"}, "max_new_tokens": 4}},
        "sft": {"data": data, "config": {"max_steps": 1, "progress": False}},
        "algorithm": "ppo",
        "train": {"iterations": 1},
    }
    return Pipeline(parse_config(raw, name="filt"), tmp_path / "run")


ROWS = [
    {"prompt": "a", "completion": " very good film , truly"},
    {"prompt": "b", "completion": " dull and long , not good"},
    {"prompt": "c", "completion": " good"},
]


def test_completion_words_keeps_a_window_and_the_leading_space(tmp_path):
    p = pipeline(tmp_path, completion_words=2)
    out = p._filter_sft_rows([dict(r) for r in ROWS])
    assert [r["completion"] for r in out] == [" very good", " dull and", " good"]


def test_min_reward_scores_the_shortened_completion_with_the_env_reward(tmp_path):
    # after cutting to 2 words only rows 0 and 2 still contain "good" (regex reward 1, else 0)
    p = pipeline(tmp_path, completion_words=2, min_reward=0.5)
    out = p._filter_sft_rows([dict(r) for r in ROWS])
    assert [r["prompt"] for r in out] == ["a", "c"]
    p = pipeline(tmp_path, min_reward=0.5)  # without the cut row 1 ends with "good" too
    assert [r["prompt"] for r in p._filter_sft_rows([dict(r) for r in ROWS])] == ["a", "b", "c"]


def test_min_reward_that_keeps_nothing_is_an_error_naming_the_key(tmp_path):
    p = pipeline(tmp_path, min_reward=2.0)
    with pytest.raises(RunFolderError, match=r"sft\.data\.min_reward=2\.0 keeps no row \(best score 1\.000\)"):
        p._filter_sft_rows([dict(r) for r in ROWS])


def test_completion_words_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="completion_words"):
        pipeline(tmp_path, completion_words=0)
