"""Conversation games with scripted responders: GuessNumber and TwentyQuestions.

Ids: ``textgym/GuessNumber-v0``, ``textgym/TwentyQuestions-v0``
(:class:`textgym.MultiTurnEnv`; observation ``input_ids`` / ``attention_mask``
/ ``agent_mask``, action = the next token, see :mod:`textgym.multiturn`).

* **GuessNumber**: the user has picked a whole number in ``[low, high]``; each
  agent turn should name one number; the responder answers ``higher``,
  ``lower`` or ``correct`` (or asks for a number when the turn has none).
  **Reward**: on the solving turn ``k`` (1-based) ``1 - 0.5 (k - 1) / max_turns``
  (solved is always worth more than 0.5, fewer turns more), 0 on other turns.
  **Episode end**: solved (terminated) or ``max_turns`` turns (truncated).
  **Data**: one sample per number; numbers are split by a SHA-256 hash, about
  4/5 ``"train"`` and 1/5 ``"test"`` (held out), so a policy is evaluated on
  numbers it never saw.
* **TwentyQuestions**: the user thinks of one of :data:`OBJECTS` (40 everyday
  things with 10 yes/no attributes); the agent asks yes/no questions and
  guesses.  The scripted oracle answers a question by the attribute its
  keywords name (:data:`ATTRIBUTES`: ``metal``, ``electric``, ``water``/``swim``,
  ``fly``, ``legs``, ``eat``/``food``, ``animal``, ``alive``/``living``,
  ``bigger``/``large``, ``man-made``/``made``, checked in that order) with
  ``yes`` / ``no``; a turn naming an object of the list is a guess (``correct`` ends the
  game, else ``no``); anything else gets a reminder of the attributes.
  **Reward**: on the solving turn ``k``: ``1 - 0.5 (k - 1) / max_turns``; 0
  otherwise.  **Data**: objects split by hash, 31 ``"train"`` / 9 ``"test"``
  (held out; questions about their attributes still work, the names are new).
"""

from __future__ import annotations

import re
from typing import Any

from textgym.envs._multiturn import held_out, multiturn_env_kwargs
from textgym.envs.common import resolve_tokenizer
from textgym.responders import Reply, Responder, register_responder

__all__ = [
    "GuessNumberResponder", "TwentyQuestionsResponder", "make_guess_number", "make_twenty_questions",
    "guess_number_samples", "twenty_questions_samples", "OBJECTS", "ATTRIBUTES", "SPLITS",
]  # fmt: skip

SPLITS = ("train", "test")
_INT = re.compile(r"-?\d{1,12}")


def solved_reward(turn: int, max_turns: int) -> float:
    """Reward for solving on agent turn ``turn`` (1-based): ``1 - 0.5 (turn - 1) / max_turns``."""
    return 1.0 - 0.5 * (turn - 1) / max_turns


def _agent_turns(messages: list[dict[str, str]]) -> int:
    return sum(m["role"] == "assistant" for m in messages)


# ----------------------------------------------------------------------------- GuessNumber


@register_responder("guess-number")
class GuessNumberResponder(Responder):
    """Scripted higher/lower oracle over the sample's ``secret`` (see the module docstring).

    Args:
        max_turns: the env's turn limit (scales the reward).
    """

    name = "guess-number"

    def __init__(self, max_turns: int = 8):
        self.max_turns = int(max_turns)

    def reset(self, sample, rng):
        return {"secret": int(sample["secret"]), "low": int(sample["low"]), "high": int(sample["high"])}

    def respond(self, states, conversations):
        out = []
        for s, msgs in zip(states, conversations):
            match = _INT.search(msgs[-1]["content"])
            if match is None:
                out.append(Reply(text=f"please reply with a number from {s['low']} to {s['high']}."))
                continue
            guess = int(match.group())
            if guess == s["secret"]:
                out.append(Reply(text="correct!", reward=solved_reward(_agent_turns(msgs), self.max_turns), done=True))
            else:
                out.append(Reply(text="higher." if guess < s["secret"] else "lower."))
        return out


