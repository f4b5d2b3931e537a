"""The comparison harness: artifacts, same seed -> same curves, resume, the CLI, the summary math, settings errors."""

from __future__ import annotations

import csv
import math
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

import textgym.app.compare as compare_module
from textgym.app.compare import CompareConfig, algorithm_config, compare, main
from textgym.app.compare_report import RunResult, learning_curves, summary_table
from textgym.app.stats import bootstrap_ci, iqm

# 2 labels of PPO (whatever else is registered), 2 seeds, 2-4 updates per run on 4 rows of TokenCount (k <= 4:
# at most 6 tokens per episode, 24 per update).
QUICK = dict(env_id="textgym/TokenCount-v0", model="tiny-char", algos=["ppo", "ppo-fast:ppo"], seeds=2, budget=48,
             eval_every=24, eval_episodes=4, num_envs=4, env_kwargs={"max_count": 4},
             algo_overrides={"*": {"kl_coef": 0.0, "n_epochs": 2}, "ppo": {"learning_rate": 1e-5},
                             "ppo-fast": {"learning_rate": 3e-3}})
TIMING = ("wall_time_s", "eval_time_s", "tokens_per_s")  # the only columns allowed to differ between reruns


def _det(rows):
    """Rows without the timing columns (what a rerun must reproduce exactly)."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return compare(**QUICK, out_dir=str(tmp_path_factory.mktemp("cmp") / "ref"), progress=False)


def test_writes_every_artifact_and_the_table_matches_the_points(reference):
    out = reference.out_dir
    for name in ("points.csv", "table.csv", "table.md", "curves.png", "report.md", "compare_config.yaml"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every run: the grid 0, 24, 48 (one update adds <= 4 rows x 6 tokens), a checkpoint, finished
    assert [(r.label, r.seed) for r in reference.runs] == [("ppo", 0), ("ppo", 1), ("ppo-fast", 0), ("ppo-fast", 1)]
    for r in reference.runs:
        assert r.done and [p["target_tokens"] for p in r.points] == [0, 24, 48]
        tokens = [p["tokens"] for p in r.points]
        assert tokens[0] == 0 and 24 <= tokens[1] < 24 + 24 and 48 <= tokens[2] < 48 + 24
        run_dir = out / r.label / f"seed{r.seed}"
        state = json.loads((run_dir / "run_state.json").read_text())["compare"]  # each run is a pipeline run
        assert state["done"] and state["points"] == r.points
        saved = json.loads((run_dir / "checkpoint" / "config.json").read_text())
        assert saved["seed"] == r.seed and saved["kl_coef"] == 0.0 and saved["n_epochs"] == 2
        assert saved["learning_rate"] == (3e-3 if r.label == "ppo-fast" else 1e-5)
    # fairness: both labels start from the same model and see the same eval prompts -> same token-0 point per seed
    start = {(r.label, r.seed): r.points[0]["score_mean"] for r in reference.runs}
    assert start[("ppo", 0)] == start[("ppo-fast", 0)] and start[("ppo", 1)] == start[("ppo-fast", 1)]
    # points.csv holds every point
    with open(out / "points.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and [float(r["score_mean"]) for r in rows] == [p["score_mean"] for p in reference.points]
    # table = statistics of the final points over seeds
    with open(out / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [t["algo"] for t in table] == ["ppo", "ppo-fast"] and [t["algorithm"] for t in table] == ["ppo", "ppo"]
    for t, row in zip(table, reference.table):
        finals = [r.final for r in reference.runs if r.label == t["algo"]]
        scores = [p["score_mean"] for p in finals]
        assert float(t["score_mean"]) == pytest.approx(np.mean(scores))
        assert math.isnan(float(t["score_ci_lo"])) and math.isnan(float(t["score_ci_hi"]))  # 2 seeds: no CI
        assert (float(t["score_min"]), float(t["score_max"])) == (min(scores), max(scores))
        assert float(t["score_iqm"]) == pytest.approx(iqm(scores))
        assert float(t["kl_ref"]) == pytest.approx(np.mean([p["kl_ref_k3"] for p in finals]))
        assert float(t["tokens_per_s"]) == pytest.approx(np.mean([p["tokens"] / p["wall_time_s"] for p in finals]))
        assert row["seeds"] == 2 and int(t["seeds"]) == 2
    assert reference.table[1]["kl_ref"] > 0.0  # lr 3e-3 moved the policy away from the reference
    md = (out / "table.md").read_text()
    assert md == reference.to_markdown() and "| ppo-fast (ppo) | 2 |" in md
    report = (out / "report.md").read_text()
    assert "![learning curves" in report and "(curves.png)" in report and md.strip() in report
    assert "## Protocol" in report and "| ppo-fast | 1 |" in report
    assert yaml.safe_load((out / "compare_config.yaml").read_text())["algo_overrides"]["ppo-fast"] == {
        "learning_rate": 3e-3}


def test_same_seed_same_curves_and_an_interrupted_comparison_resumes_exactly(reference, tmp_path, monkeypatch):
    out = tmp_path / "cut"
    real_save, calls = compare_module._save_checkpoint, []

    def crash_on_fifth(algo, path):  # run 2 (ppo seed 1): its 24-token point is in run.json, its checkpoint is not
        calls.append(path)
        if len(calls) == 5:
            raise RuntimeError("simulated crash")
        real_save(algo, path)

    monkeypatch.setattr(compare_module, "_save_checkpoint", crash_on_fifth)
    with pytest.raises(RuntimeError, match="simulated crash"):
        compare(**QUICK, out_dir=str(out), progress=False)
    with open(out / "points.csv", newline="") as f:
        assert [(r["algo"], r["seed"], r["target_tokens"]) for r in csv.DictReader(f)] == [
            ("ppo", "0", "0"), ("ppo", "0", "24"), ("ppo", "0", "48"), ("ppo", "1", "0"), ("ppo", "1", "24")]
    monkeypatch.setattr(compare_module, "_save_checkpoint", real_save)
    with pytest.raises(FileExistsError, match="resume"):
        compare(**QUICK, out_dir=str(out), progress=False)
    resumed = compare(**QUICK, out_dir=str(out), resume=True, progress=False)
    # run 1 was computed fresh (same seed -> same curve); run 2 continued from its token-0 checkpoint
    assert _det(resumed.points) == _det(reference.points)
    assert _det(resumed.table) == _det(reference.table)
    assert {k: [c[:2] for c in v] for k, v in resumed.curves.items()} == {
        k: [c[:2] for c in v] for k, v in reference.curves.items()}


def test_resume_after_deleting_the_last_run_gives_the_same_table(reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference.out_dir, out)
    shutil.rmtree(out / "ppo-fast" / "seed1")
    resumed = compare(**QUICK, out_dir=str(out), resume=True, progress=False)
    assert _det(resumed.table) == _det(reference.table)
    assert _det(resumed.points) == _det(reference.points)
    assert resumed.points[:9] == reference.points[:9]  # finished runs were not rerun (even their times are kept)


def test_resuming_with_other_settings_is_refused(reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference.out_dir, out)
    changed = {**QUICK, "algo_overrides": {**QUICK["algo_overrides"], "ppo-fast": {"learning_rate": 1e-3}}}
    with pytest.raises(ValueError, match="algo_config.learning_rate"):
        compare(**changed, out_dir=str(out), resume=True, progress=False)


def test_cli_resumes_from_the_written_config_and_prints_the_table(reference, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(reference.out_dir, out)
    code = main(["--config", str(out / "compare_config.yaml"), "--out", str(out), "--resume", "--no-progress"])
    assert code == 0
    assert reference.to_markdown() in capsys.readouterr().out


def test_cli_flags_and_set_reach_the_runs(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["--env", "textgym/TokenCount-v0", "--algos", "ppo", "--seeds", "3,5", "--budget", "20",
                 "--eval-every", "20", "--eval-episodes", "2", "--model", "tiny-char", "--num-envs", "2",
                 "--out", str(out), "--set", "env.max_count=4", "--set", "algo.ppo.learning_rate=1e-3",
                 "--set", "eval_seed=7", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    for seed in (3, 5):
        spec = json.loads((out / "ppo" / f"seed{seed}" / "run_state.json").read_text())["compare"]["spec"]
        assert spec["seed"] == seed and spec["env_kwargs"] == {"max_count": 4} and spec["eval_seed"] == 7
        assert spec["algo_config"]["learning_rate"] == 1e-3  # "1e-3" (a YAML string) read as a number
    assert "| ppo | 2 |" in capsys.readouterr().out
    # the same folder again without --resume is refused
    assert main(["--out", str(out), "--algos", "ppo", "--no-progress"]) == 2
    assert "already holds a comparison" in capsys.readouterr().err


def test_checkpoints_print_no_transformers_bar_and_keep_its_setting(tmp_path, capfd):
    """--no-progress is quiet: no "Writing model shards" bar per checkpoint; the user's HF bar setting survives."""
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    code = main(["--algos", "ppo", "--seeds", "1", "--budget", "12", "--eval-every", "6", "--eval-episodes", "2",
                 "--num-envs", "2", "--set", "env.max_count=4", "--out", str(tmp_path / "q"), "--no-progress"])
    err = capfd.readouterr().err
    assert code == 0, err
    assert len(list((tmp_path / "q" / "ppo" / "seed0" / "checkpoint").iterdir())) > 0  # it did save (3 times)
    assert "Writing model shards" not in err
    assert hf_logging.is_progress_bar_enabled()

    class Saver:  # records the bar setting while saving
        def save(self, path):
            seen.append(hf_logging.is_progress_bar_enabled())

    seen = []
    hf_logging.disable_progress_bar()  # a user who turned the bars off keeps them off
    try:
        compare_module._save_checkpoint(Saver(), tmp_path)
        assert seen == [False] and not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()
    compare_module._save_checkpoint(Saver(), tmp_path)
    assert seen == [False, False] and hf_logging.is_progress_bar_enabled()


