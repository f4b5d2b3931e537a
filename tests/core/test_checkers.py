"""Every registered id passes Gymnasium's and stable-baselines3's env checkers."""

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import textgym

IDS = textgym.list_envs()
#: per-id arguments that keep the check fast (the simulated user's LM: the tiny preset, not SmolLM2)
EXTRA = {"textgym/SimulatedUser-v0": {"user_model": "tiny-llama"}, "textgym/TextArena-v0": {"num_samples": 4},
         "textgym/ReasoningGym-v0": {"num_samples": 20},
         # the generic env has no data or reward of its own
         "textgym/Text-v0": {"data": [{"prompt": f"say {w}"} for w in ("a", "b", "c")], "reward": "length",
                             "split": "all"}}
#: ids of optional extras and the module each needs (CI installs them; elsewhere the check is skipped without them)
NEEDS = {"textgym/ReasoningGym-v0": "reasoning_gym", "textgym/TextArena-v0": "textarena"}


def make_env(env_id, tok, vector=False):
    if env_id in NEEDS:
        pytest.importorskip(NEEDS[env_id])
    kw = dict(tokenizer=tok, max_new_tokens=8, **EXTRA.get(env_id, {}))
    if vector:
        return gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kw)
    return gym.make(env_id, **kw)


def test_there_are_registered_ids():
    assert "textgym/IMDB-v0" in IDS


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env(env_id, gpt2_tok):
    env = make_env(env_id, gpt2_tok)
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # any checker complaint fails the test
        gym_check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_check_env(env_id, gpt2_tok):
    env = make_env(env_id, gpt2_tok)
    sb3_check_env(env.unwrapped, warn=True)


@pytest.mark.parametrize("env_id", IDS)
def test_vector_env_spaces(env_id, gpt2_tok):
    venv = make_env(env_id, gpt2_tok, vector=True)
    obs, _ = venv.reset(seed=0)
    assert obs in venv.observation_space
    obs, *_ = venv.step(venv.action_space.sample())
    assert obs in venv.observation_space
