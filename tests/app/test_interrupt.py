"""Ctrl-C (SIGINT) and SIGTERM on a real `textgym train` process: the iteration in progress finishes, a
checkpoint is written at it, the resume command is printed, and the resumed progress bar continues."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
CONFIG = """name: stop
model: tiny-char
env: {id: textgym/TokenCount-v0, num_envs: 8}
algo: {minibatch_size: 8, n_epochs: 1}
train: {iterations: 400, save_every: 1000}
eval: {n_episodes: 2, before: false, num_samples: 0}
plots: false
"""


def rows(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def start(tmp_path: Path, config: str = CONFIG) -> tuple[subprocess.Popen, Path]:
    cfg = tmp_path / "stop.yaml"
    cfg.write_text(config)
    proc = subprocess.Popen([sys.executable, "-m", "textgym.app.cli", "train", str(cfg), "--runs-dir",
                             str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, cwd=tmp_path)
    run = tmp_path / "runs" / "stop"
    deadline = time.time() + 240
    while rows(run / "metrics.csv") < 2:  # training is under way
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    return proc, run


def counters(run: Path) -> dict:
    import torch

    return torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=False)["counters"]


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_signal_finishes_the_iteration_and_saves_it(tmp_path, sig):
    proc, run = start(tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    done = rows(run / "metrics.csv")
    assert 2 <= done < 400
    assert counters(run)["iteration"] == done  # no finished iteration lost (save_every is 1000)
    assert f"resume with: textgym train --resume {run.resolve()}" in out
    assert "Traceback" not in err and "Ctrl-C again" in err
    # the resumed bar counts on from there: "done+2/done+2", never "0/2"
    res = subprocess.run([sys.executable, "-m", "textgym.app.cli", "train", "--resume", str(run), "--set",
                          f"train.iterations={done + 2}"], capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"| {done + 2}/{done + 2} " in res.stderr and "| 0/2 " not in res.stderr
    assert counters(run)["iteration"] == done + 2


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    # Long iterations (64 episodes, 4 epochs), and the second Ctrl-C only once the first is acknowledged: two
    # signals sent back to back can reach Python as one on a busy machine (they coalesce before the handler runs).
    proc, run = start(tmp_path, CONFIG.replace("num_envs: 8", "num_envs: 64").replace("n_epochs: 1", "n_epochs: 4"))
    err_chunks: list[str] = []
    reader = threading.Thread(target=lambda: err_chunks.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    proc.send_signal(signal.SIGINT)
    deadline = time.time() + 60
    while "Ctrl-C again" not in "".join(err_chunks):
        assert proc.poll() is None and time.time() < deadline, "".join(err_chunks)[-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    proc.wait(timeout=120)
    reader.join(timeout=10)
    assert proc.returncode == 130
    assert "resume with: textgym train --resume" in out
    assert "stopped after iteration" not in out  # it did not wait for the iteration to finish
