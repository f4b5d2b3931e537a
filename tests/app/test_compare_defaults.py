"""`textgym compare` defaults that learn on the tiny models, every effective setting in the report, no fake CIs."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from textgym.app.compare_presets import MODEL_PRESETS

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def compare(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgym.app.cli", "compare", *args, "--no-progress"],
                          capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


def test_report_lists_every_setting_and_marks_two_seed_ranges(tmp_path):
    res = compare("--algos", "ppo,grpo", "--seeds", "2", "--budget", "96", "--num-envs", "8", "--eval-episodes", "4",
                  "--set", "algo.grpo.group_size=4", "--out", str(tmp_path / "c"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    report = (tmp_path / "c" / "report.md").read_text()
    settings = report.split("## Settings")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in settings.splitlines() if line.startswith("| ") and not line.startswith("| setting")}
    assert rows["learning_rate"] == ["`0.003`", "`0.003`"] and rows["kl_coef"][0] == "`0.0`"
    assert rows["beta"] == ["-", "`0.0`"]  # GRPO's KL weight is `beta`
    assert rows["group_size"] == ["-", "`4`"] and "n_epochs" in rows and "gamma" in rows
    assert "model preset" in report
    table = report.split("## Results")[1].split("\n## ")[0]
    assert "†" in table and "not a confidence interval" in table
    assert not re.search(r"\de[+-]\d", table)  # no 1.23e+03
    with open(tmp_path / "c" / "table.csv", newline="") as f:
        for row in csv.DictReader(f):
            assert row["score_ci_lo"] == "nan" and float(row["score_min"]) <= float(row["score_max"])


def test_overrides_beat_the_preset():
    from textgym.app.compare import CompareConfig, algorithm_config

    cfg = CompareConfig(algos=["ppo"], seeds=1, algo_overrides={"*": {"learning_rate": 1e-4}})
    conf = algorithm_config(cfg, "ppo", "ppo", 0, "/tmp/x")
    assert conf.learning_rate == 1e-4 and conf.kl_coef == MODEL_PRESETS["tiny-char"][0]["kl_coef"]
    plain = algorithm_config(CompareConfig(algos=["ppo"], seeds=1, model="some/pretrained"), "ppo", "ppo", 0, "/x")
    assert plain.learning_rate == 1e-5  # pretrained models keep the class defaults


@pytest.mark.slow  # ~1-2 minutes: a real comparison budget
def test_the_default_comparison_learns(tmp_path):
    res = compare("--algos", "ppo,grpo,reinforce", "--seeds", "2", "--budget", "4000", "--out", str(tmp_path / "c"),
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / "c" / "table.csv", newline="") as f:
        for row in csv.DictReader(f):
            assert float(row["score_mean"]) > float(row["score_start"]) + 0.05, row
