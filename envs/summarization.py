"""News summarization: ``textgym/CNNDailyMail-v0`` (multi-sentence highlights) and ``textgym/XSum-v0`` (one sentence).

* **Observation / action**: as :class:`textgym.TextGenEnv`: ``input_ids`` and
  ``attention_mask``, each ``(P + T,)`` int64 (prompt left-padded in the first
  ``P = max_prompt_length`` slots, generated tokens after it); the action is the
  next token id in ``[0, V)``.
* **Prompt**: ``"Summarize: {document}\\nSummary:"``.  When the formatted prompt
  is longer than ``P`` tokens of the env's tokenizer, the *article* is cut
  (whole words, from its end, marked ``" ..."``) until it fits, so the
  instruction and the ``Summary:`` cue always survive; the sample's ``document``
  column holds the text actually shown.
* **Reward**: ROUGE-L F-measure against the reference summary, in ``[0, 1]``
  (default ``"rougeL"``; any reward name, object or callable via ``reward=``).
  The reference itself scores 1.0.
* **Episode end**: EOS (terminated) or ``max_new_tokens`` tokens (truncated).
* **References**: the reference summary (CNN/DailyMail: the article's
  highlights, one per line; XSum: the one-sentence summary).
* **Data**: the first 200 pairs of each set as sampled into the T0 training
  mixture (articles cut to ~340 words upstream; ``document_truncated`` marks
  those), vendored in ``envs/data`` (see :mod:`textgym.envs.datasets`).
  Splits by hash of the article id: CNN/DailyMail 162 train / 18 validation /
  20 test; XSum 151 / 26 / 23.
* **License**: unclear (articles copyright CNN / Daily Mail / BBC): research use only.
* **Defaults**: ``max_prompt_length=512``; ``max_new_tokens=128`` (CNN/DM) or
  ``64`` (XSum).
"""

from __future__ import annotations

from typing import Any

from textgym.envs._task import build_task, check_split, count_words, cut_words, fit_prompts

__all__ = ["make_cnn_dailymail", "make_xsum", "summarization_samples", "PROMPT", "SPLITS"]

#: Prompt template; ``{document}`` is the (possibly cut) article.
PROMPT = "Summarize: {document}\nSummary:"
SPLITS = ("train", "validation", "test")

#: each task's env lengths (its TaskSpec's defaults)
CNN_DAILYMAIL_DEFAULTS = {"max_prompt_length": 512, "max_new_tokens": 128}
XSUM_DEFAULTS = {"max_prompt_length": 512, "max_new_tokens": 64}

_SETS = {
    "textgym/CNNDailyMail-v0": ("cnn-dailymail", CNN_DAILYMAIL_DEFAULTS),
    "textgym/XSum-v0": ("xsum", XSUM_DEFAULTS),
}


def summarization_samples(
    dataset: str,
    split: str,
    tokenizer: Any,
    max_prompt_length: int = 512,
    prompt_format: Any = None,
) -> list[dict[str, Any]]:
    """Samples of a summarization task, the article cut to fit ``max_prompt_length`` tokens.

    Args:
        dataset: ``"cnn-dailymail"`` or ``"xsum"``.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        tokenizer: tokenizer object; the fit is measured in its tokens.
        max_prompt_length: the env's ``P``.
        prompt_format: the env's prompt format (the fit is measured after it).

    Returns:
        A list of dicts: ``prompt`` (str), ``references`` (``[summary]``),
        ``document`` (the article as shown, str), ``id`` (str).

    Raises:
        ValueError: unknown split.
    """
    from textgym.envs.datasets import load

    check_split(split, SPLITS, dataset)
    rows = load(dataset, split).to_list()

    def build(row: dict[str, Any], n: int | None) -> dict[str, Any]:
        document = cut_words(row["document"].strip(), n)
        return {
            "prompt": PROMPT.format(document=document),
            "references": [row["summary"].strip()],
            "document": document,
            "id": row["id"],
        }

    return fit_prompts(rows, build, lambda r: count_words(r["document"]), tokenizer, max_prompt_length, prompt_format,
                       cache_key=(dataset, split))


def _make(task_id: str, tokenizer: Any, reward: Any, split: str, samples: Any, kwargs: dict[str, Any]):
    dataset, defaults = _SETS[task_id]
    return build_task(
        task_id, tokenizer=tokenizer, reward=reward, default_reward="rougeL", split=split, splits=SPLITS,
        samples=samples, kwargs=kwargs, defaults=defaults,
        make_samples=lambda tok, p, fmt: summarization_samples(dataset, split, tok, p, fmt),
    )


def make_cnn_dailymail(
    tokenizer: Any = "smollm2-135m-instruct",
    reward: Any = None,
    split: str = "train",
    samples: Any = None,
    **kwargs: Any,
):
    """Factory of ``textgym/CNNDailyMail-v0``; keyword arguments are ``gym.make`` overrides.

    Args:
        tokenizer: model name/path (its tokenizer is loaded) or a tokenizer object.
        reward: reward name, object or callable (default ``"rougeL"``).
        split: ``"train"`` (162), ``"validation"`` (18) or ``"test"`` (20).
        samples: your own samples (``prompt`` column, optional ``references``)
            instead of the data set; used as given (no fitting).
        **kwargs: env arguments (``max_prompt_length`` default 512,
            ``max_new_tokens`` default 128, ``prompt_format``, ...).

    Returns:
        ``(tokenizer, samples, reward, settings)`` for :func:`textgym.registration.build_env`.

    Raises:
        ValueError: unknown split or bad lengths.  TypeError: unknown argument.
    """
    return _make("textgym/CNNDailyMail-v0", tokenizer, reward, split, samples, kwargs)


def make_xsum(
    tokenizer: Any = "smollm2-135m-instruct",
    reward: Any = None,
    split: str = "train",
    samples: Any = None,
    **kwargs: Any,
):
    """Factory of ``textgym/XSum-v0``: as :func:`make_cnn_dailymail` (splits 151 / 26 / 23,
    ``max_new_tokens`` default 64)."""
    return _make("textgym/XSum-v0", tokenizer, reward, split, samples, kwargs)
