"""The `textgym` command: list, config errors (exit 2, no traceback), delegation to compare/bench, lazy imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from textgym.app.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgym.app.cli", *args], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=300)


def test_list_shows_envs_rewards_and_algorithms(capsys):
    import textgym
    from textgym.agents.algorithms.registry import list_algorithms

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(env_id in out for env_id in textgym.list_envs())
    assert "sentiment-vader" in out and "bleu" in out
    assert "Algorithms" in out and all(a in out for a in list_algorithms())

    assert main(["list", "algorithms"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["Algorithms:", "  " + ", ".join(list_algorithms())]
    assert main(["list", "rewards"]) == 0
    out = capsys.readouterr().out
    assert "textgym/IMDB-v0" not in out and "rouge1" in out


def test_list_and_help_do_not_import_torch():
    code = ("import sys; from textgym.app.cli import main; main(['list', 'algorithms']); "
            "print('heavy:', sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "heavy: []" in res.stdout


def test_a_config_error_exits_2_with_one_paragraph_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model: tiny-char\nenv: {id: textgym/TokenCount-v0}\nalgo: {learnig_rate: 0.1}\n"
                   "train: {iterations: 1}\n")
    res = run_cli("train", str(cfg), "--runs-dir", str(tmp_path / "runs"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1  # one paragraph
    assert lines[0].startswith("textgym: config error at `algo.learnig_rate`")
    assert "Did you mean 'learning_rate'?" in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing was started


@pytest.mark.parametrize("args, words", [
    (["--set", "env.id=textgym/Nope-v0"], "unknown env 'textgym/Nope-v0'"),
    (["--set", "algorithm=dqn"], "unknown algorithm 'dqn'"),
    (["--set", "env.kwargs.reward=bleuu"], "Did you mean 'bleu'?"),
    (["--set", "algo.learning_rate=fast"], "expected a number"),
    (["--set", "oops"], "key=value"),
])
def test_config_errors_from_set_exit_2(args, words, tmp_path, capsys):
    cfg = ROOT / "examples" / "configs" / "synthetic_ppo.yaml"
    assert main(["train", str(cfg), "--runs-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.startswith("textgym: config error")


def test_train_argument_mistakes_exit_2(tmp_path, capsys):
    assert main(["train"]) == 2
    assert "CONFIG.yaml" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a textgym run folder" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--name", "x"]) == 2
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_compare_and_bench_get_every_remaining_argument(monkeypatch):
    import textgym.app.compare as compare
    import textgym.app.bench as bench

    seen = {}
    monkeypatch.setattr(compare, "main", lambda argv: seen.setdefault("compare", argv) and 0)
    monkeypatch.setattr(bench, "main", lambda argv: seen.setdefault("bench", argv) and 3)
    assert main(["compare", "--env", "textgym/Copy-v0", "--algorithms", "ppo,grpo", "--help"]) == 0
    assert main(["bench", "rollout_speed", "--set", "x=1"]) == 3
    assert seen == {"compare": ["--env", "textgym/Copy-v0", "--algorithms", "ppo,grpo", "--help"],
                    "bench": ["rollout_speed", "--set", "x=1"]}


def test_the_parser_knows_every_command():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"list", "train", "eval", "compare", "bench", "rollout", "feedback", "export"}
    args = build_parser().parse_args(["train", "c.yaml", "--set", "a=1", "--set", "b=2", "--name", "n"])
    assert args.set == ["a=1", "b=2"] and args.name == "n" and args.config == "c.yaml"


def test_eval_and_rollout_mistakes_exit_2_with_what_was_wrong(tmp_path, capsys, monkeypatch):
    # a mistyped run folder is not taken for a model name
    assert main(["eval", str(tmp_path / "runs" / "typo")]) == 2
    err = capsys.readouterr().err
    assert "there is no such folder" in err and "--env ID" in err
    assert main(["eval", str(tmp_path)]) == 2  # a folder, but not a run
    assert "not a run folder" in capsys.readouterr().err
    # ... nor, with --env, sent to the Hub: the error lists what a model can be
    assert main(["eval", str(tmp_path / "runs" / "typo"), "--env", "textgym/TokenCount-v0"]) == 2
    assert "neither a known model name nor an existing folder" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # `runs/typo` has the shape of a Hub id (org/name); offline it cannot load
    assert main(["eval", "runs/typo", "--env", "textgym/TokenCount-v0"]) == 2
    err = capsys.readouterr().err
    assert "cannot load model 'runs/typo'" in err and "tiny-char" in err and "Traceback" not in err
    # an unknown split: the env's message, with the close match, and no traceback
    assert main(["eval", "tiny-char", "--env", "textgym/TokenCount-v0", "--split", "tset"]) == 2
    err = capsys.readouterr().err
    assert "unknown split 'tset'" in err and "Did you mean 'test'?" in err
    # rollout: an unknown env id is caught before the model loads
    assert main(["rollout", "--env", "textgym/IMBD-v0", "--model", "tiny-char"]) == 2
    err = capsys.readouterr().err
    assert "unknown env id 'textgym/IMBD-v0'" in err and "Did you mean 'textgym/IMDB-v0'?" in err
    assert "loading" not in capsys.readouterr().out


def test_every_command_takes_the_output_flags_after_its_name():
    # README, "Command line": --no-progress, -q, -v and --threads on every command, feedback's subcommands included
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    fb = next(a for a in sub.choices["feedback"]._actions if a.dest == "feedback_command")
    parsers = [p for name, p in sub.choices.items() if name not in ("compare", "bench", "feedback")]
    for p in parsers + list(fb.choices.values()):
        flags = {s for a in p._actions for s in a.option_strings}
        assert {"--no-progress", "-q", "-v", "--threads"} <= flags, p.prog
    args = build_parser().parse_args(["feedback", "status", "p.db", "--threads", "1", "--no-progress"])
    assert args.threads == 1 and args.no_progress and args.feedback_command == "status"
