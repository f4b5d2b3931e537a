"""Registry (register / make / list), the plain-callable wrapper, and call_reward's errors."""

import subprocess
import sys

import numpy as np
import pytest

import textgym.rewards as R
from textgym import reward_api
from textgym.reward_api import RewardError, call_reward

BUILTIN_NAMES = [
    "bleu", "sacrebleu", "chrf", "rouge1", "rouge2", "rougeL", "meteor", "exact-match", "token-f1", "classifier",
    "reward-model", "sentiment", "sentiment-vader", "code-exec", "length", "repetition", "regex",
    "keyword-coverage", "constant", "char-match", "token-count",
]  # fmt: skip


@pytest.fixture
def scratch_registry():
    saved = dict(reward_api._REGISTRY)
    yield
    reward_api._REGISTRY.clear()
    reward_api._REGISTRY.update(saved)


def test_list_is_a_function_named_list_with_every_builtin():
    assert R.list.__name__ == "list" and R.list.__module__ == "textgym.rewards"
    names = R.list()
    assert names == sorted(names)
    assert set(BUILTIN_NAMES) <= set(names)
    assert R.list_rewards() == names


def test_make_builds_the_registered_classes():
    assert type(R.make("length", target=3)) is R.LengthReward
    assert R.make("length", target=3).target == 3
    assert type(R.make("code-exec")) is R.CodeExecutionReward
    assert type(R.make("repetition", n=2)) is R.RepetitionPenalty
    rouge2 = R.make("rouge2", use_stemmer=True)
    assert type(rouge2) is R.ROUGEReward and rouge2.variant == "rouge2"


def test_make_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="Did you mean 'bleu'"):
        R.make("blue")


def test_register_decorator_and_duplicates(scratch_registry):
    @R.register("shouting")
    def shouting(prompt, completion):
        return sum(c.isupper() for c in completion) / max(len(completion), 1)

    reward = R.make("shouting")
    assert isinstance(reward, R.FunctionReward) and not reward.batched
    scores, _ = call_reward(reward, ["p", "p"], ["ABcd", ""])
    assert scores.tolist() == [0.5, 0.0]
    with pytest.raises(ValueError, match="already registered"):
        R.register("shouting", lambda p, c: 0.0)

    @R.register("my-const")
    class MyConst(R.RewardFunction):
        def __init__(self, value=4.0):
            self.value = value

        def score(self, prompts, completions, *, references=None, **columns):
            return np.full(len(completions), self.value, np.float32)

    assert call_reward(R.make("my-const", value=2.0), ["p"], ["x"])[0].tolist() == [2.0]
    assert "my-const" in R.list()


def test_plain_per_sample_function_gets_columns_and_references():
    def overlap(prompt, completion, references, keyword):
        return float(keyword in completion) + float(completion in references)

    reward = R.as_reward_function(overlap)
    assert isinstance(reward, R.FunctionReward) and not reward.batched
    scores, _ = call_reward(reward, ["p", "p"], ["cat", "dog"], references=["cat", ["x", "y"]],
                            columns={"keyword": ["a", "o"], "unused": [1, 2]})
    # sample 0: "a" in "cat" (1) + "cat" in ["cat"] (1); sample 1: "o" in "dog" (1) + 0
    assert scores.tolist() == [2.0, 1.0]


def test_batched_callable_detection_and_forced_mode():
    def by_name(prompts, completions):
        return [len(c) for c in completions]

    def annotated(xs: list[str], ys: list[str], **kw):
        return np.ones(len(ys))

    assert R.as_reward_function(by_name).batched
    with pytest.raises(TypeError, match="batched=True"):  # declared neither by name nor by batched=: ambiguous
        R.as_reward_function(annotated)
    assert R.as_reward_function(annotated, batched=True).batched
    scores, _ = call_reward(R.as_reward_function(by_name), ["p", "p"], ["abc", ""], references=[["r"], ["s"]])
    assert scores.tolist() == [3.0, 0.0]
    forced = R.as_reward_function(lambda p, c: len(c), batched=False)
    assert call_reward(forced, ["p"], ["abcd"])[0].tolist() == [4.0]


def test_call_reward_rejects_nan_naming_reward_and_sample():
    def flaky(prompt, completion):
        return float("nan") if completion == "bad" else 1.0

    with pytest.raises(RewardError, match=r"reward 'flaky' returned nan for sample 1 \(completion 'bad'\)"):
        call_reward(R.as_reward_function(flaky), ["p", "p"], ["ok", "bad"])
    scores, comps = call_reward(R.as_reward_function(flaky), ["p", "p"], ["ok", "bad"], on_error="penalty",
                                penalty=-1.0)
    assert scores.tolist() == [1.0, -1.0] and comps["reward_error"].tolist() == [0.0, 1.0]


def test_call_reward_wrong_shape_and_non_numeric():
    def wrong(prompts, completions):
        return np.zeros(len(completions) + 1)

    def text(prompt, completion):
        return "high"

    with pytest.raises(RewardError, match=r"reward 'wrong' returned shape \(3,\) for 2 completions"):
        call_reward(R.as_reward_function(wrong), ["p", "p"], ["a", "b"])
    with pytest.raises(RewardError, match="reward 'text' returned str for sample 0"):
        call_reward(R.as_reward_function(text), ["p"], ["a"])


def test_call_reward_raising_reward_names_reward_and_sample():
    def boom(prompt, completion):
        if completion == "x":
            raise ZeroDivisionError("division by zero")
        return 1.0

    with pytest.raises(RewardError, match=r"reward 'boom' raised ZeroDivisionError on sample 1 \(completion 'x'\)"):
        call_reward(R.as_reward_function(boom), ["p", "p"], ["a", "x"])
    scores, comps = call_reward(R.as_reward_function(boom), ["p", "p"], ["a", "x"], on_error="penalty", penalty=-2)
    assert scores.tolist() == [1.0, -2.0]  # only the failing sample is penalised
    assert comps["reward_error"].tolist() == [0.0, 1.0]


def test_call_reward_batch_length_checks():
    reward = R.ConstantReward(1.0)
    with pytest.raises(RewardError, match="got 1 prompts for 2 completions"):
        call_reward(reward, ["p"], ["a", "b"])
    with pytest.raises(RewardError, match="column 'concepts' has 1 rows for 2 completions"):
        call_reward(reward, ["p", "p"], ["a", "b"], columns={"concepts": [["x"]]})
    with pytest.raises(ValueError, match="on_error"):
        call_reward(reward, ["p"], ["a"], on_error="ignore")


def test_components_are_validated():
    def bad_components(prompts, completions):
        return np.zeros(len(completions)), {"extra": np.zeros(5)}

    with pytest.raises(RewardError, match="component 'extra' has shape"):
        call_reward(R.as_reward_function(bad_components), ["p"], ["a"])


def test_import_is_light_and_does_not_pull_heavy_modules():
    code = ("import sys, textgym.rewards as r; r.list(); "
            "print(sorted(m for m in ('evaluate', 'torch', 'transformers', 'textgym.agents') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
