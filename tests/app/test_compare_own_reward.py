"""``textgym compare`` with a reward of your own: ``--import`` / ``imports:`` (found like ``textgym train``'s),
recorded in compare_config.yaml so ``--resume`` imports it again, and a failed start that writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from textgym.app.compare import ComparisonExists, _raw_config, build_parser, compare

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
REWARD = '''
import textgym.rewards

@textgym.rewards.register("own-length-f18")
def own_length(prompt, completion, **columns):
    return float(len(completion) > 2)
'''
# 4 prompts, 2 held out by their 'split' column; a budget of one update of 2 episodes x 2 tokens
SETTINGS = ["--env", "textgym/Text-v0", "--model", "tiny-char", "--algos", "ppo", "--seeds", "1", "--budget", "4",
            "--eval-episodes", "2", "--num-envs", "2", "--set", "env.data=prompts.jsonl",
            "--set", "env.reward=own-length-f18", "--set", "env.max_new_tokens=2", "--no-progress"]


def textgym(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgym.app.cli", "compare", *args], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"Say {w}:", "split": s}) + "\n" for w, s in
                                                (("a", "train"), ("b", "train"), ("c", "test"), ("d", "test"))))
    (proj / "own_reward.py").write_text(REWARD)
    return proj


def test_unknown_reward_says_how_to_import_one_and_writes_nothing(project):
    res = textgym(*SETTINGS, "--out", "out", cwd=project)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unknown reward 'own-length-f18'" in res.stderr
    assert "--import" in res.stderr and "imports: [" in res.stderr and "@textgym.rewards.register" in res.stderr
    assert not (project / "out").exists()  # nothing written: a rerun with the same --out is not blocked
    res = textgym(*SETTINGS, "--out", "out", "--import", "own_reward", "--set", "env.data=missing.jsonl", cwd=project)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "missing.jsonl" in res.stderr
    assert not (project / "out").exists()


@pytest.mark.slow  # three comparisons in subprocesses: about a minute on a busy machine
def test_import_flag_is_recorded_and_resume_imports_it_again(project):
    res = textgym(*SETTINGS, "--out", "out", "--import", "own_reward", cwd=project)
    assert res.returncode == 0, res.stderr[-3000:]
    saved = yaml.safe_load((project / "out" / "compare_config.yaml").read_text())
    assert saved["imports"] == [str(project / "own_reward.py")]
    again = textgym(*SETTINGS, "--out", str(project / "out"), "--import", "own_reward", cwd=project)
    assert again.returncode == 2 and "pass --resume to continue it" in again.stderr and "resume=True" not in again.stderr
    (project / "out" / "ppo" / "seed0" / "run_state.json").unlink()  # the run must really train again
    res = textgym("--config", "out/compare_config.yaml", "--resume", "--no-progress", cwd=project)  # no --import
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| ppo | 1 |" in res.stdout


def test_imports_found_next_to_the_config_then_in_the_working_directory(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (project / "cmp.yaml").write_text("imports: [own_reward]\n")
    raw = _raw_config(build_parser().parse_args(["--config", str(project / "cmp.yaml")]))
    assert raw["imports"] == [str(project / "own_reward.py")]
    monkeypatch.chdir(project)
    raw = _raw_config(build_parser().parse_args(["--set", "imports=[own_reward]", "--import", "own_reward.py"]))
    assert raw["imports"] == [str(project / "own_reward.py")]  # the same file once


def test_python_api_imports_and_its_own_wording(project, monkeypatch):
    monkeypatch.chdir(project)
    with pytest.raises(ValueError, match="cannot import 'no_such_module'.*looked for"):
        compare(env_id="textgym/Text-v0", imports=["no_such_module"], out_dir="x", progress=False)
    (project / "x").mkdir()
    (project / "x" / "compare_config.yaml").write_text("{}\n")
    with pytest.raises(ComparisonExists, match=r"pass resume=True to continue it"):
        compare(env_id="textgym/Text-v0", model="tiny-char", imports=["own_reward"], out_dir="x", progress=False,
                env_kwargs={"data": "prompts.jsonl", "reward": "own-length-f18"})
