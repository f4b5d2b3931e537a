"""Constrained generation: one everyday sentence using all given concepts: ``textgym/CommonGen-v0``.

* **Observation / action**: as :class:`textgym.TextGenEnv` (``input_ids`` /
  ``attention_mask`` of shape ``(P + T,)`` int64; the next token id).
* **Prompt**: ``"Write one sentence that uses all of these words: dog, frisbee,
  catch.\\nSentence:"``.
* **Reward**: ``0.5 * coverage + 0.5 * ROUGE-L`` in ``[0, 1]``, a
  :class:`~textgym.rewards.WeightedSum` logging both components: ``coverage``
  is the fraction of concepts present in some inflected form
  (:class:`~textgym.rewards.KeywordCoverageReward` on the ``concepts``
  column), ``reference`` the ROUGE-L F-measure against the best human reference.
  A human reference scores at or near 1.0 (coverage can miss an unusual
  inflection).  Any reward can be passed as ``reward=``.
* **Episode end**: EOS (terminated) or ``max_new_tokens`` tokens (truncated).
* **References**: the human-written sentences of the concept set.
* **Data and splits**: CommonGen v1.0 (only its dev and test files are public
  with references).  ``"train"``: the 1497 upstream test concept sets (their
  references were withdrawn from the leaderboard later); upstream dev split
  by hash of the concept set into ``"validation"`` 418 / ``"test"`` 575.
  License: MIT.
* **Defaults**: ``max_prompt_length=64``, ``max_new_tokens=48``.
"""

from __future__ import annotations

from typing import Any

from textgym.envs._task import check_split, define_factory

__all__ = ["make_commongen", "commongen_samples", "commongen_reward", "PROMPT", "SPLITS"]

PROMPT = "Write one sentence that uses all of these words: {words}.\nSentence:"
SPLITS = ("train", "validation", "test")
DEFAULTS = {"max_prompt_length": 64, "max_new_tokens": 48}


def commongen_samples(split: str) -> list[dict[str, Any]]:
    """Samples of ``textgym/CommonGen-v0`` (prompts are short: no fitting needed).

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Returns:
        A list of dicts: ``prompt``, ``references`` (list of sentences),
        ``concepts`` (list of words), ``concept_set`` (``"word_POS#..."``), ``id``.

    Raises:
        ValueError: unknown split.
    """
    from textgym.envs.datasets import load

    check_split(split, SPLITS, "textgym/CommonGen-v0")
    out = []
    for row in load("commongen", split).to_list():
        concepts = [c.strip() for c in row["concepts"] if c.strip()]
        out.append(
            {
                "prompt": PROMPT.format(words=", ".join(concepts)),
                "references": [r.strip() for r in row["references"] if r.strip()],
                "concepts": concepts,
                "concept_set": row["concept_set"],
                "id": row["id"],
            }
        )
    return out


def commongen_reward(coverage_weight: float = 0.5, metric: Any = "rougeL"):
    """The default reward: ``coverage_weight * coverage + (1 - coverage_weight) * metric``.

    Args:
        coverage_weight: weight of the concept coverage, in ``[0, 1]``.
        metric: the reference metric (a reward name such as ``"rougeL"`` or
            ``"bleu"``, or a reward object).

    Returns:
        A ``WeightedSum`` with components ``coverage`` and ``reference``.

    Raises:
        ValueError: ``coverage_weight`` outside ``[0, 1]``.
    """
    from textgym.rewards import KeywordCoverageReward, WeightedSum

    if not 0.0 <= coverage_weight <= 1.0:
        raise ValueError(f"coverage_weight must lie in [0, 1], got {coverage_weight}")
    return WeightedSum(
        {"coverage": KeywordCoverageReward(column="concepts"), "reference": metric},
        {"coverage": coverage_weight, "reference": 1.0 - coverage_weight},
    )


make_commongen = define_factory(
    "textgym/CommonGen-v0", "make_commongen", lambda split, tok, p, fmt: commongen_samples(split),  # short prompts
    default_reward=commongen_reward, splits=SPLITS, defaults=DEFAULTS,
    split_doc='``"train"`` (1497), ``"validation"`` (418) or ``"test"`` (575)',
    samples_doc="your own samples (``prompt`` and ``concepts`` columns) instead of the data",
)
