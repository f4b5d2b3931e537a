"""Your own prompt files: TextGenEnv(tok, "file.jsonl", reward), textgym/Text-v0, the held-out split rule."""

from __future__ import annotations

import hashlib
import json

import gymnasium as gym
import pytest

import textgym
from textgym.data_files import load_prompts, prompt_split

PROMPTS = [f"Write a haiku about {t}:" for t in ("rain", "snow", "moon", "river", "pine", "frog", "crow", "tea")]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def haiku(tmp_path):
    return write_jsonl(tmp_path / "haiku.jsonl", [{"prompt": p, "topic": p.split()[-1][:-1]} for p in PROMPTS])


def test_text_gen_env_takes_a_file_path(haiku, gpt2_tok):
    env = textgym.TextGenEnv(gpt2_tok, str(haiku), lambda p, c: 0.0, shuffle=False)
    assert len(env.data) == len(PROMPTS)  # every row, not the characters of the path
    _, info = env.reset(options={"sample_index": 2})
    assert info["prompt"] == PROMPTS[2]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_other_formats_and_column_renames(tmp_path, fmt, gpt2_tok):
    import pandas as pd

    df = pd.DataFrame({"q": PROMPTS[:3], "a": ["x", "y", "z"]})
    path = tmp_path / f"d.{fmt}"
    {"csv": lambda: df.to_csv(path, index=False), "parquet": lambda: df.to_parquet(path),
     "json": lambda: df.to_json(path, orient="records", lines=True)}[fmt]()
    rows = load_prompts(path, "all", prompt_column="q", reference_column="a")
    assert rows == [{"prompt": p, "references": [r]} for p, r in zip(PROMPTS[:3], "xyz")]


def test_hash_rule_is_the_documented_one():
    for p in PROMPTS:
        bucket = int.from_bytes(hashlib.sha256(f"textgym-v1\0text:{p}".encode()).digest()[:8], "big") % 10000
        assert prompt_split(p, 0.5) == ("test" if bucket < 5000 else "train")
        assert prompt_split(p, 0.1) == ("test" if bucket < 1000 else "train")


def test_hash_split_is_disjoint_and_complete(haiku):
    train = [r["prompt"] for r in load_prompts(haiku, "train", test_fraction=0.5)]
    test = [r["prompt"] for r in load_prompts(haiku, "test", test_fraction=0.5)]
    assert sorted(train + test) == sorted(PROMPTS) and not set(train) & set(test)
    assert test == [p for p in PROMPTS if prompt_split(p, 0.5) == "test"]


def test_split_column_and_split_files(tmp_path):
    rows = [{"prompt": p, "split": "test" if i < 2 else "train"} for i, p in enumerate(PROMPTS)]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    assert [r["prompt"] for r in load_prompts(path, "test")] == PROMPTS[:2]
    assert "split" not in load_prompts(path, "test")[0]  # not passed to the reward
    folder = tmp_path / "dir"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"prompt": p} for p in PROMPTS[:5]])
    write_jsonl(folder / "test.jsonl", [{"prompt": p} for p in PROMPTS[5:]])
    assert [r["prompt"] for r in load_prompts(folder, "test")] == PROMPTS[5:]
    assert len(load_prompts(folder, "all")) == len(PROMPTS)
    pairs = {"train": folder / "train.jsonl", "test": folder / "test.jsonl"}
    assert [r["prompt"] for r in load_prompts(pairs, "train")] == PROMPTS[:5]


def test_clear_errors(tmp_path, haiku):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_prompts(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="no prompt column 'text'"):
        load_prompts(haiku, prompt_column="text")
    one = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "x"}])
    with pytest.raises(ValueError, match="holds no rows"):
        load_prompts(one, "test" if prompt_split("x", 0.01) == "train" else "train", test_fraction=0.01)
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        load_prompts(haiku, "validation")


def test_text_env_has_no_default_reward_and_passes_columns(haiku, gpt2_tok):
    with pytest.raises(ValueError, match="no default reward"):
        gym.make("textgym/Text-v0", tokenizer=gpt2_tok, data=str(haiku))
    seen = {}

    def reward(prompts, completions, *, topic=None, **_):
        seen["topic"] = topic
        return [1.0] * len(prompts)

    env = gym.make("textgym/Text-v0", tokenizer=gpt2_tok, data=str(haiku), reward=reward, split="all",
                   max_new_tokens=1, shuffle=False)
    env.reset(options={"sample_index": 1})
    *_, info = env.step(5)
    assert seen["topic"] == ["snow"]
    venv = gym.make_vec("textgym/Text-v0", num_envs=2, vectorization_mode="vector_entry_point", tokenizer=gpt2_tok,
                        data=str(haiku), reward=reward, split="test", test_fraction=0.5)
    assert sorted(venv.unwrapped.data.prompts) == sorted(p for p in PROMPTS if prompt_split(p, 0.5) == "test")
