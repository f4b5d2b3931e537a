"""Every registered id passes Gymnasium's and stable-baselines3's env checkers."""

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import textgym

IDS = textgym.list_envs()
#: Arguments an id needs beyond the tokenizer (Text-v0 has no data or reward of its own).
NEEDS = {"textgym/Text-v0": {"data": [{"prompt": f"say {w}"} for w in ("a", "b", "c")], "reward": "length",
                             "split": "all"}}


def test_there_are_registered_ids():
    assert "textgym/IMDB-v0" in IDS


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env(env_id, gpt2_tok):
    env = gym.make(env_id, tokenizer=gpt2_tok, max_new_tokens=8, **NEEDS.get(env_id, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # any checker complaint fails the test
        gym_check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_check_env(env_id, gpt2_tok):
    env = gym.make(env_id, tokenizer=gpt2_tok, max_new_tokens=8, **NEEDS.get(env_id, {}))
    sb3_check_env(env.unwrapped, warn=True)


@pytest.mark.parametrize("env_id", IDS)
def test_vector_env_spaces(env_id, gpt2_tok):
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", tokenizer=gpt2_tok, max_new_tokens=8,
                         **NEEDS.get(env_id, {}))
    obs, _ = venv.reset(seed=0)
    assert obs in venv.observation_space
    obs, *_ = venv.step(venv.action_space.sample())
    assert obs in venv.observation_space
