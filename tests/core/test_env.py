"""TextGenEnv: layout, episode ends, rewards, seeding and bad input."""

import numpy as np
import pytest

from textgym import TextGenEnv
from textgym.reward_api import DenseRewardFunction, RewardError

SAMPLES = [
    {"prompt": "ab", "references": ["ba"], "target": "x"},
    {"prompt": "hello", "references": "olleh", "target": "y"},
    {"prompt": "123", "target": "z"},
]


class Recorder:
    """Batched reward that records its calls; scores = completion length."""

    batched = True

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, completions, *, references=None, **columns):
        self.calls.append((list(prompts), list(completions), references, columns))
        return np.array([len(c) for c in completions], dtype=np.float32)


def ids(tok, text):
    return tok(text)["input_ids"]


def make(tok, reward=None, **kw):
    kw.setdefault("max_prompt_length", 4)
    kw.setdefault("max_new_tokens", 3)
    return TextGenEnv(tok, SAMPLES, reward or Recorder(), **kw)


def test_observation_layout_left_padded_prompt_then_completion(char_tok):
    env = make(char_tok, shuffle=False)
    obs, info = env.reset(seed=0, options={"sample_index": 0})
    pad = char_tok.pad_token_id
    a, b = ids(char_tok, "ab")
    np.testing.assert_array_equal(obs["input_ids"], [pad, pad, a, b, pad, pad, pad])
    np.testing.assert_array_equal(obs["attention_mask"], [0, 0, 1, 1, 0, 0, 0])
    assert info["prompt"] == "ab" and info["references"] == ["ba"] and info["completion"] == ""
    z = ids(char_tok, "z")[0]
    obs, r, term, trunc, info = env.step(z)
    np.testing.assert_array_equal(obs["input_ids"], [pad, pad, a, b, z, pad, pad])
    np.testing.assert_array_equal(obs["attention_mask"], [0, 0, 1, 1, 1, 0, 0])
    assert (r, term, trunc, info["completion"]) == (0.0, False, False, "z")
    assert obs in env.observation_space


def test_terminated_on_stop_token_and_reward_sees_completion_without_it(char_tok):
    rec = Recorder()
    env = make(char_tok, rec)
    env.reset(seed=1, options={"sample_index": 1})
    x = ids(char_tok, "x")[0]
    _, r1, te1, tr1, _ = env.step(x)
    _, r2, te2, tr2, info = env.step(char_tok.eos_token_id)
    assert (te1, tr1, r1) == (False, False, 0.0)
    assert (te2, tr2) == (True, False)
    assert len(rec.calls) == 1  # once per episode, at its end
    prompts, completions, refs, cols = rec.calls[0]
    assert prompts == ["hello"] and completions == ["x"] and refs == [["olleh"]] and cols == {"target": ["y"]}
    assert r2 == 1.0 and info["score"] == 1.0 and info["completion"] == "x"
    with pytest.raises(RuntimeError, match="reset"):
        env.step(x)


def test_truncated_after_max_new_tokens(char_tok):
    rec = Recorder()
    env = make(char_tok, rec, max_new_tokens=3)
    env.reset(seed=0)
    x = ids(char_tok, "q")[0]
    flags = [env.step(x)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    assert rec.calls[0][1] == ["qqq"]


def test_stop_token_on_last_step_is_termination_not_truncation(char_tok):
    env = make(char_tok, max_new_tokens=2)
    env.reset(seed=0)
    env.step(ids(char_tok, "q")[0])
    _, r, term, trunc, info = env.step(char_tok.eos_token_id)
    assert (term, trunc, r, info["completion"]) == (True, False, 1.0, "q")


def test_custom_stop_tokens(char_tok):
    stop = ids(char_tok, ".")[0]
    env = make(char_tok, stop_token_ids=[stop])
    env.reset(seed=0)
    _, _, term, _, _ = env.step(char_tok.eos_token_id)  # EOS is no longer a stop token
    assert not term
    _, _, term, _, _ = env.step(stop)
    assert term


def test_same_seed_same_episodes_and_shuffled_epochs(char_tok):
    e1, e2 = make(char_tok), make(char_tok)
    seq1 = [e1.reset(seed=7)[1]["sample_index"]] + [e1.reset()[1]["sample_index"] for _ in range(5)]
    seq2 = [e2.reset(seed=7)[1]["sample_index"]] + [e2.reset()[1]["sample_index"] for _ in range(5)]
    assert seq1 == seq2
    assert sorted(seq1[:3]) == [0, 1, 2] and sorted(seq1[3:]) == [0, 1, 2]  # each epoch visits all samples
    again = [e1.reset(seed=7)[1]["sample_index"]] + [e1.reset()[1]["sample_index"] for _ in range(5)]
    assert again == seq1  # reseeding restarts the order


def test_out_of_range_and_non_integer_actions_raise(char_tok):
    env = make(char_tok)
    env.reset(seed=0)
    for bad in (-1, len(char_tok), 2.5):
        with pytest.raises(ValueError, match="token id"):
            env.step(bad)


def test_empty_dataset_and_missing_prompt_column_raise(char_tok):
    with pytest.raises(ValueError, match="empty dataset"):
        TextGenEnv(char_tok, [], Recorder())
    with pytest.raises(ValueError, match="'prompt' column"):
        TextGenEnv(char_tok, [{"text": "a"}], Recorder())


def test_long_prompt_truncated_from_the_left_and_counted(char_tok):
    env = TextGenEnv(char_tok, [{"prompt": "abcdef"}], Recorder(), max_prompt_length=4, max_new_tokens=2)
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(obs["input_ids"][:4], ids(char_tok, "cdef"))
    assert info["prompt_truncated_tokens"] == 2 and env.num_truncated_prompts == 1
    right = TextGenEnv(char_tok, [{"prompt": "abcdef"}], Recorder(), max_prompt_length=4, truncation_side="right")
    obs, _ = right.reset(seed=0)
    np.testing.assert_array_equal(obs["input_ids"][:4], ids(char_tok, "abcd"))


def test_tokenizer_without_pad_token_pads_with_eos_and_masks(gpt2_tok):
    import copy

    tok = copy.deepcopy(gpt2_tok)
    tok.pad_token = None
    assert tok.pad_token_id is None
    env = TextGenEnv(tok, [{"prompt": "Hello world"}], Recorder(), max_prompt_length=4, max_new_tokens=2)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["input_ids"][:4], [tok.eos_token_id, tok.eos_token_id, 15496, 995])
    np.testing.assert_array_equal(obs["attention_mask"][:4], [0, 0, 1, 1])


