"""Tool use: arithmetic word problems with a calculator tool, ``textgym/Calculator-v0``.

A :class:`textgym.MultiTurnEnv` whose responder is a calculator.

* **Prompt**: a generated word problem (e.g. *"mia has 37 apples and buys 4
  boxes of 12 apples. how many apples does mia have now?"*) plus the tool's
  usage: ``<calc>37 + 4 * 12</calc>`` calls the calculator, ``<answer>85</answer>``
  gives the final answer.
* **Responder** (role ``tool``): a turn with ``<answer>...</answer>`` ends the
  episode; otherwise the first ``<calc>...</calc>`` is evaluated by
  :func:`textgym.envs.arithmetic.evaluate_arithmetic` (a parser with a
  whitelist and size limits, never ``eval``) and its value (or ``error: ...``)
  is the tool message; a turn with neither gets a reminder of the format.
* **Reward**: 1 on the answer turn if the answer equals the solution (within
  1e-6), else 0; tool turns get 0.  **Episode end**: an answer (terminated) or
  ``max_turns`` (default 4) turns (truncated).
* **Data**: generated from ``seed`` (4 templates: add a product, change from a
  purchase, equal shares, pages read); a problem belongs to ``"train"`` or
  ``"test"`` (held out, ~1/5) by a SHA-256 hash of its text; ``num_samples``
  (default 1000 train / 200 test) distinct problems.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from textgym.envs._multiturn import held_out, multiturn_env_kwargs
from textgym.envs.arithmetic import ArithmeticError_, evaluate_arithmetic, format_number
from textgym.envs.common import resolve_tokenizer
from textgym.responders import Reply, Responder, register_responder

__all__ = ["CalculatorResponder", "calculator_samples", "make_calculator", "SPLITS", "TOOL_HELP"]

SPLITS = ("train", "test")
TOOL_HELP = ("to compute, write <calc>expression</calc> and the calculator replies. "
             "when you know the result, write <answer>number</answer>.")  # fmt: skip
_CALC = re.compile(r"<calc>(.*?)</calc>", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NAMES = ("mia", "tom", "ana", "li", "sam", "noor", "ben", "eva")
_ITEMS = ("apple", "pencil", "card", "marble", "sticker", "book")


@register_responder("calculator")
class CalculatorResponder(Responder):
    """The calculator tool and answer checker of ``textgym/Calculator-v0`` (see the module docstring)."""

    name = "calculator"
    role = "tool"

    def reset(self, sample, rng):
        return float(sample["solution"])

    def answer(self, solution: float, text: str) -> Reply:
        """The tool's reply to one agent turn."""
        found = _ANSWER.search(text)
        if found is not None:
            number = _NUMBER.search(found.group(1))
            ok = number is not None and abs(float(number.group()) - solution) <= 1e-6
            return Reply(text="correct." if ok else "wrong.", reward=float(ok), done=True)
        call = _CALC.search(text)
        if call is None:
            return Reply(text="no tool call found. " + TOOL_HELP)
        try:
            return Reply(text=format_number(evaluate_arithmetic(call.group(1))))
        except ArithmeticError_ as exc:
            return Reply(text=f"error: {exc}")

    def respond(self, states, conversations):
        return [self.answer(s, c[-1]["content"]) for s, c in zip(states, conversations)]


def _problem(rng: np.random.Generator) -> tuple[str, int]:
    name, item = str(rng.choice(_NAMES)), str(rng.choice(_ITEMS))
    kind = int(rng.integers(4))
    a, b, c = (int(x) for x in rng.integers([11, 3, 6], [99, 10, 30]))
    if kind == 0:
        return (f"{name} has {a} {item}s and buys {b} boxes of {c} {item}s. "
                f"how many {item}s does {name} have now?", a + b * c)  # fmt: skip
    if kind == 1:
        pay = (a * b // 100 + 1) * 100
        return (f"a {item} costs {a} dollars. {name} buys {b} of them and pays with {pay} dollars. "
                "how many dollars of change does " + f"{name} get?", pay - a * b)  # fmt: skip
    if kind == 2:
        return f"{name} shares {a * b} {item}s equally among {b} friends. how many {item}s does each friend get?", a
    return f"{name} reads {a} pages a day for {b} days, then {c} more pages. how many pages is that in total?", a * b + c


def calculator_samples(split: str = "train", num_samples: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """``num_samples`` distinct problems of ``split``: ``prompt``, ``question``, ``solution``, ``references``."""
    n = num_samples if num_samples is not None else (1000 if split == "train" else 200)
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    for _ in range(50 * n):
        question, solution = _problem(rng)
        if question in seen or held_out("calculator", question) != (split == "test"):
            continue
        seen.add(question)
        out.append({"prompt": f"{question} {TOOL_HELP}", "question": question, "solution": solution,
                    "references": [str(solution)]})  # fmt: skip
        if len(out) == n:
            break
    return out


DEFAULTS = {"max_prompt_length": 128, "max_new_tokens": 192, "max_turns": 4, "max_turn_tokens": 32}


def make_calculator(tokenizer: Any = "smollm2-135m-instruct", split: str = "train", samples: Any = None,
                    num_samples: int | None = None, seed: int = 0, **kwargs: Any):  # fmt: skip
    """Factory of ``textgym/Calculator-v0`` (see the module docstring)."""
    from textgym.envs._task import check_split

    check_split(split, SPLITS, "textgym/Calculator-v0")
    env = multiturn_env_kwargs("textgym/Calculator-v0", kwargs, DEFAULTS)
    samples = calculator_samples(split, num_samples, seed) if samples is None else samples
    return resolve_tokenizer(tokenizer), samples, CalculatorResponder(), env
