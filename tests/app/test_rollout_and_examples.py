"""Promises of the README that had no test: `textgym rollout` plays episodes, the examples run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from textgym.app.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _env_vars():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}


# ------------------------------------------------------------------ textgym rollout
def test_cli_rollout_plays_episodes_and_prints_their_mean_reward(capsys):
    args = ["rollout", "--env", "textgym/TokenCount-v0", "--model", "tiny-char", "--episodes", "3",
            "--max-new-tokens", "6", "--split", "train", "--seed", "4", "--threads", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("--- episode ") == 3 and "--- episode 3/3" in out
    prompts = re.findall(r"^prompt: +(.*)$", out, re.M)
    assert len(prompts) == 3 and all(re.fullmatch(r"count:\d=", p) for p in prompts), prompts
    rewards = [float(x) for x in re.findall(r"^reward: +(-?[\d.]+)$", out, re.M)]
    mean = float(re.search(r"mean reward over 3 episodes: (-?[\d.]+)", out).group(1))
    assert len(rewards) == 3 and all(0.0 <= r <= 1.0 for r in rewards)
    assert mean == pytest.approx(np.mean(rewards), abs=1.5e-3)  # printed with 3 decimals
    assert main(args) == 0  # seeded: the same episodes again
    assert re.findall(r"^(?:prompt|completion|reward):.*$", capsys.readouterr().out, re.M) == \
        re.findall(r"^(?:prompt|completion|reward):.*$", out, re.M)


# ------------------------------------------------------------------ examples
def test_ppo_synthetic_example_runs_and_saves_a_loadable_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "ppo_synthetic.py"), "--iterations", "2",
                           "--num-envs", "8", "--run-dir", str(run)], capture_output=True, text=True, timeout=600,
                          env=_env_vars(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"^before: \{.*'score_mean'", proc.stdout, re.M) and re.search(r"^after: +\{", proc.stdout, re.M)
    assert len(re.findall(r"^'count:\d=' -> ", proc.stdout, re.M)) == 2  # the test split's prompts, greedy
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # header + one row per iteration
    import gymnasium as gym

    from textgym.agents import PPO

    env = gym.make_vec("textgym/TokenCount-v0", num_envs=8, vectorization_mode="vector_entry_point",
                       autoreset_mode="Disabled")
    assert PPO.load(run / "final", env).iteration == 2


@pytest.mark.slow  # SFT, reward model and PPO stages with tiny models: ~1-2 min idle, several on a busy machine
def test_rlhf_pipeline_example_quick(tmp_path):
    import json

    out = tmp_path / "rlhf"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "rlhf_pipeline.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=1800, env=_env_vars(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"args", "sft", "reward_model", "ppo"}
    assert summary["args"]["quick"] is True and summary["args"]["policy"] == "tiny-llama"
