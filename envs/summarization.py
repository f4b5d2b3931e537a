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

from functools import partial
from typing import Any

from textgym.envs._task import check_split, cut_words, define_factory, fit_split

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


def summarization_samples(dataset: str, split: str, tokenizer: Any, max_prompt_length: int = 512,
                          prompt_format: Any = None) -> list[dict[str, Any]]:
    """Samples of ``split`` (train / validation / test) of the set ``dataset`` (``"cnn-dailymail"`` or ``"xsum"``).

    The article is cut to fit ``max_prompt_length`` tokens of ``tokenizer`` after ``prompt_format``.

    Returns:
        A list of dicts: ``prompt`` (str), ``references`` (``[summary]``),
        ``document`` (the article as shown, str), ``id`` (str).

    Raises:
        ValueError: unknown split.
    """
    check_split(split, SPLITS, dataset)

    def build(row: dict[str, Any], n: int | None) -> dict[str, Any]:
        document = cut_words(row["document"].strip(), n)
        return {
            "prompt": PROMPT.format(document=document),
            "references": [row["summary"].strip()],
            "document": document,
            "id": row["id"],
        }

    return fit_split(dataset, split, build, "document", tokenizer, max_prompt_length, prompt_format)


make_cnn_dailymail = define_factory(
    "textgym/CNNDailyMail-v0", "make_cnn_dailymail", partial(summarization_samples, "cnn-dailymail"),
    default_reward="rougeL", splits=SPLITS, defaults=CNN_DAILYMAIL_DEFAULTS,
    split_doc='``"train"`` (162), ``"validation"`` (18) or ``"test"`` (20)',
    samples_doc="your own samples (``prompt`` column, optional ``references``) instead of the data set; used as "
    "given (no fitting)",
)
make_xsum = define_factory(
    "textgym/XSum-v0", "make_xsum", partial(summarization_samples, "xsum"),
    default_reward="rougeL", splits=SPLITS, defaults=XSUM_DEFAULTS,
    split_doc='``"train"`` (151), ``"validation"`` (26) or ``"test"`` (23)',
    samples_doc="as :func:`make_cnn_dailymail`'s",
)
