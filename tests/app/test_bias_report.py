"""Bias reports: `textgym eval --bias` end to end (subprocess, offline), bad input, the `bias:` run-config section
(probes before / sft / after, summary.md, before_after.png), counterfactual SFT, the summary table by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from textgym.app.bias_report import BiasSettings, summary_section
from textgym.app.cli import main
from textgym.app.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["--set", "bias.crows_max_pairs=24", "--set", "bias.bold_per_group=2", "--set", "bias.bold_domains=[gender]",
         "--set", "bias.bold_max_new_tokens=4", "--set", "bias.batch_size=8"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}  # TEXTGYM_SENTIMENT_MODEL: the tiny one
    return subprocess.run([sys.executable, "-m", "textgym.app.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def test_eval_bias_on_a_tiny_model_end_to_end_offline(tmp_path):
    out = tmp_path / "report"
    res = run_cli("eval", "tiny-gpt2", "--bias", "--bias-out", str(out), *SMALL)
    assert res.returncode == 0, res.stderr
    assert "CrowS-Pairs stereotype score" in res.stdout and "overall" in res.stdout
    assert "gender/American_actresses" in res.stdout and "largest gap" in res.stdout
    report = json.loads((out / "bias.json").read_text())
    assert report["crows"]["overall"]["n"] == 24
    assert sum(t["n"] for t in report["crows"]["by_type"].values()) == 24
    assert 0.0 <= report["metrics"]["bias/crows_score"] <= 100.0
    assert set(report["bold"]["gaps"]) == {"sentiment", "vader"}
    assert len(report["bold"]["samples"]) == 4
    for name in ("crows_pairs.png", "bold_sentiment.png", "bold_vader.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    assert "NaN" not in (out / "bias.json").read_text()


@pytest.mark.parametrize("bad, key", [("bias.scorers=[textblob]", "bias"), ("bias.bold_per_grup=2", "bold_per_grup"),
                                      ("eval.n_episodes=3", "eval.n_episodes")])
def test_eval_bias_bad_settings_exit_2_with_one_line_before_any_work(bad, key, capsys, tmp_path):
    assert main(["eval", "tiny-gpt2", "--bias", "--bias-out", str(tmp_path / "r"), "--set", bad]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_bias_section_of_a_run_config():
    base = {"model": "tiny-char", "env": {"id": "textgym/TokenCount-v0"}, "train": {"iterations": 1}}
    cfg = parse_config({**base, "bias": {"bold_per_group": 3, "scorers": ["vader"]}})
    assert cfg.bias == BiasSettings(bold_per_group=3, scorers=["vader"])
    assert parse_config(base).bias is None
    with pytest.raises(ConfigError, match="crows_method must be 'shared' or 'full'"):
        parse_config({**base, "bias": {"crows_method": "pll"}})
    with pytest.raises(ConfigError, match=r"unknown crows_types \['sex'\]"):
        parse_config({**base, "bias": {"crows_types": ["sex"]}})
    with pytest.raises(ConfigError, match="unknown bold_domains"):
        parse_config({**base, "bias": {"bold_domains": ["sports"]}})


def test_the_summary_section_by_hand():
    evals = {"before": {"score_mean": 0.5, "bias/crows_score": 60.0, "bias/crows_score_lo": 50.0,
                        "bias/crows_score_hi": 70.0},
             "after": {"score_mean": 0.6, "bias/crows_score": 55.0, "bias/crows_score_lo": 45.0,
                       "bias/crows_score_hi": 65.0}}
    md = summary_section(evals)
    assert "| metric | before | after | change |" in md
    assert "| bias/crows_score | 60 [50, 70] | 55 [45, 65] | -5 |" in md
    assert summary_section({"before": {"score_mean": 1.0}}) == ""


def test_a_run_with_a_bias_section_probes_before_and_after_and_reports_the_change(tmp_path):
    raw = {
        "seed": 0, "model": "tiny-llama",
        "env": {"id": "textgym/IMDB-v0", "num_envs": 2,
                "kwargs": {"max_new_tokens": 4, "prompt_words": 8, "max_prompt_length": 24,
                           "reward": "sentiment-vader"}},
        "sft": {"data": {"env_kwargs": {"sentiment": "pos"}, "max_rows": 6, "counterfactual": True},
                "config": {"max_steps": 1, "batch_size": 4, "max_length": 48, "learning_rate": 0.01,
                           "progress": False}},
        "algorithm": "none",
        "eval": {"n_episodes": 2, "num_samples": 1},
        "bias": {"crows_max_pairs": 16, "bold_per_group": 2, "bold_domains": ["gender"], "bold_max_new_tokens": 3,
                 "scorers": ["vader"], "batch_size": 8},
    }
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(path), "--runs-dir", str(tmp_path / "runs")]) == 0
    run = tmp_path / "runs" / "b"
    ev = json.loads((run / "eval.json").read_text())
    assert list(ev) == ["before", "sft"]
    for stage in ev.values():
        assert 0.0 <= stage["bias/crows_score"] <= 100.0
        assert stage["bias/crows_score_lo"] <= stage["bias/crows_score"] <= stage["bias/crows_score_hi"]
        assert "bias/bold_vader_gap/gender" in stage
    for stage in ("before", "sft"):
        assert json.loads((run / "bias" / f"{stage}.json").read_text())["crows"]["overall"]["n"] == 16
        assert (run / "bias" / "crows_pairs.png").read_bytes()[:8] == PNG
    md = (run / "summary.md").read_text()
    assert "## Bias" in md and "| bias/crows_score |" in md and "| metric | before | sft | change |" in md
    assert (run / "plots" / "before_after.png").read_bytes()[:8] == PNG
    rows = json.loads((run / "run_state.json").read_text())["results"]["sft_train"]["rows"]
    assert rows > 6  # the counterfactual copies of the rows with a gendered word
    # `textgym eval RUN --bias` probes the run's trained (here: SFT) model with the run's bias section
    out = tmp_path / "again"
    assert main(["eval", str(run), "--bias", "--bias-out", str(out), "--set", "bias.bold=false"]) == 0
    again = json.loads((out / "bias.json").read_text())
    assert again["crows"] == json.loads((run / "bias" / "sft.json").read_text())["crows"]
    assert "bold" not in again
