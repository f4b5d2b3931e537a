"""The haiku job through the command line: your prompt file, your reward module next to the config, a
held-out split that is really held out and printed truthfully, `eval` of the run from another directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from textgym.data_files import prompt_split

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
TOPICS = "rain snow moon river pine frog crow tea bell mist owl deer kite fog ice shell".split()
REWARD = '''
import textgym.rewards

@textgym.rewards.register("topic-hit")
def topic_hit(prompts, completions, *, topic=None, **_):
    return [float(t in c) for t, c in zip(topic, completions)]
'''
CONFIG = """name: haiku
model: tiny-llama
imports: [haiku_reward]
env: {id: textgym/Text-v0, num_envs: 4, kwargs: {data: haiku.jsonl, reward: topic-hit, max_new_tokens: 4,
      test_fraction: 0.25}}
algo: {minibatch_size: 4, n_epochs: 1}
train: {iterations: 1}
eval: {n_episodes: 4, num_samples: 4, before: false}
plots: false
"""


def textgym(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgym.app.cli", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=300)


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "haiku.jsonl").write_text("".join(json.dumps({"prompt": f"Write a haiku about {t}:", "topic": t}) + "\n"
                                              for t in TOPICS))
    (proj / "haiku_reward.py").write_text(REWARD)
    (proj / "haiku.yaml").write_text(CONFIG)
    return proj


@pytest.mark.slow  # a training run and an eval in subprocesses: about a minute on a busy machine
def test_own_prompts_and_reward_module_from_another_directory(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = textgym("train", str(project / "haiku.yaml"), "--runs-dir", str(tmp_path / "runs"), cwd=elsewhere)
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "runs" / "haiku"
    test_prompts = {f"Write a haiku about {t}:" for t in TOPICS if prompt_split(f"Write a haiku about {t}:", 0.25)
                    == "test"}
    # the evaluation is held out: only test-split prompts, and it says so
    evaluated = {json.loads(line)["prompt"] for line in (run / "samples_eval.jsonl").read_text().splitlines()}
    assert evaluated and evaluated <= test_prompts
    line = f"split 'test' of {project / 'haiku.jsonl'} (hash of the prompt, test_fraction 0.25; {len(test_prompts)} prompts"
    assert line in res.stdout
    assert line in (run / "summary.md").read_text()
    # the run folder records the imported file, so eval finds it from anywhere (no PYTHONPATH)
    config = (run / "config.yaml").read_text()
    assert str(project / "haiku_reward.py") in config
    res = textgym("eval", str(run), "--episodes", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "score_mean" in res.stdout


def test_missing_reward_and_missing_module_are_config_errors(project, tmp_path):
    cfg = project / "haiku.yaml"
    res = textgym("train", str(cfg), "--set", "env.kwargs.reward=null", "--runs-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "config error at `env.kwargs.reward`" in res.stderr and "no default reward" in res.stderr
    res = textgym("train", str(cfg), "--set", "imports=[haiku_rewardz]", "--runs-dir", str(tmp_path / "r"),
                  cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert str(project / "haiku_rewardz.py") in res.stderr and str(tmp_path / "haiku_rewardz.py") in res.stderr
    res = textgym("train", str(cfg), "--set", "imports=[haiku_reward.py]", "--set", "env.kwargs.data=nope.jsonl",
                  "--runs-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert res.returncode == 2 and "config error at `env.kwargs.data`" in res.stderr and "nope.jsonl" in res.stderr
    assert not (tmp_path / "r").exists()


def test_samples_on_a_task_env_is_not_silently_evaluated_as_held_out(project, tmp_path):
    res = textgym("train", str(project / "haiku.yaml"), "--set", "env.id=textgym/IMDB-v0",
                  "--set", "env.kwargs={samples: haiku.jsonl, reward: length}", "--runs-dir", str(tmp_path / "r"),
                  cwd=project)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "would score the training prompts" in res.stderr or "env.kwargs.samples" in res.stderr