def guess_number_samples(split: str = "train", low: int = 1, high: int = 100) -> list[dict[str, Any]]:
    """One sample per number of ``split`` in ``[low, high]``: ``prompt``, ``secret``, ``low``, ``high``."""
    if high <= low:
        raise ValueError(f"GuessNumber needs low < high, got [{low}, {high}]")
    prompt = (f"i picked a whole number from {low} to {high}. guess it: reply with one number, "
              "and i will say higher or lower.")  # fmt: skip
    want_test = split == "test"
    return [
        {"prompt": prompt, "secret": n, "low": low, "high": high, "references": [str(n)]}
        for n in range(low, high + 1)
        if held_out("guess-number", str(n)) == want_test
    ]


def make_guess_number(
    tokenizer: Any = "smollm2-135m-instruct",
    split: str = "train",
    samples: Any = None,
    low: int = 1,
    high: int = 100,
    **kwargs: Any,
):
    """Factory of ``textgym/GuessNumber-v0`` (see the module docstring).

    Args:
        tokenizer: tokenizer object or model name.
        split: ``"train"`` or ``"test"`` (held-out numbers).
        samples: your own samples (``prompt``, ``secret``, ``low``, ``high``).
        low, high: the range of the hidden number.
        **kwargs: env arguments (``max_turns`` default 8, ``max_turn_tokens`` 16, ...).
    """
    from textgym.envs._task import check_split

    check_split(split, SPLITS, "textgym/GuessNumber-v0")
    env = multiturn_env_kwargs("textgym/GuessNumber-v0", kwargs, GUESS_DEFAULTS)
    samples = guess_number_samples(split, low, high) if samples is None else samples
    return resolve_tokenizer(tokenizer), samples, GuessNumberResponder(env["max_turns"]), env


GUESS_DEFAULTS = {"max_prompt_length": 96, "max_new_tokens": 256, "max_turns": 8, "max_turn_tokens": 16}

# ----------------------------------------------------------------------------- TwentyQuestions

#: The attributes the oracle knows, with the question keywords that name each.
ATTRIBUTES: dict[str, tuple[str, ...]] = {  # checked in this order ("made of metal" asks about metal)
    "metal": ("metal", "metallic"),
    "electric": ("electric", "electronic", "electricity", "battery", "plug"),
    "water": ("water", "swim", "sea"),
    "fly": ("fly", "flies", "wings"),
    "legs": ("legs", "leg"),
    "food": ("eat", "food", "edible"),
    "animal": ("animal",),
    "alive": ("alive", "living"),
    "big": ("bigger", "big", "large"),
    "man_made": ("man-made", "made", "manufactured", "artificial"),
}
_A = tuple(ATTRIBUTES)


def _obj(name: str, *attrs: str) -> tuple[str, frozenset[str]]:
    unknown = set(attrs) - set(_A)
    assert not unknown, unknown
    return name, frozenset(attrs)


