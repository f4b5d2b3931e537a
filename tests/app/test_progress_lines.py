"""``--no-progress`` replaces the RL bar by short lines (first and last iteration, then at least every
``PROGRESS_LINE_EVERY_S``); ``-q`` prints none."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import textgym.app.output as output
from textgym.app.pipeline_rl import RLStage

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
CONFIG = """name: lines
model: tiny-char
env: {id: textgym/TokenCount-v0, num_envs: 2, kwargs: {max_new_tokens: 4}}
algo: {minibatch_size: 2, n_epochs: 1}
train: {iterations: 3}
eval: {n_episodes: 2, num_samples: 0, before: false}
plots: false
"""


def test_the_lines_come_at_the_first_and_last_iteration_and_every_30_s(monkeypatch, capsys):
    clock = iter([100.0, 110.0, 131.0, 140.0, 200.0])  # the perf_counter of iterations 1..5
    monkeypatch.setattr(output, "_LINES", True)
    monkeypatch.setattr("textgym.app.pipeline_rl.time.perf_counter", lambda: next(clock))
    stage = SimpleNamespace(_rl_t0=95.0, _line_at=None)
    for it in range(1, 6):
        algo = SimpleNamespace(iteration=it, num_timesteps=8 * it)
        RLStage._progress_line(stage, algo, {"reward/score": 0.25 * it}, "iterations", 5)
    # 1: first; 2: 10 s after; 3: 31 s after the last line; 4: 9 s after; 5: the last
    assert capsys.readouterr().out.splitlines() == [
        "[rl] iteration 1/5, 8 tokens, mean reward 0.25, 5 s",
        "[rl] iteration 3/5, 24 tokens, mean reward 0.75, 36 s",
        "[rl] iteration 5/5, 40 tokens, mean reward 1.25, 105 s"]
    monkeypatch.setattr(output, "_LINES", False)  # a bar (or -q): no lines
    RLStage._progress_line(stage, SimpleNamespace(iteration=5, num_timesteps=40), {}, "iterations", 5)
    assert capsys.readouterr().out == ""


@pytest.mark.slow  # two short training runs in subprocesses
def test_no_progress_prints_iteration_lines_and_quiet_does_not(tmp_path):
    cfg = tmp_path / "lines.yaml"
    cfg.write_text(CONFIG)
    args = [sys.executable, "-m", "textgym.app.cli", "train", str(cfg), "--runs-dir"]
    res = subprocess.run([*args, str(tmp_path / "a"), "--no-progress"], capture_output=True, text=True, env=ENV,
                         cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("[rl] iteration")]
    line = r"\[rl\] iteration {}/3, \d+ tokens, mean reward [-0-9.e]+, \d+ s"
    assert re.fullmatch(line.format(1), lines[0]) and re.fullmatch(line.format(3), lines[-1]), res.stdout
    res = subprocess.run([*args, str(tmp_path / "b"), "-q"], capture_output=True, text=True, env=ENV, cwd=ROOT,
                         timeout=300)
    assert res.returncode == 0 and "[rl] iteration" not in res.stdout
