"""Small everyday frictions: rollout's default split, useful help() of the algorithms, dir(textgym.agents),
the SFT-only example's rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_rollout_on_a_synthetic_task_uses_a_split_it_has():
    res = subprocess.run([sys.executable, "-m", "textgym.app.cli", "rollout", "--env", "textgym/TokenCount-v0",
                          "--model", "tiny-char", "--episodes", "2", "--max-new-tokens", "4"], capture_output=True,
                         text=True, env=ENV, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "mean reward over 2 episodes" in res.stdout


def test_help_of_every_algorithm_init_says_what_to_pass():
    import textgym.agents as A

    for name in ("PPO", "A2C", "NLPO", "REINFORCE", "RLOO", "GRPO", "SB3PPO", "SB3A2C", "SFTTrainer",
                 "RewardModelTrainer"):
        doc = getattr(A, name).__init__.__doc__ or ""
        assert "Args:" in doc and "config" in doc, name


def test_dir_of_agents_lists_the_public_names():
    code = "import textgym.agents as A; print(' '.join(dir(A)))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                           timeout=120).stdout.split()
    assert {"PPO", "PPOConfig", "GRPO", "SFTTrainer", "RewardModelTrainer", "LMActorCritic"} <= set(names)


def test_sft_only_example_trains_on_rows_without_a_leading_space(gpt2_tok):
    from textgym.agents.trainers.sft_data import task_rows
    from textgym.models import load_tokenizer

    text = (ROOT / "examples" / "configs" / "sft_only.yaml").read_text()
    assert "Known problem" not in text
    cfg = yaml.safe_load(text)
    rows = task_rows(cfg["sft"]["data"]["task"], load_tokenizer(cfg["model"]), "train")
    assert rows and all(r["prompt"].endswith("=") and r["completion"] == r["prompt"][5:-1] for r in rows[:50])
