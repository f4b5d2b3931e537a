"""Third-party tasks through adapters (optional extras): reasoning-gym, TextArena; the utterance-level wrapper."""

import gymnasium as gym
import numpy as np
import pytest

import textgym
from textgym import UtteranceEnv
from textgym.envs.games import guess_number_samples


def play_text(env, tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    for a in ids:
        out = env.step(a)
    return out


def test_reasoning_gym_scores_with_its_own_score_answer(gpt2_tok):
    pytest.importorskip("reasoning_gym")
    from textgym.envs.reasoning_gym_task import extract_answer

    env = gym.make("textgym/ReasoningGym-v0", tokenizer=gpt2_tok, num_samples=20).unwrapped
    _, info = env.reset(options={"sample_index": 4})
    answer = info["references"][0]
    assert info["prompt"].endswith("inside <answer></answer>.")
    assert play_text(env, gpt2_tok, f" so <answer>{answer}</answer>")[1] == 1.0
    env.reset(options={"sample_index": 4})
    assert play_text(env, gpt2_tok, " <answer>not a number</answer>")[1] == 0.0
    assert extract_answer(" 42 ") == "42" and extract_answer("x <answer> 7</answer> <answer>8</answer>") == "7"
    test = gym.make("textgym/ReasoningGym-v0", tokenizer=gpt2_tok, split="test", num_samples=20).unwrapped
    train = gym.make("textgym/ReasoningGym-v0", tokenizer=gpt2_tok, num_samples=100).unwrapped
    assert not {s["prompt"] for s in test.data.samples} & {s["prompt"] for s in train.data.samples}
    other = gym.make("textgym/ReasoningGym-v0", tokenizer=gpt2_tok, task="caesar_cipher", num_samples=5).unwrapped
    _, info = other.reset(options={"sample_index": 0})
    assert play_text(other, gpt2_tok, f"<answer>{info['references'][0]}</answer>")[1] == 1.0


def test_textarena_guess_the_number_binary_search(gpt2_tok):
    pytest.importorskip("textarena")
    env = gym.make("textgym/TextArena-v0", tokenizer=gpt2_tok, num_samples=3).unwrapped
    _, info = env.reset(options={"sample_index": 1})
    assert "Guess The Number" in info["prompt"] and "between 1 and 20" in info["prompt"]
    lo, hi = 1, 20
    for _ in range(6):
        guess = (lo + hi) // 2
        _, reward, term, trunc, info = play_text(env, gpt2_tok, f" [{guess}]")
        if term:
            break
        reply = info["messages"][-1]["content"]
        assert reward == 0 and reply in ("The target number is higher.", "The target number is lower.")
        lo, hi = (guess + 1, hi) if "higher" in reply else (lo, guess - 1)
    assert term and reward == 1.0 and "Congratulations" in info["messages"][-1]["content"]
    again = gym.make("textgym/TextArena-v0", tokenizer=gpt2_tok, num_samples=3).unwrapped
    again.reset(options={"sample_index": 1})  # same seed, same hidden number
    assert play_text(again, gpt2_tok, f" [{guess}]")[1] == 1.0
    test = gym.make("textgym/TextArena-v0", tokenizer=gpt2_tok, split="test", num_samples=2).unwrapped
    assert [s["seed"] for s in test.data.samples] == [10**6, 10**6 + 1]


def test_textarena_other_offline_games_run(gpt2_tok):
    pytest.importorskip("textarena")
    for game in ("Mastermind-v0", "TowerOfHanoi-v0"):
        env = gym.make("textgym/TextArena-v0", tokenizer=gpt2_tok, game=game, num_samples=1).unwrapped
        _, info = env.reset(seed=0)
        _, reward, term, trunc, info = play_text(env, gpt2_tok, " [nonsense]")
        assert info["messages"][-1]["content"] and info["turn"] == 1


def test_utterance_env_plays_whole_text_turns(gpt2_tok):
    base = gym.make("textgym/GuessNumber-v0", tokenizer=gpt2_tok, samples=guess_number_samples("test")).unwrapped
    env = UtteranceEnv(base)
    _, info = env.reset(options={"sample_index": 0})
    secret = base.data.sample(0)["secret"]
    obs, r, term, trunc, info = env.step(f" {secret - 1}")
    assert (r, term, info["messages"][-1]["content"], info["turn_tokens"]) == (0.0, False, "higher.", 2)
    obs, r, term, trunc, info = env.step(f" <|endoftext|> {secret}")  # special-token text cannot end the turn early
    assert term and r == pytest.approx(1 - 0.5 / 8) and info["turn"] == 2
    assert obs["agent_mask"].sum() == 2 + info["turn_tokens"]
    env.reset(options={"sample_index": 0})
    _, _, _, _, info = env.step(" 1" * 40)  # longer than max_turn_tokens (16): cut, then the end token
    assert info["action_truncated"] == 40 - 15 and info["turn_tokens"] == 16 and info["turn"] == 1
    with pytest.raises(TypeError, match="actions are strings"):
        env.step(5)
    with pytest.raises(TypeError, match="wraps a textgym.MultiTurnEnv"):
        UtteranceEnv(gym.make("textgym/Copy-v0").unwrapped)
    assert env.action_space.contains("a reply")
    assert "textgym/TextArena-v0" in textgym.list_envs() and "textgym/ReasoningGym-v0" in textgym.list_envs()
    assert np.isfinite(r)
