"""Next assistant turn of an Anthropic HH-RLHF (harmless) conversation: ``textgym/HHDialogue-v0``.

* **Observation / action**: as :class:`textgym.TextGenEnv` (``input_ids`` /
  ``attention_mask`` of shape ``(P + T,)`` int64; the next token id).
* **Prompt**: the conversation so far as a transcript,
  ``"Human: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant:"``.  A
  conversation too long for ``P`` tokens loses whole *turns* from its start
  (it then opens with a human turn; the last human turn is always kept), so
  the prompt still ends with the ``Assistant:`` cue.  Identical prompts are merged into one sample.
* **Reward**: with ``reward_model=`` (a local directory of a reward model saved
  by textgym's reward-model trainer, e.g. trained on this set's ``"train"``
  pairs, or a loaded model) its scalar score of prompt + reply.  Without one,
  a **placeholder** rule reward until a reward model is trained: a
  :class:`~textgym.rewards.WeightedSum` of ``length`` (1 for replies of
  15-45 words, falling linearly to 0 at 0 and 60 words) and ``repetition``
  (minus the fraction of repeated word trigrams, in ``[-1, 0]``); range ``[-1, 1]``,
  optimum 1.0.  It rewards fluent-length, non-repetitive replies, *not*
  harmlessness or helpfulness.  Any reward can be passed as ``reward=``.
* **Episode end**: EOS (terminated) or ``max_new_tokens`` tokens (truncated).
* **References**: the preferred ("chosen") replies of the human raters.
* **Data and splits**: Anthropic HH-RLHF harmless-base (test file, 2312
  preference pairs).  Default ``split="dialogue"``: the held-out block of
  conversations whose opening turns never occur in the reward-model pairs
  (``"train"`` / ``"validation"`` / ``"test"``, the pairs' splits, are accepted
  too).  License: MIT.  **Content warning**: red-team conversations with
  offensive and upsetting text.
* **Defaults**: ``max_prompt_length=512``, ``max_new_tokens=128``.
"""

from __future__ import annotations

import re
from typing import Any

from textgym.envs._task import check_split, define_factory, fit_prompts

__all__ = ["make_hh_dialogue", "hh_dialogue_samples", "placeholder_reward", "split_turns", "SPLITS"]

SPLITS = ("dialogue", "train", "validation", "test")
DEFAULTS = {"max_prompt_length": 512, "max_new_tokens": 128}
_TURN = re.compile(r"\n\n(?=(?:Human|Assistant):)")


def split_turns(transcript: str) -> list[str]:
    """Turns of an HH transcript (``"Human: ..."`` / ``"Assistant: ..."`` strings), in order."""
    return [t for t in _TURN.split("\n\n" + transcript.strip()) if t.strip()]


def hh_dialogue_samples(
    split: str, tokenizer: Any, max_prompt_length: int = 512, prompt_format: Any = None
) -> list[dict[str, Any]]:
    """Samples of ``textgym/HHDialogue-v0``: one per distinct conversation prefix.

    Args:
        split: ``"dialogue"`` (held out from the reward-model pairs), ``"train"``,
            ``"validation"`` or ``"test"``.
        tokenizer: tokenizer object (the fit is measured in its tokens).
        max_prompt_length: the env's ``P``.
        prompt_format: the env's prompt format.

    Returns:
        A list of dicts: ``prompt`` (transcript ending in ``"Assistant:"``),
        ``references`` (the distinct chosen replies), ``id`` (of the first pair).

    Raises:
        ValueError: unknown split.
    """
    from textgym.envs.datasets import load

    check_split(split, SPLITS, "textgym/HHDialogue-v0")
    groups: dict[str, dict[str, Any]] = {}
    for row in load("hh-rlhf-harmless", split).to_list():
        key = row["prompt"].strip()
        group = groups.setdefault(key, {"turns": split_turns(key), "chosen": [], "id": row["id"]})
        reply = row["chosen"].strip()
        if reply and reply not in group["chosen"]:
            group["chosen"].append(reply)

    def build(group: dict[str, Any], n: int | None) -> dict[str, Any]:
        history, cue = group["turns"][:-1], group["turns"][-1]
        kept = history if n is None else history[len(history) - n :]
        while len(kept) > 1 and not kept[0].startswith("Human:"):  # a cut conversation opens with a human turn
            kept = kept[1:]
        return {"prompt": "\n\n".join([*kept, cue]), "references": list(group["chosen"]), "id": group["id"]}

    return fit_prompts(
        list(groups.values()), build, lambda g: len(g["turns"]) - 1, tokenizer, max_prompt_length, prompt_format,
        min_units=1, cache_key=("hh-rlhf-harmless", split),
    )


def placeholder_reward():
    """The rule reward used when no reward model is given (see the module docstring).

    Returns:
        A ``WeightedSum`` of ``length`` (``LengthReward(target=30, unit="words",
        tolerance=15, width=15)``) and ``repetition`` (``RepetitionPenalty(n=3)``).
    """
    from textgym.rewards import LengthReward, RepetitionPenalty, WeightedSum

    return WeightedSum(
        {
            "length": LengthReward(target=30, unit="words", tolerance=15, width=15),
            "repetition": RepetitionPenalty(n=3),
        }
    )


make_hh_dialogue = define_factory(
    "textgym/HHDialogue-v0", "make_hh_dialogue", hh_dialogue_samples, default_reward=placeholder_reward,
    reward_model=True, splits=SPLITS, defaults=DEFAULTS, default_split="dialogue",
    split_doc='``"dialogue"`` (default, held out), ``"train"``, ``"validation"`` or ``"test"``',
    samples_doc="your own samples (``prompt`` column) instead of the data; used as given",
)
