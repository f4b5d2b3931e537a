"""Small text helpers shared by the rewards (no heavy imports).

Everything here is pure Python on ``str``: tokenisers for counting words,
SQuAD answer normalisation, and an inflection-tolerant word matcher.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import lru_cache

__all__ = [
    "clean_text",
    "word_tokens",
    "squad_normalize",
    "squad_tokens",
    "word_variants",
    "references_for",
]

_WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_ALNUM_RE = re.compile(r"\w+", re.UNICODE)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def clean_text(text: object) -> str:
    """Return ``text`` as a ``str`` that every scorer and Arrow can encode.

    ``None`` becomes ``""``; other non-strings are converted with ``str``.
    Lone UTF-16 surrogates (which cannot be encoded as UTF-8) are replaced by
    ``"?"``.  Control characters are kept: scorers treat them as ordinary
    characters.
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def word_tokens(text: str, *, lowercase: bool = True, punctuation: bool = True) -> list[str]:
    """Split ``text`` into words (runs of ``\\w``) and, optionally, punctuation marks.

    Args:
        text: any string.
        lowercase: lowercase the tokens.
        punctuation: keep each non-space, non-word character as its own token.

    Returns:
        The tokens in order; ``[]`` for empty or whitespace-only text.
    """
    if lowercase:
        text = text.lower()
    return (_WORD_RE if punctuation else _ALNUM_RE).findall(text)


def squad_normalize(text: str) -> str:
    """Normalise an answer string the way the SQuAD evaluation does.

    Lowercase, drop ASCII punctuation, drop the articles *a/an/the*, and
    collapse whitespace (Rajpurkar et al., 2016, "SQuAD: 100,000+ Questions
    for Machine Comprehension of Text", official evaluation script).
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def squad_tokens(text: str) -> list[str]:
    """Whitespace tokens of :func:`squad_normalize` applied to ``text``."""
    return squad_normalize(text).split()


def references_for(references: Sequence[Sequence[str]] | None, n: int, reward_name: str) -> list[list[str]]:
    """Validate per-sample references and turn each into a non-empty list.

    Args:
        references: ``n`` lists of reference strings (a bare string is taken
            as a one-element list).
        n: the batch size.
        reward_name: used in error messages.

    Returns:
        ``n`` lists of cleaned strings; an empty list becomes ``[""]`` so that
        every sample has a defined score.

    Raises:
        ValueError: ``references`` is ``None`` or has the wrong length.
    """
    if references is None:
        raise ValueError(
            f"reward {reward_name!r} compares completions with references, but references=None; "
            "pass references=[[ref, ...], ...] (one list per completion) or use a dataset with a "
            "'references' column"
        )
    if len(references) != n:
        raise ValueError(
            f"reward {reward_name!r} got {len(references)} reference lists for {n} completions; "
            "pass exactly one list of references per completion"
        )
    out = []
    for refs in references:
        if refs is None:
            refs = []
        elif isinstance(refs, str):
            refs = [refs]
        refs = [clean_text(r) for r in refs]
        out.append(refs or [""])
    return out


# ----------------------------------------------------------------------------- inflections

_VOWELS = set("aeiou")


@lru_cache(maxsize=65536)
def word_variants(word: str) -> frozenset[str]:
    """Candidate base forms of an English word, for inflection-tolerant matching.

    Two words are taken as forms of the same word when their variant sets
    intersect.  The variants are the word itself, its Porter stem (Porter,
    1980, "An algorithm for suffix stripping", via ``nltk.stem.PorterStemmer``)
    and the bases obtained by undoing the regular English inflections
    (plural/3rd person *-s/-es/-ies*, past *-ed/-ied*, progressive *-ing*,
    including a doubled final consonant and a dropped final *e*), each also
    Porter-stemmed.  Irregular forms (*ran*, *mice*) are not covered here;
    see :class:`textgym.rewards.KeywordCoverageReward`, which adds WordNet's
    exception lists.
    """
    w = word.lower()
    bases = {w}
    if len(w) > 3 and w.endswith("ies"):
        bases.add(w[:-3] + "y")
    if len(w) > 3 and w.endswith("es"):
        bases.add(w[:-2])
    if len(w) > 2 and w.endswith("s") and not w.endswith("ss"):
        bases.add(w[:-1])
    if len(w) > 3 and w.endswith("ied"):
        bases.add(w[:-3] + "y")
    for suffix in ("ed", "ing"):
        if len(w) > len(suffix) + 1 and w.endswith(suffix):
            stem = w[: -len(suffix)]
            bases.update({stem, stem + "e"})
            if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in _VOWELS:
                bases.add(stem[:-1])  # stopped -> stop, running -> run
            if suffix == "ing" and stem.endswith("y"):
                bases.add(stem[:-1] + "ie")  # lying -> lie
    stemmer = _porter()
    return frozenset(bases | {stemmer.stem(b) for b in bases})


@lru_cache(maxsize=1)
def _porter():
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()
