"""Offline DPO / IPO cells of ``textgym compare`` (textgym.app.compare_pairs): the budget in pair completion tokens,
the same evaluation as the RL cells, the same table, pairs built from a task, and one-line errors."""

from __future__ import annotations

import csv
import json

import pytest

from textgym.app.compare import CompareConfig, algorithm_config, compare, main
from textgym.app.compare_pairs import build_pairs
from textgym.app.compare_report import TABLE_COLUMNS

# tiny-char: one token per character, EOS appended by the trainer -> "ab" + EOS and "cd" + EOS = 6 tokens per pair
PAIRS = [{"prompt": f"count:{i}=", "chosen": "ab", "rejected": "cd"} for i in range(1, 9)]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pairs")
    path = tmp / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    # 2 pairs (12 tokens) per step: steps reach 12, 24, 36 -> points at the grid targets 12, 24 and 30 (the budget)
    return compare(env_id="textgym/TokenCount-v0", model="tiny-char", algos=["ppo", "dpo"], seeds=[0], budget=30,
                   eval_every=12, eval_episodes=4, num_envs=4, env_kwargs={"max_count": 4},
                   pairs={"path": str(path), "split": "all"}, algo_overrides={"dpo": {"batch_size": 2}},
                   out_dir=str(tmp / "out"), progress=False)


def test_a_dpo_cell_trains_to_the_token_budget_and_is_evaluated_like_the_rl_cells(result):
    ppo, dpo = result.runs
    assert dpo.done and dpo.algorithm == "dpo"
    assert [(p["target_tokens"], p["tokens"], p["pairs"]) for p in dpo.points] == [
        (0, 0, 0), (12, 12, 2), (24, 24, 4), (30, 36, 6)]
    # the same starting model and the same evaluation: the same score before training
    assert dpo.points[0]["score_mean"] == ppo.points[0]["score_mean"]
    assert dpo.points[0]["kl_ref_k3"] == 0.0 and dpo.points[-1]["kl_ref_k3"] > 0.0  # DPO moved the policy
    assert dpo.points[-1]["wall_time_s"] > 0.0
    with open(result.out_dir / "table.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == TABLE_COLUMNS and [r["algo"] for r in rows] == ["ppo", "dpo"]
    assert float(rows[1]["tokens"]) == 36.0
    state = json.loads((result.out_dir / "dpo" / "seed0" / "run_state.json").read_text())
    assert state["compare"]["done"] and state["rl"]["pairs"] == 6
    report = (result.out_dir / "report.md").read_text()
    assert "completion tokens (chosen + rejected) of the pairs" in report


def test_pairs_from_the_task_are_ordered_by_its_reward():
    # TokenCount's reward is 1 for exactly `count` x's: a prompt's own reference beats the next sample's
    import gymnasium as gym

    from textgym.models import load_tokenizer

    cfg = CompareConfig(env_id="textgym/TokenCount-v0", model="tiny-char", algos=["dpo"], env_kwargs={"max_count": 4},
                        pairs={"from_task": True, "split": "train"})
    tok = load_tokenizer("tiny-char")
    env = gym.make_vec("textgym/TokenCount-v0", 1, vectorization_mode="vector_entry_point", tokenizer=tok,
                       max_count=4, autoreset_mode="Disabled")
    rows, summary = build_pairs(cfg, tok, 6, env)
    env.close()
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [
        ("count:1=", "x", "xx"), ("count:2=", "xx", "xxxx")]  # the train split holds counts 1, 2, 4
    assert summary["rows"] == 2 and summary["dropped_ties"] == 0


def test_pair_cell_settings(tmp_path):
    cfg = CompareConfig(model="tiny-char", algos=["ipo", "dpo-b:dpo"], pairs={"dataset": "hh-rlhf-harmless"},
                        algo_overrides={"*": {"beta": 0.3}})
    ipo = algorithm_config(cfg, "ipo", "ipo", 2, tmp_path)
    assert (ipo.loss_type, ipo.seed, ipo.beta, ipo.learning_rate, ipo.progress) == ("ipo", 2, 0.3, 3e-3, False)
    assert algorithm_config(cfg, "dpo-b", "dpo", 0, tmp_path).loss_type == "dpo"
    plain = CompareConfig(model="tiny-char", algos=["dpo"], pairs={"dataset": "hh-rlhf-harmless"})
    assert algorithm_config(plain, "dpo", "dpo", 0, tmp_path).beta == 0.1  # the tiny preset leaves DPO's beta alone
    assert "pairs" not in CompareConfig().to_dict() and plain.to_dict()["pairs"] == {"dataset": "hh-rlhf-harmless"}


@pytest.mark.parametrize(("argv", "message"), [
    (["--algos", "ppo,dpo"], "dpo train(s) on preference pairs: set `pairs`"),
    (["--algos", "dpo", "--set", "pairs.colour=red"], "pairs has unknown key(s) ['colour']"),
    (["--algos", "dpo", "--set", "pairs.from_task=true", "--set", "pairs.dataset=hh-rlhf-harmless"],
     "exactly one source"),
    (["--algos", "dpo", "--set", "pairs.from_task=true", "--set", "algo.dpo.lora=true"], "lora is not supported"),
    (["--algos", "dpo", "--set", "pairs.from_task=true", "--set", "algo.dpo.loss_type=kto"], "is the loss"),
    (["--algos", "dpo", "--set", "pairs.from_task=true", "--set", "algo.dpo.beta=0"], "beta must be > 0"),
])
def test_bad_pair_cells_are_one_line_errors(argv, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert main([*argv, "--model", "tiny-char", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_the_evaluation_at_zero_tokens_is_not_taken_off_the_training_time(tmp_path, monkeypatch):
    # the evaluation at 0 tokens runs before the training clock starts; subtracting it too gave negative wall
    # times on a busy machine (made slow here on purpose)
    import time

    from textgym.app.compare_cell import CellPipeline

    evaluate = CellPipeline._evaluate

    def slow_first(self, algo, where):
        out = evaluate(self, algo, where)
        if where.endswith("at 0 tokens"):
            time.sleep(3.0)
        return out

    monkeypatch.setattr(CellPipeline, "_evaluate", slow_first)
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    res = compare(env_id="textgym/TokenCount-v0", model="tiny-char", algos=["dpo"], seeds=[0], budget=12, eval_every=12,
                  eval_episodes=2, num_envs=2, env_kwargs={"max_count": 4}, pairs={"path": str(path), "split": "all"},
                  algo_overrides={"dpo": {"batch_size": 2}}, out_dir=str(tmp_path / "out"), progress=False)
    walls = [p["wall_time_s"] for p in res.runs[0].points]
    assert walls[0] == 0.0 and walls[-1] > 0.0, walls  # with the 3 s subtracted it was negative
