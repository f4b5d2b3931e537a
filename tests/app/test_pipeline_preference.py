"""The `preference:` stage of `textgym train` (DPO / IPO / KTO on pairs), with tiny models."""

from __future__ import annotations

import json

import pytest
import yaml

from textgym.app.cli import main
from textgym.app.config import ConfigError, parse_config

BASE = {
    "seed": 0,
    "model": "tiny-char",
    "env": {"id": "textgym/TokenCount-v0", "num_envs": 4},
    "eval": {"n_episodes": 4, "num_samples": 2},
    "plots": False,
}


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"id": f"r{i}", "prompt": f"count:{i % 5 + 1}=", "chosen": "a" * (i % 5 + 1), "rejected": "b" * 7}
            for i in range(40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def stage(pairs, **config):
    return {"data": {"path": str(pairs), "split": "train", "eval_split": "test"},
            "config": {"max_steps": 15, "batch_size": 8, "learning_rate": 3e-3, "beta": 0.5, "progress": False,
                       "add_eos": False, "lr_schedule": "constant", **config}}


def run(tmp_path, raw, name):
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    code = main(["train", str(cfg), "--runs-dir", str(tmp_path / "runs")])
    return code, tmp_path / "runs" / name


def test_dpo_stage_then_ppo_starts_from_the_dpo_model(tmp_path, pairs, capsys):
    raw = {**BASE, "preference": stage(pairs), "algorithm": "ppo",
           "algo": {"learning_rate": 1e-3, "progress_bar": False}, "train": {"iterations": 1}}
    code, folder = run(tmp_path, raw, "dpo-ppo")
    assert code == 0
    state = json.loads((folder / "run_state.json").read_text())
    assert state["stages"]["preference"] == "done" and state["stages"]["rl"] == "done"
    result = state["results"]["preference_train"]
    assert result["eval_before/loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy = reference
    assert result["eval/accuracy"] == 1.0 and result["eval/loss"] < result["eval_before/loss"]
    assert (folder / "preference" / "textgym_preference.json").is_file()
    assert (folder / "preference_metrics.csv").is_file()
    evals = json.loads((folder / "eval.json").read_text())
    assert {"before", "preference", "after"} <= set(evals) and evals["preference"]["kl_ref"] > 0
    assert "- preference (dpo, beta 0.5)" in (folder / "summary.md").read_text()
    assert "[preference] done" in capsys.readouterr().out


def test_preference_only_run_is_evaluated_from_its_model(tmp_path, pairs, capsys):
    raw = {**BASE, "preference": stage(pairs, loss_type="ipo", max_steps=3), "algorithm": "none"}
    code, folder = run(tmp_path, raw, "ipo")
    assert code == 0
    capsys.readouterr()
    assert main(["eval", str(folder), "--episodes", "4"]) == 0
    assert "score_mean" in capsys.readouterr().out


def test_bad_preference_sections_fail_at_load(pairs):
    with pytest.raises(ConfigError, match="preference.config.*loss_type must be one of dpo, ipo, kto"):
        parse_config({**BASE, "algorithm": "none", "preference": stage(pairs, loss_type="orpo")})
    with pytest.raises(ConfigError, match="give one of preference.data.path"):
        parse_config({**BASE, "algorithm": "none", "preference": {"data": {}}})
    with pytest.raises(ConfigError, match="preference.config.bta.*beta"):
        parse_config({**BASE, "algorithm": "none", "preference": stage(pairs, bta=0.1)})