@pytest.mark.parametrize(("argv", "message"), [
    (["--algos", "ppo,nope"], "unknown algorithm 'nope'"),
    (["--set", "algo.ppo.learning_rte=0.1"], "learning_rte"),
    (["--set", "algo.other.learning_rate=0.1"], "not an algorithm label"),
    (["--set", "algo.ppo.seed=3"], "harness owns"),
    (["--set", "colour=blue"], "unknown setting"),
    (["--seeds", "0,x"], "--seeds takes"),
    (["--budget", "0"], "budget must be an integer >= 1"),
    (["--env", "textgym/TokenCnt-v0"], "Did you mean 'textgym/TokenCount-v0'"),
])
def test_cli_setting_errors_are_one_line_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert main([*argv, "--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(("fields", "message"), [
    (dict(algos=[]), "algos is empty"),
    (dict(algos=["ppo", "ppo"]), "labels must be unique"),
    (dict(algos=["a/b:ppo"]), "label 'a/b'"),
    (dict(seeds=[1, 1]), "distinct"),
    (dict(seeds=0), "seeds must be"),
    (dict(eval_every=0), "eval_every"),
    (dict(env_kwargs={"num_envs": 3}), "harness sets it"),
    (dict(confidence=95), "confidence"),
])
def test_config_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        CompareConfig(**fields)


