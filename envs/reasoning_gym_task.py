"""reasoning-gym's procedural tasks as textgym envs: ``textgym/ReasoningGym-v0`` (optional extra ``reasoning-gym``).

`reasoning-gym <https://github.com/open-thought/reasoning-gym>`_ (Apache-2.0)
generates reasoning problems (arithmetic, logic, puzzles, ~100 tasks) and
scores answers with each task's own ``score_answer``.  This module makes one
of them a one-turn :class:`textgym.TextGenEnv`::

    gym.make("textgym/ReasoningGym-v0", task="basic_arithmetic")

* **Prompt**: the generated question plus ``"Give the final answer inside
  <answer></answer>."``; the chat template by default (``prompt_format="chat"``
  when the tokenizer has one).
* **Reward**: :class:`ReasoningGymReward`: the task's ``score_answer`` (in
  ``[0, 1]``) of the text inside the first ``<answer>...</answer>`` of the
  completion (the whole completion, stripped, if there is no tag).
* **Data**: ``num_samples`` problems (default 500 train / 100 test) from
  ``reasoning_gym.create_dataset(task, seed=...)``: ``"train"`` uses
  ``seed``, ``"test"`` ``seed + 10**6`` with every question that also occurs
  in the train split removed (held out).
"""

from __future__ import annotations

import dataclasses

import re
from typing import Any

import numpy as np

from textgym.envs._task import check_split, task_settings
from textgym.envs.common import resolve_tokenizer
from textgym.reward_api import RewardFunction

__all__ = ["ReasoningGymReward", "reasoning_gym_samples", "make_reasoning_gym", "SPLITS", "extract_answer"]

SPLITS = ("train", "test")
INSTRUCTION = "Give the final answer inside <answer></answer>."
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


def _rg() -> Any:
    try:
        import reasoning_gym
    except ImportError:
        raise ImportError("textgym/ReasoningGym-v0 needs the optional extra: pip install 'textgym[reasoning-gym]'") from None
    return reasoning_gym


def extract_answer(completion: str) -> str:
    """The text inside the first ``<answer>...</answer>``, else the whole completion, stripped."""
    found = _ANSWER.search(completion)
    return (found.group(1) if found else completion).strip()


class ReasoningGymReward(RewardFunction):
    """reasoning-gym's own ``score_answer`` on the extracted answer (column ``rg_index`` names the problem).

    Args:
        dataset: the ``reasoning_gym`` dataset the env's samples came from.
    """

    name = "reasoning-gym"

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def score(self, prompts, completions, *, references=None, rg_index=None, **columns):
        if rg_index is None:
            raise ValueError("the reasoning-gym reward needs the samples' rg_index column")
        out = np.zeros(len(completions), dtype=np.float32)
        for i, (text, idx) in enumerate(zip(completions, rg_index)):
            value = self.dataset.score_answer(extract_answer(text), self.dataset[int(idx)])
            out[i] = float(value) if value is not None and np.isfinite(value) else 0.0
        return out


def reasoning_gym_samples(task: str = "basic_arithmetic", split: str = "train", num_samples: int | None = None,
                          seed: int = 0, **task_config: Any) -> tuple[list[dict[str, Any]], Any]:  # fmt: skip
    """``(samples, dataset)`` of ``split``: ``prompt``, ``references`` (the answer), ``rg_index``."""
    rg = _rg()
    n = num_samples if num_samples is not None else (500 if split == "train" else 100)
    if split == "train":
        dataset = rg.create_dataset(task, size=n, seed=seed, **task_config)
        keep = range(n)
    else:
        train = rg.create_dataset(task, size=n * 5, seed=seed, **task_config)
        seen = {e["question"] for e in train}
        dataset = rg.create_dataset(task, size=n, seed=seed + 10**6, **task_config)
        keep = [i for i in range(n) if dataset[i]["question"] not in seen]
    samples = [{"prompt": f"{dataset[i]['question']}\n{INSTRUCTION}", "references": [str(dataset[i]["answer"])],
                "rg_index": i} for i in keep]  # fmt: skip
    return samples, dataset


DEFAULTS = {"max_prompt_length": 256, "max_new_tokens": 64}


def make_reasoning_gym(tokenizer: Any = "smollm2-135m-instruct", task: str = "basic_arithmetic", split: str = "train",
                       num_samples: int | None = None, seed: int = 0, task_config: dict[str, Any] | None = None,
                       **kwargs: Any):  # fmt: skip
    """Factory of ``textgym/ReasoningGym-v0`` (see the module docstring).

    Args:
        task: a reasoning-gym dataset name (``reasoning_gym.factory.DATASETS``).
        task_config: the task's own options (e.g. ``{"min_terms": 2}``).
    """
    check_split(split, SPLITS, "textgym/ReasoningGym-v0")
    settings = task_settings("textgym/ReasoningGym-v0", kwargs, DEFAULTS)
    tok = resolve_tokenizer(tokenizer)
    if "prompt_format" not in kwargs and getattr(tok, "chat_template", None):
        settings = dataclasses.replace(settings, prompt_format="chat")
    samples, dataset = reasoning_gym_samples(task, split, num_samples, seed, **(task_config or {}))
    return tok, samples, ReasoningGymReward(dataset), settings
