"""Synthetic tasks: known optimum, random policy far below it, deterministic disjoint splits, speed."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from textgym.envs import synthetic

IDS = ["textgym/Copy-v0", "textgym/Reverse-v0", "textgym/Sort-v0", "textgym/Addition-v0", "textgym/TokenCount-v0"]
TASK = dict(zip(IDS, ["copy", "reverse", "sort", "addition", "token-count"]))
# mean score of a uniformly random policy over 500 episodes (seeded), upper bounds
RANDOM_CEILING = {"copy": 0.05, "reverse": 0.05, "sort": 0.05, "addition": 0.05, "token-count": 0.25}


def answer_ids(tok, answer):
    return [tok.convert_tokens_to_ids(ch) for ch in answer] + [tok.eos_token_id]


def run_episode(env, actions_fn, **reset_kw):
    obs, info = env.reset(**reset_kw)
    total, done, steps = 0.0, False, 0
    while not done:
        obs, reward, terminated, truncated, info = env.step(actions_fn(info, steps))
        total += reward
        steps += 1
        done = terminated or truncated
    return total, info, terminated


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_optimal_policy_gets_the_optimum(env_id, split):
    env = gym.make(env_id, split=split).unwrapped
    tok = env.tokenizer
    assert env.vocab_size == 57 and tok.eos_token_id == 1 and tok.pad_token_id == 0
    assert int(env.data.truncated_tokens.sum()) == 0
    for i in range(min(len(env.data), 300)):
        ids = answer_ids(tok, env.data.references(i)[0])
        assert len(ids) <= env.max_new_tokens
        total, info, terminated = run_episode(env, lambda info, t: ids[t], options={"sample_index": i})
        assert terminated and total == pytest.approx(synthetic.OPTIMAL_REWARD)
        assert info["completion"] == env.data.references(i)[0]


@pytest.mark.parametrize("env_id", IDS)
def test_random_policy_scores_far_below_the_optimum(env_id):
    env = gym.make(env_id).unwrapped
    env.action_space.seed(0)
    env.reset(seed=0)
    scores = [run_episode(env, lambda info, t: env.action_space.sample())[0] for _ in range(500)]
    mean = float(np.mean(scores))
    assert 0.0 <= mean < RANDOM_CEILING[TASK[env_id]]
    assert mean < 0.25 * synthetic.OPTIMAL_REWARD


def test_default_lengths_are_short():
    envs = {i: gym.make(i, num_samples=10).unwrapped if "Count" not in i else gym.make(i).unwrapped for i in IDS}
    lengths = {i: (e.max_prompt_length, e.max_new_tokens) for i, e in envs.items()}
    assert lengths == {
        "textgym/Copy-v0": (14, 8),  # 'copy:' + 6 chars + '=' (+2) ; answer 6 (+2)
        "textgym/Reverse-v0": (17, 8),
        "textgym/Sort-v0": (14, 8),
        "textgym/Addition-v0": (8, 5),  # '99+99=' (+2) ; '198' (+2)
        "textgym/TokenCount-v0": (10, 10),
    }
    env = gym.make("textgym/Copy-v0", max_length=10, min_length=9, num_samples=10)
    assert env.unwrapped.max_new_tokens == 12 and len(env.unwrapped.data.references(0)[0]) >= 9


def test_partial_credit_and_dense_increments():
    env = gym.make("textgym/Reverse-v0", dense=True).unwrapped
    tok = env.tokenizer
    answer = env.data.references(0)[0]
    wrong = "#" if answer[1] != "#" else "!"
    ids = answer_ids(tok, answer[0] + wrong + answer[2:])
    obs, info = env.reset(options={"sample_index": 0})
    rewards = []
    for a in ids:
        obs, r, terminated, truncated, info = env.step(a)
        rewards.append(r)
    n = len(answer)
    assert rewards[0] == pytest.approx(1 / n) and rewards[1] == pytest.approx(0.0)
    assert sum(rewards) == pytest.approx(info["score"]) == pytest.approx((n - 1) / n)
    # too long: the surplus character costs credit
    sparse = synthetic.CharMatchReward()
    assert sparse([""], [answer + "x"], references=[[answer]])[0] == pytest.approx(n / (n + 1))
    assert sparse(["", ""], ["", "zz"], references=[[""], ["ab"]]).tolist() == [1.0, 0.0]


def test_token_count_reward_shape():
    env = gym.make("textgym/TokenCount-v0").unwrapped
    reward = env.reward_fn
    k = env.data.sample(0)["count"]
    scores = reward([""] * 3, ["a" * k, "a" * (k + 1), "a" * (k + 3)], count=[k] * 3)
    assert scores.tolist() == [1.0, 0.5, 0.125]


def test_samples_are_deterministic_and_splits_disjoint():
    for task in ("copy", "reverse", "sort", "addition"):
        train = synthetic.synthetic_samples(task, "train")
        test = synthetic.synthetic_samples(task, "test")
        assert (len(train), len(test)) == (2000, 200)
        assert len({s["prompt"] for s in train}) == 2000
        assert not {s["prompt"] for s in train} & {s["prompt"] for s in test}
        other = synthetic.synthetic_samples(task, "train", num_samples=300, seed=1)
        assert other != train[:300] and not {s["prompt"] for s in other} & {s["prompt"] for s in test}
    first = synthetic.synthetic_samples("sort", "train", num_samples=300)
    assert first == synthetic.synthetic_samples("sort", "train")[:300]  # same stream: a prefix
    # pinned: the generator and the split hash must not change silently
    assert [s["prompt"] for s in synthetic.synthetic_samples("addition", "test")[:3]] == PINNED_ADDITION
    assert [s["prompt"] for s in synthetic.synthetic_samples("copy", "train")[:3]] == PINNED_COPY
    counts = [s["count"] for s in synthetic.synthetic_samples("token-count", "train")]
    assert counts == [1, 2, 4, 5, 6, 8]
    assert [s["count"] for s in synthetic.synthetic_samples("token-count", "test")] == [3, 7]


PINNED_ADDITION = ["67+88=", "15+45=", "73+86="]
PINNED_COPY = ["copy:69uk2=", "copy:ij2=", "copy:ab08="]


def test_small_input_space_and_errors():
    tiny = synthetic.synthetic_samples("addition", "test", num_samples=10_000, digits=1)
    assert 0 < len(tiny) < 100 and len({s["prompt"] for s in tiny}) == len(tiny)
    with pytest.raises(ValueError, match="unknown synthetic task"):
        synthetic.synthetic_samples("multiply")
    with pytest.raises(ValueError, match="Valid splits: train, test"):
        gym.make("textgym/Sort-v0", split="validation")
    with pytest.raises(ValueError, match="min_length <= max_length"):
        gym.make("textgym/Copy-v0", min_length=5, max_length=2)
    with pytest.raises(ValueError, match="split 'test' is empty"):
        gym.make("textgym/TokenCount-v0", split="test", max_count=2)
    with pytest.raises(TypeError, match="unknown arguments"):
        gym.make("textgym/Addition-v0", digit=3)


def test_vector_env_and_speed():
    venv = gym.make_vec("textgym/Addition-v0", num_envs=16, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=0)
    assert obs["input_ids"].shape == (16, 8 + 5)
    env = gym.make("textgym/Copy-v0").unwrapped
    env.reset(seed=0)
    env.action_space.seed(0)
    steps, episodes = 0, 0  # speed: benchmarks/env_throughput.py (never asserted in tests)
    while steps < 2000:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            episodes += 1
            env.reset()
    # every episode ends within its response budget, so 2000 random steps finish at least 2000 / budget of them
    assert episodes >= 2000 // env.max_new_tokens


@pytest.mark.parametrize("env_id", IDS)
def test_special_tokens_cannot_hide_from_the_reward(env_id):
    """Padding the answer with <pad>/<unk> tokens (dropped by a plain decode) must not pay."""
    env = gym.make(env_id).unwrapped
    tok = env.tokenizer
    answer = env.data.references(0)[0]
    ids = answer_ids(tok, answer)[:-1]  # the answer without EOS
    ids += [tok.pad_token_id, tok.unk_token_id] * env.max_new_tokens
    total, info, terminated = run_episode(env, lambda info, t: ids[t], options={"sample_index": 0})
    assert not terminated and info["completion"].startswith(answer + "<pad>")
    assert total < synthetic.OPTIMAL_REWARD


def test_the_task_rewards_are_registered_and_usable_by_name():
    import textgym.rewards as R
    from textgym.app.config import load_config

    assert {"char-match", "token-count"} <= set(R.list())
    assert R.make("char-match")(["p"], ["ab"], references=[["abc"]])[0] == pytest.approx(2 / 3)
    assert R.make("token-count")(["p"] * 2, ["aaa", "a"], count=[3, 3]).tolist() == [1.0, 0.25]  # characters
    # by name in gym.make: built with the task's tokenizer / dense setting, like the default
    env = gym.make("textgym/TokenCount-v0", reward="token-count").unwrapped
    assert isinstance(env.reward_fn, synthetic.TokenCountReward) and env.reward_fn.tokenizer is not None
    env = gym.make("textgym/Copy-v0", reward="char-match", dense=True).unwrapped
    assert isinstance(env.reward_fn, synthetic.CharMatchReward) and env.reward_fn.dense
    # and in a config, as examples/configs/synthetic_ppo.yaml suggests
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "examples" / "configs" / "synthetic_ppo.yaml", ["env.kwargs.reward=token-count"])
    assert cfg.env.kwargs["reward"] == "token-count"


def test_answer_alphabet_only_masks_the_actions_to_the_answer_tokens_and_eos():
    add = gym.make("textgym/Addition-v0", answer_alphabet_only=True).unwrapped
    assert np.flatnonzero(add.action_masks()).tolist() == [1] + list(range(3, 13))  # EOS, '0'..'9' (tiny-char)
    copy = gym.make("textgym/Copy-v0", answer_alphabet_only=True).unwrapped
    assert copy.tokenizer.decode(np.flatnonzero(copy.action_masks())[1:]) == "0123456789abcdefghijklmnopqrstuvwxyz"
    assert gym.make("textgym/Sort-v0").unwrapped.allowed_tokens is None  # off by default
    with pytest.raises(ValueError, match="answer_alphabet_only=True or allowed_token_ids, not both"):
        gym.make("textgym/Sort-v0", answer_alphabet_only=True, allowed_token_ids=[1])
