"""Run configs: YAML -> dataclasses, defaults, --set overrides with type coercion, errors naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from textgym.app.config import (
    ConfigError,
    apply_overrides,
    config_to_dict,
    load_config,
    parse_config,
    parse_overrides,
)

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = ROOT / "examples" / "configs" / "synthetic_ppo.yaml"
MINIMAL = {"model": "tiny-char", "env": {"id": "textgym/TokenCount-v0"}, "train": {"iterations": 2}}


def error_of(raw=None, overrides=(), path=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        if path is not None:
            load_config(path, overrides)
        else:
            raw = copy.deepcopy({**MINIMAL, **(raw or {})})
            parse_config(apply_overrides(raw, parse_overrides(overrides)))
    return info.value


def test_the_example_config_gets_every_default_filled():
    from textgym.agents import PPOConfig

    cfg = load_config(SYNTHETIC)
    assert cfg.name == "synthetic-ppo" and cfg.model == "tiny-char" and cfg.algorithm == "ppo"
    assert isinstance(cfg.algo, PPOConfig)
    assert cfg.algo.learning_rate == 0.002 and cfg.algo.n_epochs == 2 and cfg.algo.kl_coef == 0.0
    assert cfg.algo.gamma == 1.0 and cfg.algo.clip_range == 0.2  # PPOConfig defaults
    assert cfg.algo.seed == 0  # the run's seed
    assert cfg.eval_env.id == "textgym/TokenCount-v0"
    assert cfg.eval_env.kwargs == {"split": "test"}
    assert cfg.eval_env.num_envs == 32  # min(env.num_envs, eval.n_episodes)
    assert cfg.eval.seed == 1 and cfg.eval.every == 20 and cfg.eval.perplexity is None
    assert cfg.train.iterations == 60 and cfg.train.total_timesteps is None and cfg.train.save_every == 20
    assert cfg.sft is None


def test_the_resolved_config_reads_back_to_the_same_config():
    import yaml

    cfg = load_config(SYNTHETIC, ["sft.data.max_rows=4", "sft.config.max_steps=2"])
    text = yaml.safe_dump(config_to_dict(cfg))
    again = parse_config(yaml.safe_load(text))
    assert again == cfg
    assert again.algo.adam_betas == (0.9, 0.999)  # a YAML list back to the tuple field
    assert "run_dir" not in config_to_dict(cfg)["algo"]  # set by the pipeline, not by the user


def test_set_overrides_are_applied_with_type_coercion():
    cfg = load_config(SYNTHETIC, ["algo.learning_rate=0.001", "algo.kl_coef=1", "algo.max_grad_norm=null",
                                  "algo.target_kl_ref=1e-1", "env.kwargs.max_new_tokens=8", "seed=3"])
    assert cfg.algo.learning_rate == 0.001
    assert isinstance(cfg.algo.kl_coef, float) and cfg.algo.kl_coef == 1.0  # YAML int -> float field
    assert cfg.algo.max_grad_norm is None
    assert cfg.algo.target_kl_ref == 0.1  # "1e-1" is a string to YAML 1.1; a numeric string is accepted
    assert cfg.env.kwargs == {"max_new_tokens": 8}
    assert cfg.eval_env.kwargs == {"max_new_tokens": 8, "split": "test"}
    assert cfg.seed == 3 and cfg.eval.seed == 4
    assert cfg.algo.seed == 3  # overrides apply before parsing: the algorithm inherits the new run seed


def test_the_algorithm_inherits_the_run_seed_unless_it_sets_its_own():
    assert parse_config({**MINIMAL, "seed": 7}).algo.seed == 7
    assert parse_config({**MINIMAL, "seed": 7, "algo": {"seed": 2}}).algo.seed == 2


def test_a_typo_in_a_key_names_the_key_path_and_suggests_the_field():
    err = error_of(overrides=["algo.learnig_rate=0.1"])
    assert err.key == "algo.learnig_rate"
    assert "Did you mean 'learning_rate'?" in str(err)
    assert "config error at `algo.learnig_rate`" in str(err)
    assert "kl_coef" in str(err)  # the valid keys are listed
    err = error_of(raw={"trian": {"iterations": 3}})
    assert err.key == "trian" and "Did you mean 'train'?" in str(err)
    err = error_of(overrides=["eval.n_episode=4"])
    assert err.key == "eval.n_episode" and "'n_episodes'" in str(err)


def test_a_typo_in_an_sft_config_key_is_caught_too():
    err = error_of(overrides=["sft.config.learnig_rate=0.1"])
    assert err.key == "sft.config.learnig_rate" and "'learning_rate'" in str(err)
    err = error_of(overrides=["sft.dta.task=textgym/Copy-v0"])
    assert err.key == "sft.dta" and "'data'" in str(err)


def test_unknown_env_algorithm_and_reward_list_the_choices():
    err = error_of(overrides=["env.id=textgym/IMBD-v0"])
    assert err.key == "env.id" and "Did you mean 'textgym/IMDB-v0'?" in str(err)
    assert "textgym/TokenCount-v0" in str(err) and "Choices:" in str(err)

    err = error_of(overrides=["algorithm=ppoo"])
    assert err.key == "algorithm" and "Did you mean 'ppo'?" in str(err) and "Choices: " in str(err)

    err = error_of(overrides=["env.kwargs.reward=sentimnt"])
    assert err.key == "env.kwargs.reward" and "Did you mean 'sentiment'?" in str(err)
    assert "sentiment-vader" in str(err)

    err = error_of(raw={"env": {"id": "textgym/TokenCount-v0", "kwargs": {"reward": {"weighted": {"bleu": 1,
                                                                                                  "lenght": 0.5}}}}})
    assert err.key == "env.kwargs.reward.weighted.lenght" and "'length'" in str(err)


def test_unknown_env_kwargs_and_pipeline_managed_keys_are_errors():
    err = error_of(overrides=["env.kwargs.max_new_token=8"])
    assert err.key == "env.kwargs.max_new_token" and "Did you mean 'max_new_tokens'?" in str(err)
    err = error_of(overrides=["env.kwargs.tokenizer=tiny-gpt2"])
    assert err.key == "env.kwargs.tokenizer" and "set `model`" in str(err)
    err = error_of(overrides=["algo.run_dir=/tmp/x"])
    assert err.key == "algo.run_dir" and "--runs-dir" in str(err)
    err = error_of(overrides=["algo.save_every=3"])
    assert err.key == "algo.save_every" and "train.save_every" in str(err)


@pytest.mark.parametrize("item, key, words", [
    ("algo.learning_rate=fast", "algo.learning_rate", "expected a number, got the string 'fast'"),
    ("algo.learning_rate=true", "algo.learning_rate", "expected a number, got True"),
    ("algo.n_epochs=2.5", "algo.n_epochs", "expected an integer, got 2.5"),
    ("eval.before=maybe", "eval.before", "expected true or false"),
    ("model=7", "model", "expected a string"),
    ("algo.adam_betas=[0.9]", "algo.adam_betas", "expected 2 values"),
    ("env.kwargs=3", "env.kwargs", "expected a mapping"),
    ("algo.learning_rate=.nan", "algo.learning_rate", "NaN"),
])
def test_values_of_the_wrong_type_are_errors(item, key, words):
    err = error_of(overrides=[item])
    assert err.key == key and words in str(err)


def test_values_the_config_class_rejects_are_reported_with_the_field():
    err = error_of(overrides=["algo.kl_estimator=k7"])
    assert err.key == "algo.kl_estimator" and "kl_estimator must be one of" in str(err)
    err = error_of(overrides=["sft.config.lr_schedule=steps"])
    assert err.key == "sft.config.lr_schedule" and "lr_schedule" in str(err)


def test_training_length_is_exactly_one_of_iterations_or_timesteps():
    err = error_of(overrides=["train.total_timesteps=100"])
    assert err.key == "train" and "exactly one" in str(err)
    err = error_of(raw={"train": {}})
    assert err.key == "train"
    assert parse_config({**MINIMAL, "train": {"total_timesteps": 50}}).train.total_timesteps == 50
    err = error_of(overrides=["train.iterations=0"])
    assert err.key == "train.iterations"


def test_model_and_names_are_checked():
    err = error_of(overrides=["model=tiny-lama"])
    assert err.key == "model" and "Did you mean 'tiny-llama'?" in str(err)
    assert parse_config({**MINIMAL, "model": "HuggingFaceTB/SmolLM2-135M"}).model == "HuggingFaceTB/SmolLM2-135M"
    err = error_of(overrides=["name=a/b"])
    assert err.key == "name"


def test_sft_data_defaults_to_the_training_task_and_checks_paths(tmp_path):
    cfg = parse_config({**MINIMAL, "sft": {"data": {"max_rows": 4}, "config": {"max_steps": 2}}})
    assert cfg.sft.data.task == "textgym/TokenCount-v0" and cfg.sft.data.split == "train"
    assert cfg.sft.config.max_steps == 2 and cfg.sft.config.seed == 0
    err = error_of(raw={"sft": {"data": {"path": str(tmp_path / "missing.jsonl")}}})
    assert err.key == "sft.data.path"
    err = error_of(raw={"sft": {"config": {"lora": True, "merge_lora": False}}})
    assert err.key == "sft.config.merge_lora"


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["algo.learning_rate"])
    assert parse_overrides(["a.b=[1, 2]", "c={x: 1}", "d=text", "e="]) == [
        ("a.b", [1, 2]), ("c", {"x": 1}), ("d", "text"), ("e", "")]
    with pytest.raises(ConfigError) as info:
        apply_overrides({"seed": 1}, [("seed.x", 2)])
    assert info.value.key == "seed.x"


def test_missing_or_non_mapping_files_are_errors(tmp_path):
    err = error_of(path=tmp_path / "nope.yaml")
    assert "no such config file" in str(err)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    assert "YAML mapping" in str(error_of(path=bad))
    bad.write_text("model: [unclosed\n")
    assert "not valid YAML" in str(error_of(path=bad))


def test_the_run_name_defaults_to_the_file_name(tmp_path):
    import yaml

    p = tmp_path / "my-run.yaml"
    p.write_text(yaml.safe_dump(MINIMAL))
    assert load_config(p).name == "my-run"
    assert load_config(p, name="other").name == "other"


def test_a_run_can_be_given_by_overrides_alone():
    cfg = load_config(None, ["model=tiny-char", "env.id=textgym/Copy-v0", "train.total_timesteps=64"], name="flags")
    assert cfg.name == "flags" and cfg.env.id == "textgym/Copy-v0" and cfg.train.total_timesteps == 64
    assert "needs an id" in str(error_of(raw={"env": {}}))
    assert error_of(overrides=["eval.n_episodes=1"]).key == "eval.n_episodes"


def test_imports_register_custom_rewards_before_validation(tmp_path, monkeypatch):
    (tmp_path / "h1_custom_reward.py").write_text(
        "import textgym.rewards as R\n"
        "@R.register('h1-shouting')\n"
        "def shouting(prompt, completion):\n"
        "    return sum(c.isupper() for c in completion) / max(len(completion), 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = {"env": {"id": "textgym/Copy-v0", "kwargs": {"reward": "h1-shouting"}}}
    assert error_of(raw=raw).key == "env.kwargs.reward"  # not registered yet
    cfg = parse_config({**copy.deepcopy(MINIMAL), **raw, "imports": ["h1_custom_reward"]})
    assert cfg.env.kwargs["reward"] == "h1-shouting"
    err = error_of(raw={"imports": ["no_such_module_h1"]})
    assert err.key == "imports[0]" and "cannot import" in str(err)


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_parses(path, tmp_path, monkeypatch):
    # rlhf_human.yaml reads a feedback project that its first commands create (runs/rlhf-human-feedback.db)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "rlhf-human-feedback.db").write_bytes(b"")
    cfg = load_config(path)
    assert cfg.name and cfg.model


def test_the_flagship_config_is_the_documented_pipeline():
    # README's Quick start describes this config: SmolLM2, IMDB with the sentiment classifier, reward-filtered
    # SFT, PPO with LoRA and a KL penalty, evaluation before/after with perplexity on held-out reviews
    cfg = load_config(ROOT / "examples" / "configs" / "imdb_smollm2.yaml")
    assert cfg.model == "smollm2-135m-instruct" and cfg.env.id == "textgym/IMDB-v0"
    assert cfg.env.kwargs["reward"] == "sentiment"
    assert cfg.sft is not None and cfg.sft.data.min_reward == 0.8 and cfg.sft.data.env_kwargs == {"sentiment": "pos"}
    assert cfg.algorithm == "ppo" and cfg.algo.kl_coef > 0 and cfg.algo.lora is not None
    assert cfg.eval.before and cfg.eval.perplexity is not None and cfg.eval_env.kwargs["split"] == "test"
