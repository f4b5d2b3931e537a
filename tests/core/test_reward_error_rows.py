"""A reward error names the env row and the data set's sample index, not the position in the scored batch."""

import numpy as np
import pytest

from textgym import TextGenEnv, TextGenVectorEnv
from textgym.reward_api import RewardError

SAMPLES = [{"prompt": p} for p in ["ab", "cd", "ef", "gh", "bad"]]


def picky(prompt, completion):
    if prompt == "bad":
        raise ZeroDivisionError("no score for this prompt")
    return 1.0


def test_vector_env_reward_error_names_the_env_row_and_sample(char_tok):
    env = TextGenVectorEnv(char_tok, SAMPLES, picky, 4, max_prompt_length=4, max_new_tokens=3,
                           autoreset_mode="Disabled")
    # rows 0..3 get samples 0, 1, 2, 4 ("bad" on row 3)
    env.reset(options={"sample_indices": [0, 1, 2, 4]})
    eos, a = char_tok.eos_token_id, char_tok("a")["input_ids"][0]
    env.step(np.array([eos, eos, a, a]))  # rows 0 and 1 end and are scored
    with pytest.raises(RewardError, match=r"raised ZeroDivisionError on env row 3 \(sample 4\) \(completion 'a'\)"):
        env.step(np.array([eos, eos, eos, eos]))  # rows 2 and 3 end: row 3 is at position 1 of the scored rows


def test_single_env_reward_error_names_the_sample(char_tok):
    env = TextGenEnv(char_tok, SAMPLES, picky, max_prompt_length=4, max_new_tokens=3)
    env.reset(options={"sample_index": 4})
    with pytest.raises(RewardError, match=r"on sample 4 \(completion ''\)"):
        env.step(char_tok.eos_token_id)
