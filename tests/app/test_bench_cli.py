"""``textgym bench``: finding, listing and running the benchmark scripts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from textgym.app import bench

REPO_BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
EXPECTED = {"rollout_throughput", "trl_step", "memory", "scaling", "learning_efficiency", "env_throughput",
            "reward_throughput"}


@pytest.fixture
def fake_benchmarks(tmp_path, monkeypatch):
    """A benchmarks folder with one script that echoes its arguments and exits with code 3, and a helper."""
    (tmp_path / "echo_args.py").write_text(
        '"""Echo the arguments.\n\nMore text."""\nimport sys\nprint("ARGS", sys.argv[1:])\nsys.exit(3)\n')
    (tmp_path / "_helper.py").write_text('"""Not a benchmark."""\n')
    (tmp_path / "nodoc.py").write_text("x = 1\n")
    monkeypatch.setenv(bench.ENV_VAR, str(tmp_path))
    return tmp_path


def test_finds_the_checkout_benchmarks(monkeypatch):
    monkeypatch.delenv(bench.ENV_VAR, raising=False)
    assert bench.benchmarks_dir() == REPO_BENCHMARKS


def test_lists_every_shipped_benchmark_with_its_summary():
    names = bench.list_benchmarks(REPO_BENCHMARKS)
    assert EXPECTED <= set(names)
    assert not any(n.startswith("_") for n in names)
    assert names["trl_step"].startswith("Update step vs TRL")
    assert names["memory"].startswith("Memory: peak RSS")


def test_env_var_folder_listing_skips_helpers(fake_benchmarks, capsys):
    assert bench.list_benchmarks() == {"echo_args": "Echo the arguments.", "nodoc": ""}
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert str(fake_benchmarks) in out and "echo_args  Echo the arguments." in out
    assert bench.main(["list"]) == 0


def test_runs_a_benchmark_with_its_arguments_and_returns_its_exit_code(fake_benchmarks, capfd):
    assert bench.main(["echo_args", "--quick", "--model", "tiny-llama"]) == 3
    assert "ARGS ['--quick', '--model', 'tiny-llama']" in capfd.readouterr().out
    assert bench.run_benchmark("echo_args.py", [], fake_benchmarks) == 3  # a trailing .py is accepted


def test_unknown_name_is_a_clear_error(fake_benchmarks, capsys):
    assert bench.main(["echo_arg"]) == 2
    err = capsys.readouterr().err
    assert "no benchmark named 'echo_arg'" in err and "Did you mean 'echo_args'?" in err
    assert "Available: echo_args, nodoc" in err
    with pytest.raises(KeyError, match="no benchmark named '_helper'"):
        bench.run_benchmark("_helper", [], fake_benchmarks)


def test_missing_folder_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(bench.ENV_VAR, str(tmp_path / "nope"))
    assert bench.main(["trl_step"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_without_a_checkout_the_error_says_how_to_fix_it(tmp_path, monkeypatch):
    import textgym

    monkeypatch.delenv(bench.ENV_VAR, raising=False)
    monkeypatch.setattr(textgym, "__file__", str(tmp_path / "site-packages" / "textgym" / "__init__.py"))
    with pytest.raises(FileNotFoundError, match="pip install -e"):
        bench.benchmarks_dir()


def test_help_lists_usage(capsys):
    assert bench.main(["--help"]) == 0
    assert "usage: textgym bench [list | NAME [ARGS...]]" in capsys.readouterr().out


def test_console_script_dispatches_bench(fake_benchmarks, capfd):
    from textgym.app.cli import main

    assert main(["bench", "echo_args", "x"]) == 3
    assert "ARGS ['x']" in capfd.readouterr().out


def test_every_shipped_script_parses_its_help():
    """Every shipped benchmark parses ``--help`` (catches import-time and argparse errors cheaply); run side by side."""
    import subprocess

    names = sorted(p.stem for p in REPO_BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
    assert {"env_throughput", "learning_efficiency", "memory", "reward_throughput", "rollout_throughput", "scaling",
            "trl_step"} <= set(names)
    procs = {name: subprocess.Popen([sys.executable, str(REPO_BENCHMARKS / f"{name}.py"), "--help"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in names}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, err[-2000:])
        assert out.startswith("usage:") and f"{name}.py" in out, (name, out[:200])


# ------------------------------------------------------------------ the benchmarks' shared helpers
@pytest.fixture
def common(monkeypatch):
    """``benchmarks/_common.py`` imported as the scripts import it (their folder on ``sys.path``)."""
    monkeypatch.syspath_prepend(str(REPO_BENCHMARKS))
    import _common

    return _common


def test_phase_timer_is_exclusive(common, monkeypatch):
    clock = iter([0.0, 2.0, 5.0, 10.0, 11.0, 14.0])  # outer starts, inner starts, inner ends, outer ends, again
    monkeypatch.setattr(common.time, "perf_counter", lambda: next(clock))
    t = common.PhaseTimer()
    with t.phase("outer"):
        with t.phase("inner"):
            pass
    with t.phase("inner"):
        pass
    assert t.totals == {"outer": 7.0, "inner": 6.0}  # outer: 10 - 0 - (5 - 2); inner: (5 - 2) + (14 - 11)
    assert t.counts == {"outer": 1, "inner": 2}
    assert common.diff({"a": 5.0, "b": 1.0}, {"a": 2.0}) == {"a": 3.0, "b": 1.0}


def test_phase_timer_wraps_and_restores_methods(common):
    class Thing:
        def f(self, x):
            return 2 * x

    thing = Thing()
    t = common.PhaseTimer()
    t.wrap(thing, "f", lambda x: "big" if x > 1 else "small")
    assert thing.f(1) == 2 and thing.f(3) == 6
    assert t.counts == {"small": 1, "big": 1}
    t.restore()
    assert "f" not in vars(thing) and thing.f(4) == 8


def test_lexicon_reward_values(common):
    assert common.lexicon_reward(["p"] * 4, ["a good movie", "Great, GREAT fun!", "", "bad plot"]) == \
        [1 / 3, 1.0, 0.0, 0.0]
    assert common.lexicon_reward(["p"], [[{"role": "assistant", "content": "nice film"}]]) == [0.5]


def test_table_markdown_and_csv(common, tmp_path, capsys):
    table = common.Table("demo", ["name", "tokens/s", "ratio"], {"tokens/s": 0})
    table.add("generate", 1234.4, 1.0)
    table.add("textgym", 987.6, 0.8)
    with pytest.raises(ValueError, match="3 columns, got 2"):
        table.add("x", 1.0)
    md = table.emit("header", out_dir=tmp_path, notes="a note")
    assert md == tmp_path / "demo.md"
    text = md.read_text()
    assert "| generate |    1,234 |  1.00 |" in text and "|  textgym |" not in text and "| textgym  |      988 |  0.80 |" in text
    assert text.startswith("header\n\n| name ") and text.endswith("a note\n")
    assert (tmp_path / "demo.csv").read_text().splitlines() == ["name,tokens/s,ratio", "generate,1234.4,1.0",
                                                                "textgym,987.6,0.8"]
    assert "| generate |" in capsys.readouterr().out


@pytest.mark.slow
def test_rollout_benchmark_runs_on_a_tiny_model(tmp_path, capfd):
    """A real (tiny) run through ``textgym bench``: its table is written and its ratios are self-consistent."""
    import csv

    code = bench.main(["rollout_throughput", "--batch", "2", "--prompt-length", "8", "--new-tokens", "4",
                       "--lengths", "", "--repeats", "1", "--threads", "1", "--out-dir", str(tmp_path)])
    assert code == 0, capfd.readouterr().err[-2000:]
    rows = list(csv.DictReader((tmp_path / "rollout_throughput-tiny-llama.csv").open()))
    assert [r["method"] for r in rows][0] == "model.generate" and len(rows) == 4
    gen = float(rows[0]["tokens/s"])
    assert float(rows[0]["ratio vs generate"]) == 1.0
    for r in rows:
        assert float(r["tokens/s"]) > 0
        assert float(r["ratio vs generate"]) == pytest.approx(float(r["tokens/s"]) / gen)