def test_algorithm_config_layers_defaults_overrides_and_harness_fields(tmp_path):
    cfg = CompareConfig(**QUICK)
    conf = algorithm_config(cfg, "ppo-fast", "ppo", 3, tmp_path)
    assert (conf.seed, conf.learning_rate, conf.kl_coef, conf.n_epochs) == (3, 3e-3, 0.0, 2)
    assert conf.run_dir == str(tmp_path / "train") and conf.save_every is None
    assert conf.progress_bar is False and conf.tensorboard is False
    assert algorithm_config(cfg, "ppo", "ppo", 0, tmp_path).learning_rate == 1e-5  # its label's override
    assert algorithm_config(CompareConfig(**{**QUICK, "algo_overrides": {}}), "ppo", "ppo", 0,
                            tmp_path).learning_rate == 3e-3  # tiny-char's preset (textgym.app.compare_presets)
    assert cfg.targets() == [0, 24, 48] and CompareConfig(budget=250, eval_every=100).targets() == [0, 100, 200, 250]
    assert CompareConfig(budget=95).interval() == 9 and CompareConfig(algos="ppo, x:ppo").runs() == [
        ("ppo", "ppo"), ("x", "ppo")]


def test_summary_table_and_curves_on_given_numbers():
    def run(label, seed, scores, tokens, wall, kl):
        pts = [{"target_tokens": t, "tokens": n, "score_mean": s, "wall_time_s": w, "kl_ref": k, "kl_ref_k3": k}
               for t, n, s, w, k in zip((0, 10), tokens, scores, wall, kl)]
        return RunResult(label, "ppo", seed, pts, done=True)

    runs = [run("a", 0, (0.1, 0.2), (0, 12), (0.0, 2.0), (0.0, 1.0)),
            run("a", 1, (0.3, 0.4), (0, 14), (0.0, 7.0), (0.0, 2.0)),
            run("a", 2, (0.2, 0.9), (0, 10), (0.0, 1.0), (0.0, 3.0)),
            RunResult("b", "ppo", 0, [], done=False)]
    (row,) = summary_table(runs, ["a", "b"])  # b has no finished run: no row
    assert row["seeds"] == 3 and row["score_mean"] == pytest.approx(0.5) and row["score_start"] == pytest.approx(0.2)
    assert row["score_iqm"] == pytest.approx((0.2 + 4 * 0.4 + 0.9) / 6)
    assert (row["score_ci_lo"], row["score_ci_hi"]) == bootstrap_ci([0.2, 0.4, 0.9])
    assert row["kl_ref"] == pytest.approx(2.0) and row["kl_estimator"] == "k3" and row["tokens"] == pytest.approx(12)
    assert row["wall_time_s"] == pytest.approx(10 / 3)
    assert row["tokens_per_s"] == pytest.approx((12 / 2 + 14 / 7 + 10 / 1) / 3)
    curves = learning_curves(runs[:2], ["a"])
    assert curves["a"][0] == (0.0, pytest.approx(0.2), *bootstrap_ci([0.1, 0.3]))
    assert curves["a"][1][:2] == (13.0, pytest.approx(0.3))  # x = mean actual tokens of the grid point's seeds


