"""TextGenVectorEnv: equivalence with N single envs, autoreset modes, batched rewards."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import textgym  # noqa: F401  (registers the ids)
from textgym import TextGenEnv, TextGenVectorEnv

SAMPLES = [{"prompt": p, "references": [p[::-1]], "k": i} for i, p in enumerate(["ab", "hello", "123", "z", "qq"])]


class Recorder:
    batched = True

    def __init__(self):
        self.batch_sizes = []

    def __call__(self, prompts, completions, *, references=None, k=None, **columns):
        self.batch_sizes.append(len(completions))
        return np.array([len(c) + 0.25 * kk for c, kk in zip(completions, k)], dtype=np.float32)


def random_actions(rng, tok, n):
    # mostly letters, sometimes EOS, so episodes end both ways
    letters = np.array(tok("abcxyz")["input_ids"])
    acts = rng.choice(letters, size=n)
    acts[rng.random(n) < 0.2] = tok.eos_token_id
    return acts


def test_vector_env_equals_n_single_envs_with_next_step_autoreset(char_tok):
    n, steps = 4, 25
    kw = dict(max_prompt_length=5, max_new_tokens=4)
    venv = TextGenVectorEnv(char_tok, SAMPLES, Recorder(), n, **kw)
    envs = [TextGenEnv(char_tok, SAMPLES, Recorder(), **kw) for _ in range(n)]
    vobs, vinfo = venv.reset(seed=11)
    sobs = [e.reset(seed=11 + i) for i, e in enumerate(envs)]
    for i in range(n):
        np.testing.assert_array_equal(vobs["input_ids"][i], sobs[i][0]["input_ids"])
        assert vinfo["sample_index"][i] == sobs[i][1]["sample_index"]
    rng = np.random.default_rng(0)
    needs_reset = [False] * n
    ended = 0
    for _ in range(steps):
        acts = random_actions(rng, char_tok, n)
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(acts)
        for i, e in enumerate(envs):
            if needs_reset[i]:  # Gymnasium's NEXT_STEP: this step resets the row
                obs, info = e.reset()
                rew, term, trunc = 0.0, False, False
                assert vinfo["sample_index"][i] == info["sample_index"]
                needs_reset[i] = False
            else:
                obs, rew, term, trunc, info = e.step(int(acts[i]))
                if term or trunc:
                    needs_reset[i] = True
                    ended += 1
                    assert vinfo["_completion"][i] and vinfo["completion"][i] == info["completion"]
                    assert vinfo["references"][i] == info["references"] and vinfo["score"][i] == info["score"]
            np.testing.assert_array_equal(vobs["input_ids"][i], obs["input_ids"])
            np.testing.assert_array_equal(vobs["attention_mask"][i], obs["attention_mask"])
            assert (vrew[i], vterm[i], vtrunc[i]) == (pytest.approx(rew), term, trunc)
    assert ended >= n  # the run really crossed episode boundaries


def test_reward_called_once_per_step_for_all_rows_that_ended(char_tok):
    rec = Recorder()
    venv = TextGenVectorEnv(char_tok, SAMPLES, rec, 3, max_prompt_length=5, max_new_tokens=2)
    venv.reset(seed=0)
    q, eos = char_tok("q")["input_ids"][0], char_tok.eos_token_id
    _, r, term, trunc, info = venv.step(np.array([eos, q, eos]))
    assert rec.batch_sizes == [2]
    assert term.tolist() == [True, False, True] and trunc.tolist() == [False, False, False]
    assert info["_completion"].tolist() == [True, False, True] and info["completion"][0] == ""
    _, r, term, trunc, info = venv.step(np.array([q, q, q]))  # rows 0, 2 reset; row 1 truncates
    assert rec.batch_sizes == [2, 1]
    assert trunc.tolist() == [False, True, False] and info["completion"][1] == "qq"
    assert info["_prompt"].tolist() == [True, False, True]


def test_disabled_autoreset_keeps_finished_rows_finished(char_tok):
    venv = TextGenVectorEnv(
        char_tok, SAMPLES, Recorder(), 2, max_prompt_length=5, max_new_tokens=3, autoreset_mode="Disabled"
    )
    obs0, _ = venv.reset(seed=0)
    q, eos = char_tok("q")["input_ids"][0], char_tok.eos_token_id
    obs1, r, term, trunc, _ = venv.step(np.array([eos, q]))
    assert term.tolist() == [True, False]
    frozen = obs1["input_ids"][0].copy()
    obs2, r, term, trunc, _ = venv.step(np.array([q, q]))
    np.testing.assert_array_equal(obs2["input_ids"][0], frozen)  # finished row untouched
    assert r[0] == 0.0 and term.tolist() == [True, False]  # flags stay set
    obs3, r, term, trunc, _ = venv.step(np.array([-5, q]))  # a finished row's action is ignored
    assert term.tolist() == [True, False] and trunc.tolist() == [False, True]
    assert np.all(term | trunc)
    obs4, info = venv.reset(options={"reset_mask": np.array([True, False])})
    assert info["_prompt"].tolist() == [True, False]
    np.testing.assert_array_equal(obs4["input_ids"][1], obs3["input_ids"][1])
    assert venv.finished.tolist() == [False, True]


def test_same_step_autoreset_reports_final_obs(char_tok):
    venv = TextGenVectorEnv(
        char_tok, SAMPLES, Recorder(), 2, max_prompt_length=5, max_new_tokens=3, autoreset_mode="SameStep"
    )
    venv.reset(seed=0)
    q, eos = char_tok("q")["input_ids"][0], char_tok.eos_token_id
    obs, r, term, trunc, info = venv.step(np.array([q, eos]))
    assert term.tolist() == [False, True]
    assert info["_final_obs"].tolist() == [False, True]
    final = info["final_obs"][1]
    assert final["attention_mask"].sum() > obs["attention_mask"][1].sum()  # the final obs held the EOS
    assert obs["attention_mask"][1][5:].sum() == 0  # the row already holds a fresh prompt
    assert info["final_info"]["completion"][1] == ""


def test_constant_reward_without_text_skips_decoding(char_tok):
    from textgym.rewards import ConstantReward

    venv = TextGenVectorEnv(char_tok, SAMPLES, ConstantReward(2.0), 2, max_prompt_length=5, max_new_tokens=2,
                            info_completions=False)
    venv.reset(seed=0)
    venv._decode = None  # any decoding would now fail
    _, r, term, _, info = venv.step(np.array([char_tok.eos_token_id, 4]))
    assert r.tolist() == [2.0, 0.0] and term.tolist() == [True, False] and "completion" not in info


def test_bad_actions_raise(char_tok):
    venv = TextGenVectorEnv(char_tok, SAMPLES, Recorder(), 2, max_prompt_length=5, max_new_tokens=3)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.array([3, 3]))
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.array([3, 3, 3]))
    with pytest.raises(ValueError, match="env 1"):
        venv.step(np.array([3, 10_000]))
    with pytest.raises(ValueError, match="integer"):
        venv.step(np.array([3.5, 3.0]))


def test_make_vec_uses_native_vector_env(gpt2_tok):
    venv = gym.make_vec(
        "textgym/IMDB-v0", num_envs=3, vectorization_mode="vector_entry_point",
        tokenizer=gpt2_tok, reward=lambda p, c: 0.0, max_new_tokens=4,
    )
    assert isinstance(venv, TextGenVectorEnv) and venv.num_envs == 3
    obs, info = venv.reset(seed=0)
    assert obs["input_ids"].shape == (3, 64 + 4) and obs in venv.observation_space
    assert all(isinstance(p, str) and p for p in info["prompt"])
