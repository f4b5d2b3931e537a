"""English→German and English→French: ``textgym/Translation-en-de-v0``, ``textgym/Translation-en-fr-v0``.

* **Observation / action**: as :class:`textgym.TextGenEnv` (``input_ids`` /
  ``attention_mask`` of shape ``(P + T,)`` int64; the next token id).
* **Prompt**: ``"Translate from English to German: {en}\\nGerman:"`` (French
  likewise).  A source sentence too long for ``P`` tokens is cut (whole words,
  marked ``" ..."``) so that the ``German:`` cue survives.
* **Reward**: sentence-level chrF in ``[0, 1]`` against the reference
  translation (default ``"chrf"``; ``reward="sacrebleu"`` gives SacreBLEU on
  its 0-100 scale, ``"bleu"`` BLEU in ``[0, 1]``).  The reference scores 1.0.
* **Episode end**: EOS (terminated) or ``max_new_tokens`` tokens (truncated).
* **Data and splits** (``split=``):

  - ``"train"`` / ``"validation"`` / ``"tatoeba-test"``: the first 5000 pairs
    of the Tatoeba Challenge test set v2021-08-07 (short everyday sentences),
    split by hash of the English sentence (en-de 4008 / 513 / 479, en-fr 4012
    / 491 / 497; a repeated source sentence stays in one split).  CC BY 2.0 FR.
  - ``"test"``: FLORES-200 devtest, 1012 sentences (Wikinews, Wikijunior,
    Wikivoyage).  CC BY-SA 4.0.
  - ``"ntrex"``: NTREX-128, the 1997 sentences of WMT newstest2019 with
    professional translations (news).  CC BY-SA 4.0.

  The two evaluation sets are other domains than the Tatoeba training pairs
  (out-of-domain test, as for WMT-style evaluation).
* **Defaults**: ``max_prompt_length=128``, ``max_new_tokens=128``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from textgym.envs._task import check_split, cut_words, define_factory, fit_split

__all__ = ["make_en_de", "make_en_fr", "translation_samples", "SPLITS", "LANGUAGES"]

#: Target language code -> its English name, used in the prompt.
LANGUAGES = {"de": "German", "fr": "French"}
#: split -> (data set, its split); "{tgt}" is the target language code.
_TATOEBA = "tatoeba-en-{tgt}"
SPLITS = {
    "train": (_TATOEBA, "train"), "validation": (_TATOEBA, "validation"), "tatoeba-test": (_TATOEBA, "test"),
    "test": ("flores200", "test"), "ntrex": ("ntrex128", "test"),
}
DEFAULTS = {"max_prompt_length": 128, "max_new_tokens": 128}


def translation_samples(target: str, split: str, tokenizer: Any, max_prompt_length: int = 128,
                        prompt_format: Any = None) -> list[dict[str, Any]]:
    """Samples of English→``target`` (``"de"`` or ``"fr"``) translation, ``split`` a key of :data:`SPLITS`.

    A source sentence is cut to fit ``max_prompt_length`` tokens of ``tokenizer`` after ``prompt_format``.

    Returns:
        A list of dicts: ``prompt``, ``references`` (``[translation]``),
        ``source`` (the English sentence as shown), ``id``.

    Raises:
        ValueError: unknown target language or split.
    """
    if target not in LANGUAGES:
        raise ValueError(f"target language must be one of {sorted(LANGUAGES)}, got {target!r}")
    check_split(split, SPLITS, f"translation en-{target}")
    name, data_split = SPLITS[split]
    instruction = f"Translate from English to {LANGUAGES[target]}: {{source}}\n{LANGUAGES[target]}:"

    def build(row: dict[str, Any], n: int | None) -> dict[str, Any]:
        source = cut_words(row["en"].strip(), n)
        return {
            "prompt": instruction.format(source=source),
            "references": [row[target].strip()],
            "source": source,
            "id": row["id"],
        }

    return fit_split(name.format(tgt=target), data_split, build, "en", tokenizer, max_prompt_length, prompt_format,
                     cache_key=(target, split))


_SAMPLES_DOC = "your own samples (``prompt`` column) instead of the data; used as given"
make_en_de = define_factory(
    "textgym/Translation-en-de-v0", "make_en_de", partial(translation_samples, "de"), default_reward="chrf",
    splits=SPLITS, defaults=DEFAULTS, samples_doc=_SAMPLES_DOC,
    split_doc='``"train"``, ``"validation"``, ``"tatoeba-test"``, ``"test"`` (FLORES-200 devtest) or ``"ntrex"`` '
    "(NTREX-128)",
)
make_en_fr = define_factory(
    "textgym/Translation-en-fr-v0", "make_en_fr", partial(translation_samples, "fr"), default_reward="chrf",
    splits=SPLITS, defaults=DEFAULTS, samples_doc=_SAMPLES_DOC, split_doc="as :func:`make_en_de`'s",
)