#: 40 objects and the attributes that are true for each (all others are false).
OBJECTS: dict[str, frozenset[str]] = dict([
    _obj("dog", "animal", "alive", "legs"), _obj("cat", "animal", "alive", "legs"),
    _obj("horse", "animal", "alive", "big", "legs"), _obj("cow", "animal", "alive", "big", "legs"),
    _obj("eagle", "animal", "alive", "legs", "fly"), _obj("sparrow", "animal", "alive", "legs", "fly"),
    _obj("shark", "animal", "alive", "big", "water"), _obj("goldfish", "animal", "alive", "water"),
    _obj("whale", "animal", "alive", "big", "water"), _obj("spider", "animal", "alive", "legs"),
    _obj("bee", "animal", "alive", "legs", "fly"), _obj("frog", "animal", "alive", "legs", "water"),
    _obj("apple", "alive", "food"), _obj("banana", "alive", "food"), _obj("carrot", "alive", "food"),
    _obj("bread", "food", "man_made"), _obj("cheese", "food", "man_made"), _obj("tree", "alive", "big"),
    _obj("rose", "alive"), _obj("mushroom", "alive", "food"),
    _obj("car", "man_made", "big", "metal", "electric"), _obj("bicycle", "man_made", "big", "metal"),
    _obj("airplane", "man_made", "big", "metal", "fly", "electric"), _obj("boat", "man_made", "big", "water"),
    _obj("phone", "man_made", "electric"), _obj("laptop", "man_made", "electric", "metal"),
    _obj("television", "man_made", "big", "electric"), _obj("fridge", "man_made", "big", "electric", "metal"),
    _obj("spoon", "man_made", "metal"), _obj("key", "man_made", "metal"), _obj("chair", "man_made", "big", "legs"),
    _obj("table", "man_made", "big", "legs"), _obj("book", "man_made"), _obj("pencil", "man_made"),
    _obj("cup", "man_made"), _obj("shoe", "man_made"), _obj("drone", "man_made", "fly", "electric", "metal"),
    _obj("submarine", "man_made", "big", "metal", "water", "electric"), _obj("rock",), _obj("cloud", "big", "fly"),
])  # fmt: skip
_WORD = re.compile(r"[a-z-]+")


@register_responder("twenty-questions")
class TwentyQuestionsResponder(Responder):
    """Scripted yes/no oracle over :data:`OBJECTS` (see the module docstring)."""

    name = "twenty-questions"

    def __init__(self, max_turns: int = 20):
        self.max_turns = int(max_turns)

    def reset(self, sample, rng):
        return str(sample["secret"])

    def answer(self, secret: str, text: str, turn: int) -> Reply:
        """The oracle's reply to one agent turn."""
        words = _WORD.findall(text.lower())
        named = [w for w in words if w in OBJECTS or (w.endswith("s") and w[:-1] in OBJECTS)]
        if named:
            guess = named[0] if named[0] in OBJECTS else named[0][:-1]
            if guess == secret:
                return Reply(text="yes, correct!", reward=solved_reward(turn, self.max_turns), done=True)
            return Reply(text="no.")
        for attr, keys in ATTRIBUTES.items():
            if any(k in words for k in keys):
                return Reply(text="yes." if attr in OBJECTS[secret] else "no.")
        return Reply(text="i only answer yes/no questions about: " + ", ".join(k[0] for k in ATTRIBUTES.values()))

    def respond(self, states, conversations):
        return [self.answer(s, c[-1]["content"], _agent_turns(c)) for s, c in zip(states, conversations)]


def twenty_questions_samples(split: str = "train") -> list[dict[str, Any]]:
    """One sample per object of ``split``: ``prompt``, ``secret``, ``references``."""
    prompt = ("i am thinking of an everyday thing. ask me yes/no questions (is it an animal? can it fly? ...) "
              "and guess it in as few turns as you can.")  # fmt: skip
    want_test = split == "test"
    return [{"prompt": prompt, "secret": name, "references": [name]}
            for name in OBJECTS if held_out("twenty-questions", name) == want_test]  # fmt: skip


TQ_DEFAULTS = {"max_prompt_length": 96, "max_new_tokens": 512, "max_turns": 20, "max_turn_tokens": 24}


def make_twenty_questions(tokenizer: Any = "smollm2-135m-instruct", split: str = "train", samples: Any = None,
                          **kwargs: Any):  # fmt: skip
    """Factory of ``textgym/TwentyQuestions-v0`` (see the module docstring; ``max_turns`` default 20)."""
    from textgym.envs._task import check_split

    check_split(split, SPLITS, "textgym/TwentyQuestions-v0")
    env = multiturn_env_kwargs("textgym/TwentyQuestions-v0", kwargs, TQ_DEFAULTS)
    samples = twenty_questions_samples(split) if samples is None else samples
    return resolve_tokenizer(tokenizer), samples, TwentyQuestionsResponder(env["max_turns"]), env

