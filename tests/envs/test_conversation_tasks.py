"""The built-in conversation tasks: GuessNumber, TwentyQuestions, Calculator, MTBench, SimulatedUser."""

import gymnasium as gym
import numpy as np
import pytest

import textgym  # noqa: F401  (registers the ids)
from textgym.envs import calculator, games, mt_bench
from textgym.envs.arithmetic import ArithmeticError_, evaluate_arithmetic, format_number


def say(env, tok, text):
    """Emit ``text``'s tokens then EOS as one agent turn; return the last step."""
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    for a in ids:
        out = env.step(a)
        if out[2] or out[3]:
            break
    return out


def test_guess_number_binary_search_solves_with_the_documented_reward(gpt2_tok):
    env = gym.make("textgym/GuessNumber-v0", tokenizer=gpt2_tok).unwrapped
    _, info = env.reset(options={"sample_index": 5})
    secret = env.data.sample(5)["secret"]
    lo, hi, k = 1, 100, 0
    while True:
        guess = (lo + hi) // 2
        k += 1
        _, reward, term, trunc, info = say(env, gpt2_tok, f" {guess}")
        reply = info["messages"][-1]["content"]
        if term:
            break
        assert reward == 0 and not trunc
        lo, hi = (guess + 1, hi) if reply == "higher." else (lo, guess - 1)
    assert guess == secret and reply == "correct!" and info["turn"] == k <= 7
    assert reward == pytest.approx(1 - 0.5 * (k - 1) / 8) and info["score"] == pytest.approx(reward)


def test_guess_number_replies_and_splits(gpt2_tok):
    r = games.GuessNumberResponder(max_turns=4)
    state = r.reset({"secret": 40, "low": 1, "high": 100}, np.random.default_rng(0))
    msgs = [{"role": "user", "content": "go"}]
    texts = ["i think 12", "77!", "no idea", "40", "maybe 99999999999999999999"]
    replies = [r.respond([state], [msgs + [{"role": "assistant", "content": t}]])[0] for t in texts]
    assert [x.text for x in replies] == ["higher.", "lower.", "please reply with a number from 1 to 100.",
                                         "correct!", "lower."]  # fmt: skip
    assert replies[3].done and replies[3].reward == 1.0  # solved on the first agent turn
    train = {s["secret"] for s in games.guess_number_samples("train")}
    test = {s["secret"] for s in games.guess_number_samples("test")}
    assert len(train) == 80 and len(test) == 20 and not train & test and train | test == set(range(1, 101))
    with pytest.raises(ValueError, match="unknown split 'tset'"):
        gym.make("textgym/GuessNumber-v0", tokenizer=gpt2_tok, split="tset")


def test_guess_number_truncates_at_max_turns(gpt2_tok):
    env = gym.make("textgym/GuessNumber-v0", tokenizer=gpt2_tok, max_turns=2).unwrapped
    env.reset(options={"sample_index": 0})
    wrong = " 0"  # never the secret (range 1-100)
    assert say(env, gpt2_tok, wrong)[2:4] == (False, False)
    _, reward, term, trunc, info = say(env, gpt2_tok, wrong)
    assert (term, trunc, reward, info["turn"]) == (False, True, 0.0, 2)


def test_twenty_questions_oracle(gpt2_tok):
    r = games.TwentyQuestionsResponder(max_turns=20)
    cases = {
        "is it an animal?": "yes.", "can it fly?": "no.", "does it live in water?": "yes.",
        "is it made of metal?": "no.", "is it bigger than a breadbox?": "yes.", "is it a dog?": "no.",
        "hello": "i only answer yes/no questions about: metal, electric, water, fly, legs, eat, animal, alive, "
                 "bigger, man-made",
    }  # fmt: skip
    for question, answer in cases.items():
        assert r.answer("shark", question, 1).text == answer, question
    solved = r.answer("shark", "is it a shark?", 5)
    assert solved.done and solved.reward == pytest.approx(1 - 0.5 * 4 / 20)
    env = gym.make("textgym/TwentyQuestions-v0", tokenizer=gpt2_tok, split="test").unwrapped
    test_objects = {s["secret"] for s in env.data.samples}
    assert len(test_objects) == 9 and not test_objects & {s["secret"] for s in games.twenty_questions_samples()}
    env.reset(options={"sample_index": 0})
    assert say(env, gpt2_tok, " is it alive?")[4]["messages"][-1]["role"] == "user"
    _, reward, term, _, _ = say(env, gpt2_tok, f" is it a {env.data.sample(0)['secret']}?")
    assert term and reward == pytest.approx(1 - 0.5 / 20)


