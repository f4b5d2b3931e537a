"""The `reward_model:` stage of `textgym train` and runs without RL (`algorithm: none`), with tiny models.

The reward model is tiny-gpt2 with a one-output head trained on a separable toy preference set
(" a <good word> day" preferred to " a <bad word> day") written as JSON Lines in tmp_path.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path

import pytest
import yaml

from textgym.app.cli import main
from textgym.app.config import ConfigError, config_to_dict, load_config, parse_config
from train_run_helpers import run_train, tiny_ppo_config

ROOT = Path(__file__).resolve().parents[2]
GOOD, BAD = "great lovely wonderful nice".split(), "awful terrible horrible nasty".split()
RM_CONFIG = {"learning_rate": 0.003, "max_steps": 12, "batch_size": 8, "max_length": 32, "progress": False}
PROMPTS = ["count:3=", "count:3=", "Say:", "Say:"]
COMPLETIONS = ["aaa", "a great day", " a lovely day", " a nasty day"]


def write_pairs(path: Path, n: int = 60, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = [{"id": f"pair-{i}", "prompt": "Say:", "chosen": f" a {rng.choice(GOOD)} day",
             "rejected": f" a {rng.choice(BAD)} day"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rl_config(pairs: Path) -> dict:
    return tiny_ppo_config(reward_model={"data": {"path": str(pairs), "split": "train", "eval_split": "test"},
                                         "model": "tiny-gpt2", "config": dict(RM_CONFIG)})



def scores(reward, prompts=PROMPTS, completions=COMPLETIONS):
    from textgym.reward_api import call_reward

    return call_reward(reward, list(prompts), list(completions))[0]


@pytest.fixture(scope="module")
def rm_run(tmp_path_factory):
    """A run: reward model on the toy pairs -> eval before -> 1 PPO iteration against it -> eval after.

    Every env the pipeline builds is recorded (``envs``) to check which reward it got.
    """
    import textgym.app.pipeline as pipeline

    tmp = tmp_path_factory.mktemp("rm")
    pairs = write_pairs(tmp / "pairs.jsonl")
    built = []
    original = pipeline.make_vec_env

    def recording(env_id, num_envs, kwargs, tokenizer, reward=None):
        env = original(env_id, num_envs, kwargs, tokenizer, reward)
        built.append(env)
        return env

    pipeline.make_vec_env = recording
    try:
        code, run = run_train(tmp, rl_config(pairs), "rm")
    finally:
        pipeline.make_vec_env = original
    assert code == 0
    return {"run": run, "pairs": pairs, "envs": built}


def test_the_stage_writes_the_reward_model_and_records_its_held_out_accuracy(rm_run):
    from textgym.envs.datasets import load

    run, pairs = rm_run["run"], rm_run["pairs"]
    state = json.loads((run / "run_state.json").read_text())
    assert list(state["stages"]) == ["sft", "preference", "reward_model", "eval_before", "rl", "eval_after", "report"]
    assert state["stages"] == {"sft": "skipped", "preference": "skipped", "reward_model": "done", "eval_before": "done", "rl": "done",
                               "eval_after": "done", "report": "done"}
    rm = run / "reward_model"
    assert (rm / "config.json").is_file() and (rm / "model.safetensors").is_file()
    assert not [p for p in run.iterdir() if p.name.startswith(".reward_model")]  # no temp folder left
    res = state["results"]["reward_model"]
    n_train, n_test = len(load(str(pairs), "train")), len(load(str(pairs), "test"))
    assert n_test >= 2 and n_train + n_test < 60  # the generic 80/10/10 hash split of the file
    assert res["data/train_pairs"] == n_train and res["data/eval_pairs"] == n_test
    assert res["steps"] == 12
    assert res["eval/accuracy"] >= 0.9  # separable toy pairs (the trainer test reaches this too)
    assert res["eval/loss"] < res["eval_before/loss"] - 0.1, res  # the held-out loss dropped: it trained
    # the saved metadata and the loss curve agree with the run state
    meta = json.loads((rm / "textgym_reward_model.json").read_text())
    assert meta["eval"]["eval/accuracy"] == pytest.approx(res["eval/accuracy"])
    assert meta["config"]["learning_rate"] == 0.003 and meta["stats"]["train_pairs"] == n_train
    curve = (run / "reward_model_metrics.csv").read_text().splitlines()
    assert curve[0].startswith("step,") and len(curve) == 1 + 12 + 1  # header, 12 steps, final evaluation
    md = (run / "summary.md").read_text()
    assert f"held-out pairwise accuracy {res['eval/accuracy']:.3f}" in md and f"on {n_test} `test` pairs" in md


def test_the_training_and_eval_envs_are_scored_by_the_trained_model(rm_run):
    from textgym.app.pipeline import Pipeline
    from textgym.agents.trainers.reward_model import load_reward_function

    run = rm_run["run"]
    expected = scores(load_reward_function(run / "reward_model"))
    assert expected[2] > expected[3]  # the trained model prefers the good word
    envs = [e for e in rm_run["envs"] if e.num_envs > 1]  # the pre-flight check's one-row envs aside
    assert len(envs) == 2  # the eval env (before and after) and the training env
    for env in envs:
        assert scores(env.unwrapped.reward_fn) == pytest.approx(expected, abs=1e-5)
    # a resumed pipeline (and `textgym eval` on the run) gets the same reward
    pipe = Pipeline(load_config(run / "config.yaml"), run, resume=True)
    assert scores(pipe.eval_env.unwrapped.reward_fn) == pytest.approx(expected, abs=1e-5)
    # the evaluation samples were scored by it
    reward = load_reward_function(run / "reward_model")
    for s in [json.loads(line) for line in (run / "samples_eval.jsonl").read_text().splitlines()]:
        assert scores(reward, [s["prompt"]], [s["completion"]])[0] == pytest.approx(s["score"], abs=1e-4)


def test_resume_skips_a_finished_reward_model_stage(rm_run, tmp_path, monkeypatch):
    from textgym.agents.trainers import reward_model

    run = tmp_path / "rm"
    shutil.copytree(rm_run["run"], run)
    meta = (run / "reward_model" / "textgym_reward_model.json").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("the reward model was trained again")

    monkeypatch.setattr(reward_model.RewardModelTrainer, "__init__", refuse)
    assert main(["train", "--resume", str(run), "--set", "train.iterations=2"]) == 0
    state = json.loads((run / "run_state.json").read_text())
    assert state["rl"]["iteration"] == 2 and state["stages"]["reward_model"] == "done"
    assert (run / "reward_model" / "textgym_reward_model.json").read_text() == meta


def test_a_run_without_rl_trains_the_reward_model_evaluates_and_stops(tmp_path, monkeypatch):
    """`algorithm: none`: interrupted after the reward-model stage, resumed without training it again."""
    from textgym.agents.trainers import reward_model
    from textgym.app.pipeline import Pipeline

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    raw = rl_config(pairs)
    for key in ("algorithm", "algo", "train"):
        raw.pop(key)
    raw["reward_model"]["config"]["max_steps"] = 2
    original = Pipeline.stage_eval_before

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, "stage_eval_before", interrupted)
    code, run = run_train(tmp_path, raw, "norl")
    assert code == 130
    state = json.loads((run / "run_state.json").read_text())
    assert state["stages"]["reward_model"] == "done" and state["stages"]["eval_before"] == "pending"
    assert state["stages"]["rl"] == "skipped" and state["stages"]["eval_after"] == "skipped"

    monkeypatch.setattr(Pipeline, "stage_eval_before", original)
    monkeypatch.setattr(reward_model.RewardModelTrainer, "train", lambda self: pytest.fail("trained again"))
    assert main(["train", "--resume", str(run)]) == 0
    state = json.loads((run / "run_state.json").read_text())
    assert state["status"] == "done" and state["rl"] == {}
    assert yaml.safe_load((run / "config.yaml").read_text())["algorithm"] == "none"
    assert not (run / "checkpoint").exists() and not (run / "metrics.csv").exists()
    ev = json.loads((run / "eval.json").read_text())
    assert list(ev) == ["before"]
    reward = reward_model.load_reward_function(run / "reward_model")
    samples = [json.loads(line) for line in (run / "samples_eval.jsonl").read_text().splitlines()]
    assert len(samples) == 2
    for s in samples:
        assert scores(reward, [s["prompt"]], [s["completion"]])[0] == pytest.approx(s["score"], abs=1e-4)
    assert "RL: none" in (run / "summary.md").read_text()


def test_an_empty_held_out_split_is_an_error_naming_the_key(tmp_path):
    from textgym.app.pipeline import train
    from textgym.envs.datasets import load

    pairs = write_pairs(tmp_path / "pairs.jsonl", n=3)
    assert len(load(str(pairs), "test")) == 0 and len(load(str(pairs), "train")) > 0
    cfg = parse_config({**rl_config(pairs), "name": "empty"})
    with pytest.raises(ConfigError) as info:
        train(cfg, tmp_path / "runs")
    assert info.value.key == "reward_model.data.eval_split" and "holds no pair" in str(info.value)
    cfg.reward_model.data.eval_split = None  # no held-out evaluation: allowed
    cfg.algorithm, cfg.algo, cfg.train.iterations = "none", None, None
    cfg.eval.before = False
    result = train(cfg, tmp_path / "runs", overwrite=True)
    res = json.loads((result.run_dir / "run_state.json").read_text())["results"]["reward_model"]
    assert "eval/accuracy" not in res and res["data/train_pairs"] == len(load(str(pairs), "train"))
    md = (result.run_dir / "summary.md").read_text()
    assert "- reward model: `tiny-gpt2` on 1 pairs of" in md and "held-out pairwise accuracy" not in md


def test_an_sft_only_run_stops_after_evaluating_the_sft_model(tmp_path):
    from textgym.app.pipeline import evaluate_target

    raw = {"seed": 0, "model": "tiny-char", "env": {"id": "textgym/TokenCount-v0", "num_envs": 2},
           "sft": {"data": {"max_rows": 4}, "config": {"max_steps": 2, "batch_size": 4, "learning_rate": 0.01,
                                                       "progress": False}},
           "algorithm": "none", "eval": {"n_episodes": 2, "num_samples": 2}, "plots": False}
    code, run = run_train(tmp_path, raw, "sft-only")
    assert code == 0
    state = json.loads((run / "run_state.json").read_text())
    assert state["stages"] == {"sft": "done", "preference": "skipped", "reward_model": "skipped", "eval_before": "done", "rl": "skipped",
                               "eval_after": "skipped", "report": "done"}
    ev = json.loads((run / "eval.json").read_text())
    assert list(ev) == ["before", "sft"] and ev["sft"]["kl_ref"] > 0.0
    assert not (run / "checkpoint").exists()
    # `textgym eval` on the run evaluates its SFT model (KL to the starting model) as the sft stage did
    again = evaluate_target(str(run)).metrics
    assert again["score_mean"] == ev["sft"]["score_mean"] and again["kl_ref"] == pytest.approx(ev["sft"]["kl_ref"])


# ----------------------------------------------------------------------------- config


MINIMAL = {"model": "tiny-char", "env": {"id": "textgym/TokenCount-v0"}, "train": {"iterations": 2}}


def error_of(raw: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(copy.deepcopy(raw))
    return info.value


def with_rm(rm: dict, **top) -> dict:
    return {**MINIMAL, "reward_model": rm, **top}


def test_the_reward_model_section_gets_its_defaults_and_reads_back(tmp_path):
    from textgym.agents import RewardModelConfig

    cfg = parse_config(with_rm({"data": {"dataset": "HH_RLHF_harmless"}}, seed=4))
    rm = cfg.reward_model
    assert rm.model == "all-minilm-l6-v2" and rm.use_as_reward is True
    assert rm.data.dataset == "hh-rlhf-harmless" and rm.data.split == "train" and rm.data.eval_split == "test"
    assert isinstance(rm.config, RewardModelConfig) and rm.config.seed == 4 and rm.config.max_length == 512
    assert cfg.algorithm == "ppo"
    again = parse_config(yaml.safe_load(yaml.safe_dump(config_to_dict(cfg))))
    assert again == cfg
    none = parse_config({**MINIMAL, "train": {}, "reward_model": {"data": {"dataset": "hh-rlhf"}}})
    assert none.algorithm == "none" and none.algo is None  # stages and no training length: no RL
    assert parse_config(yaml.safe_load(yaml.safe_dump(config_to_dict(none)))) == none


@pytest.mark.parametrize("rm, key, words", [
    ({"dta": {}}, "reward_model.dta", "Did you mean 'data'?"),
    ({"data": {}}, "reward_model.data", "give one of reward_model.data.path"),
    ({"data": {"dataset": "hh-rlhf-harmles"}}, "reward_model.data.dataset", "Did you mean 'hh-rlhf-harmless'?"),
    ({"data": {"dataset": "movie-reviews"}}, "reward_model.data.dataset", "need the column(s)"),
    ({"data": {"dataset": "hh-rlhf", "eval_split": "tset"}}, "reward_model.data.eval_split", "Did you mean 'test'?"),
    ({"data": {"dataset": "hh-rlhf", "eval_split": "train"}}, "reward_model.data.eval_split", "overlap"),
    ({"data": {"dataset": "hh-rlhf", "max_rows": 0}}, "reward_model.data.max_rows", ">= 1"),
    ({"data": {"dataset": "hh-rlhf"}, "model": "all-minilm-l6-v3"}, "reward_model.model",
     "Did you mean 'all-minilm-l6-v2'?"),
    ({"data": {"dataset": "hh-rlhf"}, "config": {"learnig_rate": 1}}, "reward_model.config.learnig_rate",
     "Did you mean 'learning_rate'?"),
    ({"data": {"dataset": "hh-rlhf"}, "config": {"truncation": "middle"}}, "reward_model.config.truncation",
     "truncation"),
    ({"data": {"dataset": "hh-rlhf"}, "use_as_reward": "yes"}, "reward_model.use_as_reward", "true or false"),
])
def test_reward_model_config_errors_name_the_key(rm, key, words):
    err = error_of(with_rm(rm))
    assert err.key == key and words in str(err)


def test_data_files_and_env_rewards_are_checked(tmp_path):
    err = error_of(with_rm({"data": {"path": str(tmp_path / "missing.jsonl")}}))
    assert err.key == "reward_model.data.path" and "no such file" in str(err)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "good": "a", "bad": "b"}\n')
    err = error_of(with_rm({"data": {"path": str(bad)}}))
    assert err.key == "reward_model.data.path" and "['chosen', 'rejected']" in str(err)
    ok = parse_config(with_rm({"data": {"path": str(bad)}, "config": {"chosen_key": "good", "rejected_key": "bad"}}))
    assert ok.reward_model.data.path == str(bad)
    env = {"id": "textgym/TokenCount-v0", "kwargs": {"reward": "length"}}
    err = error_of(with_rm({"data": {"dataset": "hh-rlhf"}}, env=env))
    assert err.key == "reward_model.use_as_reward" and "env.kwargs.reward" in str(err)
    err = error_of(with_rm({"data": {"dataset": "hh-rlhf"}}, eval_env={"kwargs": {"reward": "length"}}))
    assert err.key == "reward_model.use_as_reward" and "eval_env.kwargs.reward" in str(err)
    assert parse_config(with_rm({"data": {"dataset": "hh-rlhf"}, "use_as_reward": False}, env=env))


def test_a_config_without_rl_is_checked():
    sft = {"data": {"max_rows": 2}}
    assert parse_config({**MINIMAL, "algorithm": "none", "train": {}, "sft": sft}).algorithm == "none"
    assert parse_config({**MINIMAL, "algorithm": None, "train": {}, "sft": sft}).algorithm == "none"
    err = error_of({**MINIMAL, "algorithm": "none", "sft": sft})
    assert err.key == "train.iterations" and "runs no RL" in str(err)
    err = error_of({**MINIMAL, "algorithm": "none", "train": {}, "sft": sft, "algo": {"learning_rate": 0.1}})
    assert err.key == "algo"
    err = error_of({**MINIMAL, "algorithm": "none", "train": {}})
    assert err.key == "algorithm" and "trains nothing" in str(err)
    err = error_of({**MINIMAL, "algorithm": "nnoe"})
    assert err.key == "algorithm" and "Did you mean 'none'?" in str(err)
    err = error_of({**MINIMAL, "algorithm": "ppo", "train": {}, "sft": sft})
    assert err.key == "train" and "algorithm: none" in str(err)


def test_the_example_configs_are_valid():
    rlhf = load_config(ROOT / "examples" / "configs" / "rlhf_hh.yaml")
    assert rlhf.env.id == "textgym/HHDialogue-v0" and rlhf.algorithm == "ppo"
    assert rlhf.sft.data.task == "textgym/HHDialogue-v0"
    assert rlhf.reward_model.data.dataset == "hh-rlhf-harmless" and rlhf.reward_model.use_as_reward
    assert rlhf.reward_model.model == "all-minilm-l6-v2" and rlhf.algo.kl_coef > 0
    sft_only = load_config(ROOT / "examples" / "configs" / "sft_only.yaml")
    assert sft_only.algorithm == "none" and sft_only.sft is not None and sft_only.algo is None

