"""Counterfactual data augmentation (CDA) for SFT: add a copy of every row with its gendered words swapped.

Lu, Mardziel, Wu, Amancharla & Datta, "Gender Bias in Neural Natural Language
Processing" (2020) and Zmigrod et al. (ACL 2019) train on the original texts
plus counterfactual copies in which words naming a gender are exchanged
(*he* <-> *she*, *actor* <-> *actress*, ...), so that the data no longer ties
the rest of a sentence to one gender.  :func:`swap_gender` does the exchange
with the word list :data:`GENDER_PAIRS`; :func:`augment_rows` adds the copies
to ``(prompt, completion)`` SFT rows (``sft.data.counterfactual: true`` in a
run config).

Limits of a word list (documented, not fixed): ``her`` is both the object
(*him*) and the possessive (*his*) form; it becomes ``his`` (the more common
use in review text), and ``his`` / ``him`` both become ``her``.  Names
(*John*, *Mary*) are not swapped, nor are words outside the list.  Case is
kept (``He`` -> ``She``, ``HE`` -> ``SHE``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["GENDER_PAIRS", "swap_gender", "augment_rows"]

#: (male, female) word pairs; each word maps to the other (``her`` -> ``his``, see the module docstring).
GENDER_PAIRS: tuple[tuple[str, str], ...] = (
    ("he", "she"), ("him", "her"), ("his", "her"), ("himself", "herself"), ("man", "woman"), ("men", "women"),
    ("boy", "girl"), ("boys", "girls"), ("father", "mother"), ("fathers", "mothers"), ("son", "daughter"),
    ("sons", "daughters"), ("brother", "sister"), ("brothers", "sisters"), ("husband", "wife"),
    ("husbands", "wives"), ("king", "queen"), ("kings", "queens"), ("mr", "mrs"), ("actor", "actress"),
    ("actors", "actresses"), ("male", "female"), ("males", "females"), ("boyfriend", "girlfriend"),
    ("uncle", "aunt"), ("nephew", "niece"), ("gentleman", "lady"), ("gentlemen", "ladies"),
    ("grandfather", "grandmother"), ("dad", "mom"), ("prince", "princess"), ("hero", "heroine"),
    ("waiter", "waitress"), ("masculine", "feminine"), ("guy", "gal"), ("lord", "lady"),
)

# her -> his (not him): the possessive is the more common reading in review text; lady -> gentleman.
_FIRST_WINS = {"her": "his", "lady": "gentleman"}
_MAP: dict[str, str] = {}
for _male, _female in GENDER_PAIRS:
    _MAP.setdefault(_male, _female)
    _MAP.setdefault(_female, _male)
_MAP.update(_FIRST_WINS)
_WORD = re.compile(r"\b(" + "|".join(sorted(_MAP, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def _same_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def swap_gender(text: str) -> str:
    """``text`` with every word of :data:`GENDER_PAIRS` replaced by its counterpart (case kept).

    >>> swap_gender("He thanked his mother.")
    'She thanked her father.'
    """
    return _WORD.sub(lambda m: _same_case(_MAP[m.group(0).lower()], m.group(0)), text)


def augment_rows(rows: Sequence[Mapping[str, Any]], fields: Sequence[str] = ("prompt", "completion")
                 ) -> list[dict[str, Any]]:
    """The rows followed by their counterfactual copies (``fields`` swapped with :func:`swap_gender`).

    Rows the swap leaves unchanged (no gendered word) are not copied, so the
    augmentation only adds what it changes.  Each copy gets ``"counterfactual": True``.

    Returns:
        ``len(rows) + (number of rows with a gendered word)`` rows: originals first, in order.
    """
    out = [dict(r) for r in rows]
    for r in rows:
        copy = {**r, **{f: swap_gender(r[f]) for f in fields if isinstance(r.get(f), str)}}
        if any(copy.get(f) != r.get(f) for f in fields):
            copy["counterfactual"] = True
            out.append(copy)
    return out