def test_safe_arithmetic_evaluator():
    assert evaluate_arithmetic("37 + 4 * 12") == 85
    assert evaluate_arithmetic("(7 - 10) * -2 ** 2") == 12
    assert evaluate_arithmetic("7 / 2") == 3.5 and evaluate_arithmetic("7 // 2") == 3
    assert evaluate_arithmetic("2 ^ 10") == 1024
    assert format_number(7 / 3) == "2.333333" and format_number(12.0) == "12"
    hostile = {
        "__import__('os').system('echo hi')": "only numbers",
        "9 ** 9 ** 9": "exponent larger than 12",
        "1" * 300: "longer than 200",
        "+".join(["1"] * 80): "more than 100 parts",
        "1 / 0": "division by zero",
        "10 ** 12 * 10 ** 12": "out of range",
        "(lambda: 1)()": "only numbers",
        "1e400": "out of range",
        "3 +": "not an arithmetic expression",
    }
    for expression, message in hostile.items():
        with pytest.raises(ArithmeticError_, match=message):
            evaluate_arithmetic(expression)


def test_calculator_tool_turns_and_answer(gpt2_tok):
    env = gym.make("textgym/Calculator-v0", tokenizer=gpt2_tok).unwrapped
    _, info = env.reset(options={"sample_index": 3})
    sample = env.data.sample(3)
    assert calculator.TOOL_HELP in info["messages"][0]["content"]
    _, reward, term, trunc, info = say(env, gpt2_tok, " <calc>6 * 7 + 1</calc>")
    assert info["messages"][-1] == {"role": "tool", "content": "43"} and (reward, term, trunc) == (0, False, False)
    _, _, _, _, info = say(env, gpt2_tok, " <calc>import os</calc>")
    assert info["messages"][-1]["content"].startswith("error: ")
    _, reward, term, _, info = say(env, gpt2_tok, f" <answer>{sample['solution']}</answer>")
    assert term and reward == 1.0
    env.reset(options={"sample_index": 3})
    _, reward, term, _, _ = say(env, gpt2_tok, f" <answer>{sample['solution'] + 1}</answer>")
    assert term and reward == 0.0
    train = {s["question"] for s in calculator.calculator_samples("train", 300)}
    test = [s for s in calculator.calculator_samples("test", 50)]
    assert len(test) == 50 and not train & {s["question"] for s in test}
    for s in test[:20]:  # every problem's solution is what its numbers say
        assert s["solution"] >= 0 and str(s["solution"]) == s["references"][0]


def test_mt_bench_two_turns(gpt2_tok):
    def words(prompts, completions, **kw):
        return np.array([len(c.split()) for c in completions], dtype=np.float32)

    env = gym.make("textgym/MTBench-v0", tokenizer=gpt2_tok, reward=words).unwrapped
    assert len(env.data) == 80
    _, info = env.reset(options={"sample_index": 0})
    turns = env.data.sample(0)["turns"]
    assert info["messages"] == [{"role": "user", "content": turns[0]}]
    _, r1, term, _, info = say(env, gpt2_tok, " one two three")
    assert (r1, term) == (3.0, False) and info["messages"][-1] == {"role": "user", "content": turns[1]}
    obs, r2, term, trunc, info = say(env, gpt2_tok, " four five")
    assert (r2, term, trunc, info["score"]) == (2.0, True, False, 5.0)
    default = mt_bench.MTBenchResponder()  # placeholder reward: length + repetition, in [-1, 1]
    rep = default.respond([turns], [[{"role": "user", "content": turns[0]}, {"role": "assistant", "content": ""}]])
    assert -1.0 <= rep[0].reward <= 1.0 and rep[0].text == turns[1]


def test_simulated_user_with_a_tiny_user_model(gpt2_tok):
    env = gym.make("textgym/SimulatedUser-v0", tokenizer=gpt2_tok, user_model="tiny-llama", user_turns=2,
                   max_turn_tokens=8).unwrapped  # fmt: skip
    _, info = env.reset(seed=0)
    persona = env.data.sample(info["sample_index"])["persona"]
    prompt = env.responder.user_prompt(persona, [{"role": "user", "content": "hi"},
                                                 {"role": "assistant", "content": "hello"}])  # fmt: skip
    assert prompt.startswith(f"You are {persona}") and prompt.endswith("you: hi\nassistant: hello\nyou:")
    _, r, term, trunc, info = say(env, gpt2_tok, " How can I help?")
    assert not (term or trunc) and info["messages"][-1]["role"] == "user" and info["messages"][-1]["content"]
    assert -1.0 <= r <= 1.0
    _, r, term, trunc, info = say(env, gpt2_tok, " Sure")
    assert term and info["turn"] == 2 and len(info["turn_rewards"]) == 2
