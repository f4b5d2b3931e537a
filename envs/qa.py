"""Extractive question answering on XQuAD (English): ``textgym/XQuAD-v0``.

* **Observation / action**: as :class:`textgym.TextGenEnv` (``input_ids`` /
  ``attention_mask`` of shape ``(P + T,)`` int64; the next token id).
* **Prompt**: ``"Answer the question with a short span copied from the
  passage.\\n\\nPassage: {context}\\n\\nQuestion: {question}\\nAnswer:"``.  A
  passage too long for ``P`` tokens is cut at its end (whole words, marked
  ``" ..."``) so the question and the ``Answer:`` cue survive; the cut can
  remove the answer, which happens for a few passages only at small ``P``.
* **Reward**: SQuAD token F1 against the best-matching gold answer, in
  ``[0, 1]`` (default ``"token-f1"``; ``"exact-match"`` is the strict variant).
  A gold answer scores 1.0.
* **Episode end**: EOS (terminated) or ``max_new_tokens`` tokens (truncated).
* **References**: the distinct gold answer texts (XQuAD has one per question).
* **Data**: XQuAD English, 1190 SQuAD v1.1 questions over 240 Wikipedia
  paragraphs; splits by hash of the paragraph so that all questions about one
  paragraph stay together: 962 train / 102 validation / 126 test.
* **License**: CC BY-SA 4.0.
* **Defaults**: ``max_prompt_length=512``, ``max_new_tokens=32``.
"""

from __future__ import annotations

from typing import Any

from textgym.envs._task import check_split, cut_words, define_factory, fit_split

__all__ = ["make_xquad", "xquad_samples", "PROMPT", "SPLITS"]

PROMPT = (
    "Answer the question with a short span copied from the passage.\n\n"
    "Passage: {context}\n\nQuestion: {question}\nAnswer:"
)
SPLITS = ("train", "validation", "test")
DEFAULTS = {"max_prompt_length": 512, "max_new_tokens": 32}


def xquad_samples(
    split: str, tokenizer: Any, max_prompt_length: int = 512, prompt_format: Any = None
) -> list[dict[str, Any]]:
    """Samples of ``textgym/XQuAD-v0`` of ``split`` (``"train"``, ``"validation"`` or ``"test"``).

    A passage is cut to fit ``max_prompt_length`` tokens of ``tokenizer`` after ``prompt_format``.

    Returns:
        A list of dicts: ``prompt``, ``references`` (list of answer strings),
        ``context`` (the passage as shown), ``question``, ``title``, ``id``.

    Raises:
        ValueError: unknown split.
    """
    check_split(split, SPLITS, "textgym/XQuAD-v0")

    def build(row: dict[str, Any], n: int | None) -> dict[str, Any]:
        context = cut_words(row["context"].strip(), n)
        question = row["question"].strip()
        answers = list(dict.fromkeys(a.strip() for a in row["answers"]["text"] if a.strip()))
        return {
            "prompt": PROMPT.format(context=context, question=question),
            "references": answers,
            "context": context,
            "question": question,
            "title": row["title"],
            "id": row["id"],
        }

    return fit_split("xquad-en", split, build, "context", tokenizer, max_prompt_length, prompt_format)


make_xquad = define_factory(
    "textgym/XQuAD-v0", "make_xquad", xquad_samples, default_reward="token-f1", splits=SPLITS, defaults=DEFAULTS,
    split_doc='``"train"`` (962), ``"validation"`` (102) or ``"test"`` (126)',
    samples_doc="your own samples (``prompt`` column) instead of the data; used as given",
)