def test_textgym_compare_is_lazy():
    # the harness is on the application floor: the core no longer offers it as textgym.compare
    code = ("import sys, textgym; from textgym.app.compare import compare; "
            "assert 'torch' not in sys.modules, 'import textgym / textgym.app.compare imported torch'; "
            "import pytest\n"
            "with pytest.raises(AttributeError, match='from textgym.app.compare import compare'): textgym.compare")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_every_registered_algorithm_runs_through_the_harness(tmp_path):
    """Each registry algorithm (PPO, GRPO, SB3's PPO, ...) trains, evaluates, checkpoints and lands in the table."""
    from textgym.agents.algorithms.registry import list_algorithms

    names = list_algorithms()
    result = compare(env_id="textgym/TokenCount-v0", model="tiny-char", algos=names, seeds=[0], budget=48,
                     eval_every=24, eval_episodes=4, num_envs=4, env_kwargs={"max_count": 4},
                     algo_overrides={"*": {"learning_rate": 1e-3}}, out_dir=str(tmp_path / "all"), progress=False)
    assert [row["algo"] for row in result.table] == names
    for r in result.runs:
        assert r.done and r.points[0]["tokens"] == 0 and r.final["tokens"] >= 48 and r.final["target_tokens"] == 48
        assert (tmp_path / "all" / r.label / "seed0" / "checkpoint").is_dir()
    # every algorithm starts from the same model (seed 0) and the same eval prompts
    assert len({r.points[0]["score_mean"] for r in result.runs}) == 1
