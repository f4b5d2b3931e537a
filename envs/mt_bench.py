"""MT-Bench as a conversation env: ``textgym/MTBench-v0``.

MT-Bench's 80 two-turn questions (8 categories; ``envs/data/mt_bench_questions``,
Apache-2.0, Zheng et al. 2023).  The first question is the prompt; after the
agent's first answer the responder (role ``user``) asks the second question,
so the agent answers it with its own first answer in context, token for token.

* **Reward**: each answer is scored by a reward function (the prompt it sees is
  that turn's question, the completion the agent's answer): a reward model
  when ``reward_model=`` is given, any reward with ``reward=``, else the
  placeholder rule reward of ``textgym/HHDialogue-v0`` (length + repetition,
  ``[-1, 1]``; see :func:`textgym.envs.dialogue.placeholder_reward`).  Both
  turn scores are paid, each on its turn's last token; ``info["score"]`` is
  their sum.
* **Episode end**: after the second answer (terminated), or at the token
  budget (truncated).
* **Data**: MT-Bench is an evaluation set: one split, ``"test"`` (80).
"""

from __future__ import annotations

from typing import Any

from textgym.envs._multiturn import multiturn_env_kwargs
from textgym.envs.common import resolve_tokenizer
from textgym.responders import Reply, Responder, register_responder
from textgym.reward_api import as_reward_function, call_reward

__all__ = ["MTBenchResponder", "mt_bench_samples", "make_mt_bench", "SPLITS"]

SPLITS = ("test",)


@register_responder("mt-bench")
class MTBenchResponder(Responder):
    """Asks the sample's second question after the first answer; scores each answer with ``reward``."""

    name = "mt-bench"

    def __init__(self, reward: Any = None):
        if reward is None:
            from textgym.envs.dialogue import placeholder_reward

            reward = placeholder_reward()
        self.reward_fn = as_reward_function(reward)

    def reset(self, sample, rng):
        return list(sample["turns"])

    def respond(self, states, conversations):
        turn = [sum(m["role"] == "assistant" for m in c) for c in conversations]
        questions = [s[min(k, len(s)) - 1] for s, k in zip(states, turn)]
        scores, _ = call_reward(self.reward_fn, questions, [c[-1]["content"] for c in conversations])
        return [
            Reply(text=s[k], reward=float(r)) if k < len(s) else Reply(reward=float(r), done=True)
            for s, k, r in zip(states, turn, scores)
        ]


def mt_bench_samples(split: str = "test") -> list[dict[str, Any]]:
    """The 80 questions: ``prompt`` (first turn), ``turns``, ``category``, ``question_id``, ``references``."""
    from textgym.envs.datasets import load

    rows = load("mt-bench", split=split)
    return [
        {"prompt": r["turns"][0], "turns": list(r["turns"]), "category": r["category"],
         "question_id": int(r["question_id"]), "references": [x for x in (r["reference"] or []) if x]}
        for r in rows
    ]  # fmt: skip


DEFAULTS = {"max_prompt_length": 256, "max_new_tokens": 1024, "max_turns": 2, "max_turn_tokens": 384}


def make_mt_bench(tokenizer: Any = "smollm2-135m-instruct", split: str = "test", samples: Any = None,
                  reward: Any = None, reward_model: Any = None, **kwargs: Any):  # fmt: skip
    """Factory of ``textgym/MTBench-v0`` (see the module docstring).

    Args:
        reward: a reward (name, object or function) scoring each answer.
        reward_model: local directory (or loaded model) of a reward model, instead of ``reward``.
    """
    from textgym.envs._task import check_split

    check_split(split, SPLITS, "textgym/MTBench-v0")
    if reward is not None and reward_model is not None:
        raise ValueError("textgym/MTBench-v0: pass either reward= or reward_model=, not both")
    if reward_model is not None:
        from textgym.reward_api import make

        reward = make("reward-model", model=reward_model)
    elif isinstance(reward, str):
        from textgym.reward_api import make

        reward = make(reward)
    env = multiturn_env_kwargs("textgym/MTBench-v0", kwargs, DEFAULTS)
    samples = mt_bench_samples(split) if samples is None else samples
    return resolve_tokenizer(tokenizer), samples, MTBenchResponder(reward), env