def test_options_prompt_and_sample_index(char_tok):
    env = make(char_tok)
    _, info = env.reset(seed=0, options={"prompt": "zz"})
    assert info["prompt"] == "zz" and info["references"] == [] and info["sample_index"] == -1
    with pytest.raises(IndexError):
        env.reset(options={"sample_index": 3})


def test_prompt_format_template_uses_columns(char_tok):
    env = make(char_tok, prompt_format="{target}:{prompt}", max_prompt_length=8)
    _, info = env.reset(options={"sample_index": 0})
    assert info["prompt_text"] == "x:ab" and info["prompt"] == "ab"


def test_dense_reward_increments_sum_to_score(char_tok):
    class CountA(DenseRewardFunction):
        name = "count-a"

        def score(self, prompts, completions, *, references=None, **kw):
            return np.array([c.count("a") * 0.5 for c in completions], dtype=np.float32)

    env = make(char_tok, CountA(), max_new_tokens=4)
    env.reset(seed=0)
    a, b = ids(char_tok, "a")[0], ids(char_tok, "b")[0]
    rewards = [env.step(x)[1] for x in (a, b, a, a)]
    assert rewards == [0.5, 0.0, 0.5, 0.5]
    assert sum(rewards) == 1.5


def test_reward_returning_nan_names_the_reward(char_tok):
    def broken(prompt, completion):
        return float("nan")

    env = make(char_tok, broken)
    env.reset(seed=0)
    with pytest.raises(RewardError, match="broken"):
        env.step(char_tok.eos_token_id)
    env = make(char_tok, broken, reward_on_error="penalty")
    env.reset(seed=0)
    _, r, _, _, info = env.step(char_tok.eos_token_id)
    assert r == 0.0 and info["reward_components"] == {"reward_error": 1.0}


def test_per_sample_callable_gets_columns(char_tok):
    seen = []

    def reward(prompt, completion, references=None, target=None):
        seen.append((prompt, completion, references, target))
        return 2.0

    env = make(char_tok, reward)
    env.reset(options={"sample_index": 2})
    _, r, *_ = env.step(char_tok.eos_token_id)
    assert r == 2.0 and seen == [("123", "", [], "z")]


def test_multibyte_character_never_split(gpt2_tok):
    env = TextGenEnv(gpt2_tok, [{"prompt": "x"}], Recorder(), max_prompt_length=2, max_new_tokens=4)
    env.reset(seed=0)
    snowman = gpt2_tok("☃")["input_ids"]
    assert len(snowman) > 1  # a byte-level BPE splits it
    *_, info = env.step(snowman[0])
    assert info["completion"] == ""  # half a character is not shown
    for t in snowman[1:]:
        *_, info = env.step(t)
    assert info["completion"] == "☃"


def test_render_ansi(char_tok):
    env = make(char_tok, render_mode="ansi")
    env.reset(options={"sample_index": 0})
    env.step(ids(char_tok, "q")[0])
    assert env.render() == "ab\x1b[1mq\x1b[0m"
    assert make(char_tok).render() is None


def test_a_tokenizer_given_by_name_is_loaded():
    # README: TextGenEnv(tokenizer, "haiku.jsonl", reward), and a model name goes wherever a tokenizer does
    from textgym.models import load_tokenizer

    rows = [{"prompt": "one two"}, {"prompt": "three"}]
    by_name = TextGenEnv("tiny-gpt2", rows, lambda completions, **kw: [0.0] * len(completions), max_new_tokens=2)
    tok = load_tokenizer("tiny-gpt2")
    obs, _ = by_name.reset(seed=0)
    assert by_name.tokenizer.pad_token_id == tok.pad_token_id and by_name.vocab_size == len(tok)
    assert obs["input_ids"][obs["attention_mask"] == 1].tolist() == tok("one two")["input_ids"]
