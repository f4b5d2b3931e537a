"""Sentiment continuation on movie-review prefixes (RL4LMs' IMDb task).

``textgym/IMDB-v0``

* **Prompts**: the first ``prompt_words`` words of a review from Pang & Lee's
  polarity data set v2.0 (2000 IMDb-archive reviews, lower-cased and tokenized
  by the authors; CC BY 4.0, see ``envs/data/movie_reviews_polarity_v2``).
  Splits by the authors' folds: 1-8 train (1600), 9 validation (200), 10 test (200).
* **Observation / action**: as :class:`textgym.TextGenEnv` (token ids of the
  prompt + completion; the next token).
* **Reward**: the positive-sentiment score of the completion, in ``[0, 1]``
  (default ``"sentiment"``: P(positive) from textgym's MiniLM classifier fine-tuned
  on Rotten Tomatoes snippets, trained once on first use and cached; ``"sentiment-vader"``
  is a model-free lexicon scorer; any reward name, object or
  callable can be passed as ``reward=``).
* **Episode end**: EOS (terminated) or ``max_new_tokens`` tokens (truncated).
* **References**: the rest of the review (first 60 words of it).
"""

from __future__ import annotations

from typing import Any

from textgym.envs._task import task_settings
from textgym.envs.common import resolve_tokenizer

__all__ = ["make_imdb", "imdb_samples"]


def imdb_samples(split: str = "train", prompt_words: int = 30, sentiment: str | None = None) -> list[dict[str, Any]]:
    """Prompt samples of the sentiment-continuation task.

    Args:
        split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.
        prompt_words: how many words of each review form the prompt.
        sentiment: keep only ``"pos"`` or ``"neg"`` reviews (default: both).

    Returns:
        A list of dicts: ``prompt`` (str), ``references`` (list with the
        review's next 60 words), ``label`` (``"pos"``/``"neg"``), ``id``.

    Raises:
        ValueError: unknown split, ``prompt_words < 1`` or ``sentiment`` not ``"pos"``/``"neg"``/``None``.
    """
    from textgym.envs.datasets import load

    if prompt_words < 1:
        raise ValueError(f"prompt_words must be >= 1, got {prompt_words}")
    if sentiment not in (None, "pos", "neg"):
        raise ValueError(f"sentiment must be 'pos', 'neg' or None (both), got {sentiment!r}")
    rows = load("movie-reviews", split)
    out = []
    for row in rows:
        if sentiment is not None and row["label"] != sentiment:
            continue
        words = row["text"].split()
        out.append(
            {
                "prompt": " ".join(words[:prompt_words]),
                "references": [" ".join(words[prompt_words : prompt_words + 60])],
                "label": row["label"],
                "id": row["id"],
            }
        )
    return out


#: the env lengths of textgym/IMDB-v0 (its TaskSpec's defaults)
DEFAULTS = {"max_prompt_length": 64, "max_new_tokens": 32}


def make_imdb(
    tokenizer: Any = "smollm2-135m-instruct",
    reward: Any = "sentiment",
    split: str = "train",
    prompt_words: int = 30,
    samples: Any = None,
    sentiment: str | None = None,
    **kwargs: Any,
):
    """Factory of ``textgym/IMDB-v0``; keyword arguments are ``gym.make`` overrides.

    Args:
        tokenizer: model name/path (its tokenizer is loaded) or a tokenizer object.
        reward: reward name, object or callable.
        split: data split of the prompts.
        prompt_words: words of each review used as prompt.
        samples: your own samples (``prompt`` column) instead of the data set.
        sentiment: keep only the prefixes of ``"pos"`` or ``"neg"`` reviews (default: both);
            e.g. SFT data made of positive reviews.
        **kwargs: env arguments (``max_prompt_length`` default 64,
            ``max_new_tokens`` default 32, ``prompt_format``, ...).

    Returns:
        ``(tokenizer, samples, reward, settings)`` for :func:`textgym.registration.build_env`.
    """
    settings = task_settings("textgym/IMDB-v0", kwargs, DEFAULTS)
    data = samples if samples is not None else imdb_samples(split, prompt_words, sentiment)
    return resolve_tokenizer(tokenizer), data, reward, settings
