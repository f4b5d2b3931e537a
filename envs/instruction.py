"""Instruction following on Self-Instruct data: ``textgym/SelfInstruct-v0``.

* **Observation / action**: as :class:`textgym.TextGenEnv` (``input_ids`` /
  ``attention_mask`` of shape ``(P + T,)`` int64; the next token id).
* **Prompt**: ``"Instruction: {instruction}\\nInput: {input}\\nResponse:"`` (the
  ``Input:`` line only when the task has an input).  Pass
  ``prompt_format="chat"`` to wrap it in the tokenizer's chat template as a
  user turn.  An input too long for ``P`` tokens is cut (whole words, marked
  ``" ..."``; the instruction if there is no input) so the ``Response:`` cue
  survives.
* **Reward**: with ``reward_model=`` (a local directory of a reward model
  saved by textgym's reward-model trainer, or a loaded model) its scalar
  score (``"reward-model"``, unbounded); otherwise ROUGE-L F-measure against
  the reference output, in ``[0, 1]`` (``"rougeL"``; the reference scores
  1.0) -- a crude proxy for open-ended instructions.  Any reward can be
  passed as ``reward=``.
* **Episode end**: EOS (terminated) or ``max_new_tokens`` tokens (truncated).
* **References**: the task's reference output.
* **Data and splits** (``split=``): the 175 human-written Self-Instruct seed
  tasks, split by hash of the task id into ``"train"`` 139 / ``"validation"``
  17 / ``"test"`` 19; ``"eval"``: the 252 expert-written user-oriented
  instructions, which the Self-Instruct authors ask never to train on.
  License: Apache-2.0.
* **Defaults**: ``max_prompt_length=512``, ``max_new_tokens=256``.
"""

from __future__ import annotations

from typing import Any

from textgym.envs._task import build_task, check_split, count_words, cut_words, fit_prompts

__all__ = ["make_self_instruct", "self_instruct_samples", "format_instruction", "SPLITS"]

#: split -> (data set, its split)
SPLITS = {
    "train": ("self-instruct-seed", "train"),
    "validation": ("self-instruct-seed", "validation"),
    "test": ("self-instruct-seed", "test"),
    "eval": ("self-instruct-eval", "test"),
}
DEFAULTS = {"max_prompt_length": 512, "max_new_tokens": 256}


def format_instruction(instruction: str, input_text: str = "") -> str:
    """The prompt of one task: instruction, optional input, and the ``Response:`` cue."""
    if input_text.strip():
        return f"Instruction: {instruction.strip()}\nInput: {input_text.strip()}\nResponse:"
    return f"Instruction: {instruction.strip()}\nResponse:"


def self_instruct_samples(
    split: str, tokenizer: Any, max_prompt_length: int = 512, prompt_format: Any = None
) -> list[dict[str, Any]]:
    """Samples of ``textgym/SelfInstruct-v0``.

    Args:
        split: ``"train"``, ``"validation"``, ``"test"`` or ``"eval"``.
        tokenizer: tokenizer object (the fit is measured in its tokens).
        max_prompt_length: the env's ``P``.
        prompt_format: the env's prompt format.

    Returns:
        A list of dicts: ``prompt``, ``references`` (``[output]``),
        ``instruction``, ``input`` (both as shown), ``id``.

    Raises:
        ValueError: unknown split.
    """
    from textgym.envs.datasets import load

    check_split(split, SPLITS, "textgym/SelfInstruct-v0")
    name, data_split = SPLITS[split]
    rows = load(name, data_split).to_list()

    def long_field(row: dict[str, Any]) -> str:
        return "input" if (row.get("input") or "").strip() else "instruction"

    def build(row: dict[str, Any], n: int | None) -> dict[str, Any]:
        fields = {"instruction": row["instruction"], "input": row.get("input") or ""}
        key = long_field(row)
        fields[key] = cut_words(fields[key].strip(), n)
        return {
            "prompt": format_instruction(fields["instruction"], fields["input"]),
            "references": [row["output"].strip()],
            "instruction": fields["instruction"].strip(),
            "input": fields["input"].strip(),
            "id": row["id"],
        }

    return fit_prompts(
        rows, build, lambda r: count_words(r[long_field(r)]), tokenizer, max_prompt_length, prompt_format,
        cache_key=(name, data_split),
    )


def make_self_instruct(
    tokenizer: Any = "smollm2-135m-instruct",
    reward: Any = None,
    split: str = "train",
    samples: Any = None,
    reward_model: Any = None,
    **kwargs: Any,
):
    """Factory of ``textgym/SelfInstruct-v0``; keyword arguments are ``gym.make`` overrides.

    Args:
        tokenizer: model name/path (its tokenizer is loaded) or a tokenizer object.
        reward: reward name, object or callable; default: the reward model if
            ``reward_model`` is given, else ``"rougeL"``.
        split: ``"train"`` (139), ``"validation"`` (17), ``"test"`` (19) or
            ``"eval"`` (252, evaluation only).
        samples: your own samples (``prompt`` column) instead of the data; used as given.
        reward_model: local directory (or loaded model) of a reward model.
        **kwargs: env arguments (``max_prompt_length`` default 512,
            ``max_new_tokens`` default 256, ``prompt_format``, ...).

    Returns:
        ``(tokenizer, samples, reward, settings)`` for :func:`textgym.registration.build_env`.

    Raises:
        ValueError: unknown split, bad lengths, or both ``reward`` and ``reward_model``.
        TypeError: unknown argument.
    """
    return build_task(
        "textgym/SelfInstruct-v0", tokenizer=tokenizer, reward=reward, default_reward="rougeL",
        reward_model=reward_model, split=split, splits=SPLITS, samples=samples, kwargs=kwargs, defaults=DEFAULTS,
        make_samples=lambda tok, p, fmt: self_instruct_samples(split, tok, p, fmt),
    )
