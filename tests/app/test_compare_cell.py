"""Each comparison cell is a `textgym train` pipeline run: its folder is a run folder the pipeline's tools read."""

from __future__ import annotations

import json

import pytest

from textgym.app.compare import _set_path, compare
from textgym.app.config import ConfigError, load_config


def test_a_cell_is_a_pipeline_run_folder(tmp_path):
    result = compare(env_id="textgym/TokenCount-v0", model="tiny-char", algos=["ppo"], seeds=[3], budget=12,
                     eval_every=6, eval_episodes=2, num_envs=2, env_kwargs={"max_count": 4},
                     out_dir=str(tmp_path / "c"), progress=False)
    cell = tmp_path / "c" / "ppo" / "seed3"
    state = json.loads((cell / "run_state.json").read_text())
    assert state["stages"] == {"sft": "skipped", "preference": "skipped", "reward_model": "skipped", "eval_before": "skipped", "rl": "done",
                               "eval_after": "done", "report": "done"}
    assert state["status"] == "done" and state["rl"]["done_target"] == ["timesteps", 12]
    (run,) = result.runs
    targets = [p["target_tokens"] for p in run.points]  # one update of 2 rows x <= 6 tokens may pass 6 and 12
    assert state["compare"]["points"] == run.points and targets[0] == 0 and targets[-1] == 12
    assert state["rl"]["num_timesteps"] == run.points[-1]["tokens"]
    assert state["results"]["after"]["score_mean"] == run.points[-1]["score_mean"]
    # the pipeline's own config reader takes the cell's config.yaml back
    cfg = load_config(cell / "config.yaml")
    assert (cfg.name, cfg.seed, cfg.algorithm, cfg.algo.seed, cfg.env.num_envs) == ("seed3", 3, "ppo", 3, 2)
    assert cfg.env.kwargs == {"max_count": 4} and cfg.train.total_timesteps == 12
    assert (cell / "checkpoint" / "MANIFEST.json").is_file()


@pytest.mark.parametrize(("key", "path"), [
    ("algo.ppo.learning_rate", "algo_overrides.ppo.learning_rate"), ("algo.*.n_epochs", "algo_overrides.*.n_epochs"),
    ("env.max_count", "env_kwargs.max_count"), ("env.reward.name", "env_kwargs.reward.name"),
    ("eval_env.split", "eval_env_kwargs.split"), ("eval.greedy", "eval_kwargs.greedy"), ("budget", "budget"),
])
def test_set_keys_map_to_the_settings_that_apply_overrides_sets(key, path):
    assert _set_path(key) == path


@pytest.mark.parametrize("key", ["algo.ppo", "algo.ppo.a.b", "colour", "budget.x"])
def test_set_keys_that_name_no_setting(key):
    with pytest.raises(ConfigError):
        _set_path(key)
