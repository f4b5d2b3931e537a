"""`textgym train / eval / rollout` on a conversation env (GuessNumber, tiny-char): success rate, turns, messages."""

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
CONFIG = """\
name: gn
model: tiny-char
env:
  id: textgym/GuessNumber-v0
  num_envs: 4
  kwargs: {high: 10, max_turns: 3, max_turn_tokens: 2, max_new_tokens: 60, valid_reward: 0.1}
eval_env:
  kwargs: {split: test}
algorithm: grpo
algo: {group_size: 2, log_samples: 2}
train: {iterations: 2}
eval: {n_episodes: 6, num_samples: 2}
plots: false
"""


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgym.app.cli", *args, "--threads", "1"], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=300)


def check_conversation(row: dict, prompt_start: str = "i picked a whole number from 1 to 10") -> None:
    msgs = row["messages"]
    assert msgs[0]["role"] == "user" and msgs[0]["content"].startswith(prompt_start)
    roles = [m["role"] for m in msgs]
    assert roles[1::2] == ["assistant"] * len(roles[1::2]) and roles[2::2] == ["user"] * len(roles[2::2])
    assert row["turns"] == roles.count("assistant") and 1 <= row["turns"] <= 3
    # solving pays >= 1 - 0.5 * 2/3; otherwise at most 3 valid guesses of 0.1
    assert row["solved"] == (row["score"] > 0.5)
    if row["solved"]:
        assert msgs[-1] == {"role": "user", "content": "correct!"}


def test_train_eval_and_rollout_take_a_conversation_env(tmp_path):
    cfg = tmp_path / "gn.yaml"
    cfg.write_text(CONFIG)
    runs = tmp_path / "runs"
    res = run_cli("train", str(cfg), "--runs-dir", str(runs))
    assert res.returncode == 0, res.stderr[-3000:]
    run = runs / "gn"
    evals = json.loads((run / "eval.json").read_text())
    assert set(evals) == {"before", "after"}
    for m in evals.values():
        assert m["n_episodes"] == 6 and 1 <= m["turns_mean"] <= 3
        k = round(m["success_rate"] * 6)
        assert abs(m["success_rate"] - k / 6) < 1e-12
        assert 0 <= m["success_ci95_low"] <= m["success_rate"] <= m["success_ci95_high"] <= 1
    assert "success_rate" in res.stdout and "turns_mean" in res.stdout  # the before/after table
    rows = [json.loads(ln) for ln in (run / "samples_eval.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["before", "before", "after", "after"]
    for r in rows:
        check_conversation(r)
        assert r["completion"].startswith("assistant: ")  # the turns after the prompt, on one line
    train_rows = [json.loads(ln) for ln in (run / "samples.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in train_rows] == [1, 1, 2, 2]
    for r in train_rows:
        check_conversation(r)

    res = run_cli("eval", str(run), "--episodes", "4")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "success_rate" in res.stdout and "assistant: " in res.stdout

    res = run_cli("rollout", "--env", "textgym/GuessNumber-v0", "--model", "tiny-char", "--episodes", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "completion: assistant: " in res.stdout and "turns" in res.stdout


def test_a_bad_conversation_env_argument_exits_2_naming_it(tmp_path):
    cfg = tmp_path / "gn.yaml"
    cfg.write_text(CONFIG.replace("valid_reward: 0.1", "max_turn: 3"))
    res = run_cli("train", str(cfg), "--runs-dir", str(tmp_path / "runs"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "env.kwargs.max_turn" in res.stderr and "max_turns" in res.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("algorithm", ["ppo", "rloo", "reinforce"])
def test_every_token_algorithm_trains_on_a_conversation_env_from_a_config(tmp_path, algorithm):
    from textgym.app.config import parse_config
    from textgym.app.pipeline import train

    raw = yaml.safe_load(CONFIG)
    raw["algorithm"], raw["algo"] = algorithm, {"log_samples": 1}
    raw["eval"] = {"n_episodes": 2, "before": False, "num_samples": 1}
    raw["train"] = {"iterations": 1}
    res = train(parse_config(raw), tmp_path / "runs")
    m = res.evals["after"]
    assert m["success_rate"] in (0.0, 0.5, 1.0) and 1 <= m["turns_mean"] <= 3
    (row,) = [json.loads(ln) for ln in (res.run_dir / "samples.jsonl").read_text().splitlines()]
    assert row["iteration"] == 1
    check_conversation(row)
