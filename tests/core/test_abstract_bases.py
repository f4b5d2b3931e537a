"""RewardFunction.score and Responder.respond are abstract: a subclass that forgets them fails when built."""

import numpy as np
import pytest

from textgym.responders import Reply, Responder
from textgym.reward_api import DenseRewardFunction, RewardFunction


def test_a_reward_without_score_cannot_be_built():
    class NoScore(RewardFunction):
        name = "no_score"

    with pytest.raises(TypeError, match="abstract method.*score"):
        NoScore()
    with pytest.raises(TypeError, match="abstract method.*score"):
        type("NoDenseScore", (DenseRewardFunction,), {})()


def test_a_reward_with_score_is_built_and_called():
    class Length(RewardFunction):
        def score(self, prompts, completions, *, references=None, **columns):
            return np.array([len(c) for c in completions], dtype=np.float32)

    np.testing.assert_array_equal(Length()(["p", "q"], ["ab", "abcd"]), [2.0, 4.0])


def test_a_responder_without_respond_cannot_be_built():
    class Silent(Responder):
        name = "silent"

    with pytest.raises(TypeError, match="abstract method.*respond"):
        Silent()


def test_a_responder_with_respond_is_built_and_answers():
    class Done(Responder):
        def respond(self, states, conversations):
            return [Reply(text="bye", reward=1.0, done=True) for _ in states]

    r = Done()
    assert r.reset({"prompt": "hi"}, np.random.default_rng(0)) == {"prompt": "hi"}  # the base's reset
    assert r.respond([None, None], [[], []]) == [Reply(text="bye", reward=1.0, done=True)] * 2
