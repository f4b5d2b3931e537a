"""`textgym export RUN OUT [--merge]`: a LoRA run's policy as a plain transformers folder, loaded offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    from textgym.app.config import parse_config
    from textgym.app.pipeline import train

    tmp = tmp_path_factory.mktemp("export")
    data = tmp / "p.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"say {w}:"}) + "\n" for w in "abcdefghij"))
    cfg = parse_config({"name": "lora", "model": "tiny-llama",
                        "env": {"id": "textgym/Text-v0", "num_envs": 4,
                                "kwargs": {"data": str(data), "reward": "length", "max_new_tokens": 3,
                                           "test_fraction": 0.5}},
                        "algo": {"lora": True, "learning_rate": 0.05, "kl_coef": 0.0, "minibatch_size": 4,
                                 "n_epochs": 1},
                        "train": {"iterations": 1}, "eval": {"n_episodes": 2, "before": False, "num_samples": 1},
                        "plots": False})
    return train(cfg, tmp / "runs").run_dir


def export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgym.app.cli", "export", *args], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=300)


def logits(model, tok, text="say a:"):
    x = tok(text, return_tensors="pt")
    with torch.no_grad():
        return model(**x).logits


def test_merged_export_loads_in_plain_transformers(lora_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from textgym.agents.common.checkpoint import load_policy

    out = tmp_path / "merged"
    res = export(str(lora_run), str(out), "--merge")
    assert res.returncode == 0, res.stderr[-2000:]
    assert not (out / "adapter_config.json").exists() and (out / "config.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    policy = load_policy(lora_run / "checkpoint")
    torch.testing.assert_close(logits(model, tok), logits(policy.model, tok), atol=1e-4, rtol=1e-4)
    assert model.generation_config.pad_token_id == tok.pad_token_id
    gen = pipeline("text-generation", str(out))
    text = gen("say a:", max_new_tokens=3, do_sample=False)[0]["generated_text"]
    assert text.startswith("say a:") and len(text) > len("say a:")
    card = (out / "README.md").read_text()
    assert "textgym/Text-v0" in card and "length" in card and "| score_mean |" in card
    assert export(str(lora_run), str(out), "--merge").returncode == 2  # exists: no silent overwrite


def test_unmerged_export_records_a_resolvable_base(lora_run, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "adapter"
    assert export(str(lora_run), str(out)).returncode == 0
    conf = json.loads((out / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == str(out.resolve() / "base")
    tok = AutoTokenizer.from_pretrained(out)
    peft_model = AutoPeftModelForCausalLM.from_pretrained(out)
    merged = tmp_path / "merged"
    assert export(str(lora_run), str(merged), "--merge").returncode == 0
    torch.testing.assert_close(logits(peft_model, tok), logits(AutoModelForCausalLM.from_pretrained(merged), tok),
                               atol=1e-4, rtol=1e-4)


def test_run_folder_models_have_model_cards(lora_run):
    card = (lora_run / "checkpoint" / "policy" / "README.md").read_text()
    assert "algorithm: `ppo`" in card and "reward: `length`" in card and "p.jsonl" in card
    assert "## Config" in card and "## Evaluation" in card


def test_export_keeps_the_chat_template(tmp_path):
    from transformers import AutoTokenizer

    from textgym.app.export import export_model
    from textgym.models import load

    model, tok = load("tiny-llama")
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    export_model(model, tok, tmp_path / "m")
    again = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert again.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "<user>hi"
