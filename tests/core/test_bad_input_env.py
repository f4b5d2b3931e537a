"""Bad input to the envs and the reward protocol (issue 14, part 4): clear ValueErrors, warnings, penalties."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import textgym  # noqa: F401  (registers the ids)
from textgym import TextGenEnv, TextGenVectorEnv
from textgym.reward_api import RewardError, call_reward, as_reward_function
from textgym.prompts import PromptTruncatedWarning
from textgym.tokenizers import char_tokenizer

SAMPLES = [{"prompt": "abc", "references": ["abc"]}, {"prompt": "de", "references": ["de"]}]


def const_reward(prompts, completions, **kw):
    return np.ones(len(completions), np.float32)


def make_env(**kw):
    kw = {"max_prompt_length": 8, "max_new_tokens": 4, **kw}
    return TextGenEnv(char_tokenizer(), SAMPLES, const_reward, **kw)


@pytest.mark.parametrize("action", [None, [3], [3, 4], np.array([3, 4]), 3 + 0j, np.complex64(3), float("inf"),
                                    float("-inf"), float("nan"), np.float32(np.inf), True, False, np.bool_(True),
                                    "3", 2.5],
                         ids=repr)
def test_the_single_env_refuses_what_is_not_a_token_id_with_a_value_error(action):
    env = make_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="token id"):
        env.step(action)
    assert env._t == 0  # nothing was appended


@pytest.mark.parametrize("action", [5, np.int64(5), np.int32(5), np.uint8(5), np.array(5), np.array(5, np.int16), 5.0])
def test_the_single_env_accepts_integers_numpy_scalars_and_0d_int_arrays(action):
    env = make_env()
    obs, *_ = env.reset(seed=0)
    obs, *_ = env.step(action)
    assert obs["input_ids"][8] == 5 and obs["attention_mask"][8] == 1


@pytest.mark.parametrize("actions", [np.array([True, False]), np.array([3 + 0j, 4]), np.array([np.inf, 3.0]),
                                     np.array([-np.inf, 3.0]), np.array([np.nan, 3.0]), [None, 3], None, [3],
                                     np.array([2.5, 3.0])],
                         ids=repr)
def test_the_vector_env_refuses_what_is_not_an_array_of_token_ids(actions):
    env = TextGenVectorEnv(char_tokenizer(), SAMPLES, const_reward, num_envs=2, max_prompt_length=8, max_new_tokens=4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        env.step(actions)


def test_the_vector_env_accepts_integer_arrays_of_any_int_dtype():
    env = TextGenVectorEnv(char_tokenizer(), SAMPLES, const_reward, num_envs=2, max_prompt_length=8, max_new_tokens=4)
    env.reset(seed=0)
    for dtype in (np.int64, np.int32, np.uint16):
        obs, *_ = env.step(np.array([5, 6], dtype))
    assert obs["input_ids"][:, 8:11].tolist() == [[5, 5, 5], [6, 6, 6]]


@pytest.mark.parametrize("cls", ["single", "vector"])
def test_a_vocab_size_smaller_than_the_tokenizer_is_refused(cls):
    # Copy-v0's char tokenizer has ids up to len(tok) - 1; vocab_size=10 would put prompt ids outside the space
    with pytest.raises(ValueError, match=r"vocab_size=10 cannot hold the tokenizer's \d+ token ids"):
        if cls == "single":
            gym.make("textgym/Copy-v0", vocab_size=10)
        else:
            gym.make_vec("textgym/Copy-v0", num_envs=2, vectorization_mode="vector_entry_point", vocab_size=10)


def test_every_prompt_id_lies_in_the_declared_space_with_a_larger_vocab_size():
    env = gym.make("textgym/Copy-v0", vocab_size=len(char_tokenizer()) + 5)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and obs["input_ids"].max() < env.action_space.n


@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
def test_shuffle_must_be_a_bool(value):
    with pytest.raises(ValueError, match="shuffle must be True or False"):
        make_env(shuffle=value)


@pytest.mark.parametrize("kw", [{"max_new_tokens": 0}, {"max_new_tokens": -5}, {"max_new_tokens": "ten"},
                                {"max_prompt_length": -1}, {"max_new_tokens": True}, {"reward_on_error": "skip"}],
                         ids=repr)
def test_bad_lengths_and_modes_raise_value_errors(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        make_env(**kw)


@pytest.mark.parametrize("side,kept", [("left", "end"), ("right", "start")])
def test_a_long_prompt_is_cut_with_one_warning_saying_how_much_and_from_where(side, kept):
    long = [{"prompt": "x" * 100_000}, {"prompt": "y" * 50_000}]
    with pytest.warns(PromptTruncatedWarning) as rec:
        env = TextGenEnv(char_tokenizer(), long, const_reward, max_prompt_length=16, max_new_tokens=2,
                         truncation_side=side)
        env.reset(seed=0)
        env.reset()
    msgs = [str(w.message) for w in rec if "max_prompt_length" in str(w.message)]
    assert len(msgs) == 1  # once per env, although both prompts were cut
    lost = "start" if kept == "end" else "end"
    n_tokens = len(char_tokenizer()("x" * 100_000)["input_ids"])
    assert f"a prompt of {n_tokens} tokens (100000 characters)" in msgs[0]
    assert f"{n_tokens - 16} tokens were dropped from its {lost}" in msgs[0]
    assert f"truncation_side={side!r} keeps the {kept}" in msgs[0]


def test_a_prompt_that_fits_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_env().reset(seed=0)


# ----------------------------------------------------------------------------- reward_on_error="penalty"


def batched(fn):
    return as_reward_function(fn, batched=True)


@pytest.mark.parametrize("out", [np.zeros(3, np.float32), np.zeros((2, 2), np.float32), "bad", (np.zeros(2), 5),
                                 (np.zeros(2), {"c": np.zeros(5)})],
                         ids=["too-long", "2x2", "string", "bad-tuple", "bad-component"])
def test_penalty_mode_covers_a_reward_of_the_wrong_shape_or_type(out):
    fn = batched(lambda prompts, completions, **kw: out)
    with pytest.raises(RewardError):
        call_reward(fn, ["p", "q"], ["a", "b"])
    scores, comps = call_reward(fn, ["p", "q"], ["a", "b"], on_error="penalty", penalty=-1.0)
    assert scores.tolist() == [-1.0, -1.0] and comps["reward_error"].tolist() == [1.0, 1.0]


def test_penalty_mode_replaces_only_the_nan_scores():
    fn = batched(lambda prompts, completions, **kw: np.array([0.5, np.nan], np.float32))
    with pytest.raises(RewardError, match="must be finite"):
        call_reward(fn, ["p", "q"], ["a", "b"])
    scores, comps = call_reward(fn, ["p", "q"], ["a", "b"], on_error="penalty", penalty=-2.0)
    assert scores.tolist() == [0.5, -2.0] and comps["reward_error"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("mode", ["raise", "penalty"])
def test_the_env_applies_the_penalty_to_a_misshapen_reward_and_raises_without_it(mode):
    env = TextGenEnv(char_tokenizer(), SAMPLES, batched(lambda p, c, **kw: np.zeros(7, np.float32)),
                     max_prompt_length=8, max_new_tokens=1, reward_on_error=mode)
    env.reset(seed=0)
    if mode == "raise":
        with pytest.raises(RewardError, match=r"shape \(7,\)"):
            env.step(5)
    else:
        _, reward, _, truncated, info = env.step(5)
        assert truncated and reward == 0.0 and info["reward_components"]["reward_error"] == 1.0
