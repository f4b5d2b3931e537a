"""`textgym train` with sb3-maskable-ppo on a masked env: its evaluations sample the env's allowed tokens."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from textgym.app.cli import main

MASKED = {
    "seed": 0,
    "model": "tiny-char",
    "env": {"id": "textgym/Addition-v0", "num_envs": 4, "kwargs": {"answer_alphabet_only": True}},
    "algorithm": "sb3-maskable-ppo",
    "algo": {"learning_rate": 0.003, "n_steps": 8, "batch_size": 32, "n_epochs": 1, "progress_bar": False},
    "train": {"iterations": 1},
    "eval": {"n_episodes": 8, "num_samples": 8},
}


def run(tmp_path, raw):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return main(["train", str(path), "--runs-dir", str(tmp_path / "runs")]), tmp_path / "runs" / "cfg"


def test_the_pipeline_evaluates_a_maskable_run_within_the_mask(tmp_path):
    pytest.importorskip("sb3_contrib")
    code, folder = run(tmp_path, MASKED)
    assert code == 0
    with open(folder / "eval.csv", newline="") as f:
        rows = {r["stage"]: r for r in csv.DictReader(f)}
    # the penalty of a disallowed token is -1 and Addition's scores lie in [0, 1]: no episode left the mask
    assert float(rows["before"]["score_mean"]) >= 0 and float(rows["after"]["score_mean"]) >= 0
    samples = [json.loads(line) for line in (folder / "samples_eval.jsonl").read_text().splitlines()]
    assert samples and all(set(s["completion"]) <= set("0123456789") for s in samples)
    # `textgym eval RUN` samples under the same mask
    assert main(["eval", str(folder), "--episodes", "8", "--output", str(tmp_path / "ev.json")]) == 0
    result = json.loads((tmp_path / "ev.json").read_text())
    assert result["metrics"]["score_mean"] >= 0, result["metrics"]


def test_a_missing_extra_is_one_config_error_line(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # import sb3_contrib now fails
    monkeypatch.delitem(sys.modules, "textgym.agents.algorithms.sb3_maskable_ppo", raising=False)
    monkeypatch.delitem(sys.modules, "textgym.agents.algorithms.sb3_maskable_policy", raising=False)
    code, _ = run(tmp_path, MASKED)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "config error at `algorithm`: sb3-maskable-ppo needs the optional extra 'sb3'" in err
    assert "pip install 'textgym[sb3]'" in err
