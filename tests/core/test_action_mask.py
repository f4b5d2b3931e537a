"""The allowed-token mask of the envs (EnvSettings.allowed_token_ids, textgym/action_mask.py)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from textgym.action_mask import allowed_token_mask, token_ids_of
from textgym.env_settings import EnvSettings
from textgym.tokenizers import char_tokenizer

TOK = char_tokenizer()
DIGITS = token_ids_of(TOK, "0123456789")  # tiny-char: EOS 1, '0'..'9' = 3..12


def test_digit_ids_are_eos_and_the_ten_digit_characters():
    assert DIGITS == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert TOK.decode(DIGITS[1:]) == "0123456789"


def test_the_mask_is_exactly_the_allowed_ids():
    env = gym.make("textgym/Sort-v0", allowed_token_ids=[12, 3, 1, 3])
    mask = env.unwrapped.action_masks()
    assert mask.shape == (57,) and mask.dtype == bool
    assert np.flatnonzero(mask).tolist() == [1, 3, 12]
    assert env.unwrapped.settings.allowed_token_ids == (1, 3, 12)  # sorted, deduplicated
    # the SB3 look-up goes through wrappers (gym.make's OrderEnforcing / PassiveEnvChecker)
    assert np.array_equal(env.get_wrapper_attr("action_masks")(), mask)
    vec = gym.make_vec("textgym/Sort-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       allowed_token_ids=[12, 3, 1])
    vmask = vec.unwrapped.action_masks()
    assert vmask.shape == (3, 57) and (vmask == mask[None]).all()


def test_an_unrestricted_env_masks_nothing():
    env = gym.make("textgym/Sort-v0")
    assert env.unwrapped.allowed_tokens is None and env.unwrapped.action_masks().all()


def test_a_disallowed_token_ends_the_episode_with_the_penalty():
    env = gym.make("textgym/Sort-v0", allowed_token_ids=DIGITS, invalid_action_penalty=-2.5)
    env.reset(seed=0)
    _, r, term, trunc, info = env.step(DIGITS[2])  # '1' is allowed: the episode goes on
    assert (r, term, trunc) == (0.0, False, False) and "invalid_action" not in info
    a = TOK.convert_tokens_to_ids("a")
    obs, r, term, trunc, info = env.step(a)
    assert (r, term, trunc) == (-2.5, True, False)
    assert info["invalid_action"] == a and info["score"] == -2.5 and info["completion"] == "1a"
    assert obs["input_ids"][env.unwrapped.max_prompt_length + 1] == a  # the token is appended
    with pytest.raises(RuntimeError, match="finished episode"):
        env.step(DIGITS[0])


def test_the_vector_env_pays_the_penalty_per_row_and_scores_the_others():
    vec = gym.make_vec("textgym/Sort-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       allowed_token_ids=DIGITS, autoreset_mode="Disabled")
    vec.reset(seed=0)
    a = TOK.convert_tokens_to_ids("a")
    _, r, term, trunc, info = vec.step(np.array([DIGITS[0], a, DIGITS[3]]))  # EOS, disallowed, '2'
    assert r.tolist()[1] == -1.0 and term.tolist() == [True, True, False] and not trunc.any()
    assert info["_invalid_action"].tolist() == [False, True, False] and info["invalid_action"][1] == a
    assert info["_score"].tolist() == [True, True, False] and info["score"][1] == -1.0
    assert info["score"][0] == r[0] == 0.0  # an empty answer scored by the task's reward
    assert info["completion"][1] == "a"


def test_single_and_vector_rows_agree_on_a_disallowed_token():
    a = TOK.convert_tokens_to_ids("z")
    env = gym.make("textgym/Sort-v0", allowed_token_ids=DIGITS, invalid_action_penalty=-0.5).unwrapped
    env.reset(seed=3)
    env.step(DIGITS[5])
    single = env.step(a)
    vec = gym.make_vec("textgym/Sort-v0", num_envs=1, vectorization_mode="vector_entry_point",
                       allowed_token_ids=DIGITS, invalid_action_penalty=-0.5, autoreset_mode="Disabled")
    vec.reset(seed=3)
    vec.step(np.array([DIGITS[5]]))
    obs, r, term, _, info = vec.step(np.array([a]))
    assert single[1] == r[0] == -0.5 and single[2] == term[0]
    assert np.array_equal(single[0]["input_ids"], obs["input_ids"][0])


def test_gymnasium_check_env_passes_on_a_masked_env():
    check_env(gym.make("textgym/Sort-v0", allowed_token_ids=DIGITS).unwrapped)


@pytest.mark.parametrize("bad", [[], "0123", [1.5], [True], [None]])
def test_bad_allowed_ids_are_refused_when_the_settings_are_built(bad):
    with pytest.raises(ValueError, match="allowed_token_ids must be a non-empty list of integer token ids"):
        EnvSettings(allowed_token_ids=bad)


def test_ids_out_of_range_are_refused_before_the_data_is_read():
    with pytest.raises(ValueError, match=r"allowed_token_ids \[57\] are not token ids in \[0, 57\)"):
        gym.make("textgym/Sort-v0", allowed_token_ids=[1, 57])
    assert allowed_token_mask(None, 5) is None


def test_a_non_finite_penalty_is_refused():
    with pytest.raises(ValueError, match="invalid_action_penalty must be a finite number"):
        EnvSettings(invalid_action_penalty=float("nan"))
