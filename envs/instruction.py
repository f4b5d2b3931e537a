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

from textgym.envs._task import check_split, count_words, cut_words, define_factory, fit_split

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
    """Samples of ``textgym/SelfInstruct-v0`` of ``split`` (``"train"``, ``"validation"``, ``"test"`` or ``"eval"``).

    The input (the instruction if there is none) is cut to fit ``max_prompt_length`` tokens of
    ``tokenizer`` after ``prompt_format``.

    Returns:
        A list of dicts: ``prompt``, ``references`` (``[output]``),
        ``instruction``, ``input`` (both as shown), ``id``.

    Raises:
        ValueError: unknown split.
    """
    check_split(split, SPLITS, "textgym/SelfInstruct-v0")

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

    return fit_split(*SPLITS[split], build, lambda r: count_words(r[long_field(r)]), tokenizer, max_prompt_length,
                     prompt_format)


make_self_instruct = define_factory(
    "textgym/SelfInstruct-v0", "make_self_instruct", self_instruct_samples, default_reward="rougeL",
    reward_model=True, splits=SPLITS, defaults=DEFAULTS,
    split_doc='``"train"`` (139), ``"validation"`` (17), ``"test"`` (19) or ``"eval"`` (252, evaluation only)',
    samples_doc="your own samples (``prompt`` column) instead of the data; used as given",
)
