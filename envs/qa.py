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

from textgym.envs._task import build_task, check_split, count_words, cut_words, fit_prompts

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
    """Samples of ``textgym/XQuAD-v0``.

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.
        tokenizer: tokenizer object (the fit is measured in its tokens).
        max_prompt_length: the env's ``P``.
        prompt_format: the env's prompt format.

    Returns:
        A list of dicts: ``prompt``, ``references`` (list of answer strings),
        ``context`` (the passage as shown), ``question``, ``title``, ``id``.

    Raises:
        ValueError: unknown split.
    """
    from textgym.envs.datasets import load

    check_split(split, SPLITS, "textgym/XQuAD-v0")
    rows = load("xquad-en", split).to_list()

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

    return fit_prompts(rows, build, lambda r: count_words(r["context"]), tokenizer, max_prompt_length, prompt_format,
                       cache_key=("xquad-en", split))


def make_xquad(
    tokenizer: Any = "smollm2-135m-instruct",
    reward: Any = None,
    split: str = "train",
    samples: Any = None,
    **kwargs: Any,
):
    """Factory of ``textgym/XQuAD-v0``; keyword arguments are ``gym.make`` overrides.

    Args:
        tokenizer: model name/path (its tokenizer is loaded) or a tokenizer object.
        reward: reward name, object or callable (default ``"token-f1"``).
        split: ``"train"`` (962), ``"validation"`` (102) or ``"test"`` (126).
        samples: your own samples (``prompt`` column) instead of the data; used as given.
        **kwargs: env arguments (``max_prompt_length`` default 512,
            ``max_new_tokens`` default 32, ``prompt_format``, ...).

    Returns:
        ``(tokenizer, samples, reward, settings)`` for :func:`textgym.registration.build_env`.

    Raises:
        ValueError: unknown split or bad lengths.  TypeError: unknown argument.
    """
    return build_task(
        "textgym/XQuAD-v0", tokenizer=tokenizer, reward=reward, default_reward="token-f1", split=split,
        splits=SPLITS, samples=samples, kwargs=kwargs, defaults=DEFAULTS,
        make_samples=lambda tok, p, fmt: xquad_samples(split, tok, p, fmt),
    )
