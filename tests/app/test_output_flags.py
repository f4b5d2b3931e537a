"""One progress display per job, library noise off unless -v, and the same output flags on every subcommand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
for _k in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
    ENV.pop(_k, None)
CONFIG = """name: quiet
model: tiny-char
env: {id: textgym/TokenCount-v0, num_envs: 4, kwargs: {max_new_tokens: 4}}
algo: {minibatch_size: 4, n_epochs: 1}
train: {iterations: 2, save_every: 1}
eval: {n_episodes: 2, num_samples: 0}
plots: false
"""


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgym.app.cli", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", ["list", "train", "eval", "export", "rollout", "compare", "bench"])
def test_every_subcommand_has_the_output_flags(command):
    res = cli(command, "--help")
    assert res.returncode == 0, res.stderr
    for flag in ("--no-progress", "-q, --quiet", "-v, --verbose", "--threads"):
        assert flag in res.stdout, (command, flag)


def test_help_shows_defaults():
    out = " ".join(cli("rollout", "--help").stdout.split())
    assert "(default: 3)" in out and "(default: textgym/IMDB-v0)" in out
    assert "(default: 0.7)" in out and "seed of the first episode (default: 0)" in out


def test_library_bars_only_with_verbose(tmp_path):
    cfg = tmp_path / "q.yaml"
    cfg.write_text(CONFIG)
    res = cli("train", str(cfg), "--runs-dir", str(tmp_path / "a"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Writing model shards" not in res.stderr and "Loading weights" not in res.stderr
    assert "2/2" in res.stderr  # textgym's own bar
    res = cli("train", str(cfg), "--runs-dir", str(tmp_path / "b"), "-v")
    assert res.returncode == 0 and "Writing model shards" in res.stderr


@pytest.mark.slow  # two more training runs in subprocesses
def test_no_progress_and_quiet(tmp_path):
    cfg = tmp_path / "q.yaml"
    cfg.write_text(CONFIG)
    res = cli("train", str(cfg), "--runs-dir", str(tmp_path / "c"), "--no-progress")
    assert res.returncode == 0 and "it/s" not in res.stderr and "[rl]" in res.stdout
    res = cli("train", str(cfg), "--runs-dir", str(tmp_path / "d"), "-q", "--threads", "1")
    assert res.returncode == 0 and "[rl]" not in res.stdout and "score_mean" in res.stdout and "it/s" not in res.stderr
    assert cli("list", "-q", "-v").returncode == 2


def test_load_report_is_hidden_unless_verbose(tmp_path):
    code = ("import sys; from textgym.app.cli import build_parser; from textgym.app.output import apply_output_flags; "
            "apply_output_flags(build_parser().parse_args(['list', *sys.argv[2:]])); "
            "from transformers import AutoModelForSequenceClassification as A; A.from_pretrained(sys.argv[1], num_labels=1)")
    from textgym.models import load

    model, _ = load("tiny-llama")
    model.save_pretrained(tmp_path / "m")
    quiet = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], capture_output=True, text=True, env=ENV,
                           timeout=120)
    loud = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m"), "-v"], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr[-2000:]
    assert "LOAD REPORT" in loud.stderr and "LOAD REPORT" not in quiet.stderr
