"""Bad run configs through the real `textgym train` command (issue 14, part 4).

Each case is one fresh process: exit status 2, one line on stderr naming the key
and what to do, no traceback, and no run folder (nothing is created before the
config, its tokenizer, envs and rewards passed the checks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}

BASE = {"model": "tiny-char", "env": {"id": "textgym/Copy-v0", "num_envs": 2, "kwargs": {}},
        "algo": {"progress_bar": False, "minibatch_size": 2}, "train": {"iterations": 1},
        "eval": {"n_episodes": 2, "before": False}, "plots": False}

#: A module registering rewards that fail in each way the issue lists.
BAD_REWARDS = '''
import numpy as np
from textgym.reward_api import RewardFunction, register


@register("test-raises")
class Raises(RewardFunction):
    name = "test-raises"

    def score(self, prompts, completions, *, references=None, **columns):
        raise ZeroDivisionError("boom")


@register("test-nan")
class NaN(RewardFunction):
    name = "test-nan"

    def score(self, prompts, completions, *, references=None, **columns):
        return np.full(len(completions), np.nan, np.float32)


@register("test-shape")
class Shape(RewardFunction):
    name = "test-shape"

    def score(self, prompts, completions, *, references=None, **columns):
        return np.zeros(len(completions) + 2, np.float32)
'''


def _set(raw: dict, key: str, value) -> dict:
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return raw


def run_train(tmp_path: Path, raw: dict) -> subprocess.CompletedProcess:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    (tmp_path / "badrewards.py").write_text(BAD_REWARDS)
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), ENV.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "textgym", "train", str(cfg), "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def assert_one_line_exit_2(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "Warning" not in ln]
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


CASES = {
    "max_new_tokens 0": ("env.kwargs.max_new_tokens", 0, ["`env.kwargs.max_new_tokens`", "integer >= 1", "got 0"]),
    "max_new_tokens -5": ("env.kwargs.max_new_tokens", -5, ["`env.kwargs.max_new_tokens`", "got -5"]),
    "max_new_tokens ten": ("env.kwargs.max_new_tokens", "ten", ["`env.kwargs.max_new_tokens`", "'ten'"]),
    "max_prompt_length -1": ("env.kwargs.max_prompt_length", -1, ["`env.kwargs.max_prompt_length`", "got -1"]),
    "samples empty": ("env.kwargs.samples", [], ["`env.kwargs.samples`", "non-empty list"]),
    "samples without prompt": ("env.kwargs.samples", [{"text": "hi"}], ["`env.kwargs.samples[0]`", "'prompt'"]),
    "negative learning rate": ("algo.learning_rate", -0.001, ["`algo.learning_rate`", "learning_rate must be a number >= 0"]),
    "shuffle string": ("env.kwargs.shuffle", "no", ["`env.kwargs.shuffle`", "true or false"]),
    "vocab_size too small": ("env.kwargs.vocab_size", 10, ["`env.kwargs`", "vocab_size=10", "omit vocab_size"]),
    "reward raises": ("env.kwargs.reward", "test-raises", ["`env.kwargs.reward`", "ZeroDivisionError", "boom"]),
    "reward NaN": ("env.kwargs.reward", "test-nan", ["`env.kwargs.reward`", "must be finite"]),
    "reward wrong shape": ("env.kwargs.reward", "test-shape", ["`env.kwargs.reward`", "shape (3,)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_value_exits_2_with_one_line_before_any_work(tmp_path, case):
    key, value, needles = CASES[case]
    raw = _set(json.loads(json.dumps(BASE)), key, value)
    raw["imports"] = ["badrewards"]
    assert_one_line_exit_2(run_train(tmp_path, raw), *needles)
    assert not (tmp_path / "runs" / "run").exists()


@pytest.mark.parametrize("content", ["", '{"text": "a", "completion": "b"}\n'], ids=["empty", "no-prompt"])
def test_a_bad_sft_file_exits_2(tmp_path, content):
    data = tmp_path / "sft.jsonl"
    data.write_text(content)
    raw = {**json.loads(json.dumps(BASE)), "sft": {"data": {"path": str(data)}}}
    line = assert_one_line_exit_2(run_train(tmp_path, raw), "`sft.data.path`")
    assert ("holds no rows" in line) if not content else ("'prompt'" in line and "row 1" in line)
    assert not (tmp_path / "runs").exists()


def test_an_empty_model_folder_exits_2_without_talking_about_sentencepiece(tmp_path):
    (tmp_path / "empty").mkdir()
    raw = {**json.loads(json.dumps(BASE)), "model": str(tmp_path / "empty")}
    line = assert_one_line_exit_2(run_train(tmp_path, raw), "`model`", "is empty", "config.json")
    assert "sentencepiece" not in line.lower()
    assert not (tmp_path / "runs").exists()
