"""Rewards that check a completion against a task's answer: per-character match, target token count.

They score the synthetic tasks of :mod:`textgym.envs.synthetic` (``Copy``,
``Reverse``, ``Sort``, ``Addition``: ``char-match``; ``TokenCount``:
``token-count``) and any task whose answers are short strings or counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from textgym.reward_api import RewardFunction

__all__ = ["CharMatchReward", "TokenCountReward"]


class CharMatchReward(RewardFunction):
    """Per-character credit against the first reference: 1.0 for the exact answer.

    ``score = #{i : c[i] == a[i]} / max(len(a), len(c))`` for completion ``c``
    and answer ``a`` (positions compared left-aligned); an empty completion of
    an empty answer scores 1.0.

    Args:
        dense: pay the score of each prefix as per-step increments (they sum
            to the final score; a wrong or surplus character earns 0 or a
            negative increment).

    Returns (when called): ``(B,)`` float32 in ``[0, 1]``.

    Raises:
        ValueError (when called): no references.
    """

    name = "char-match"

    def __init__(self, dense: bool = False):
        self.dense = bool(dense)

    def score(self, prompts, completions, *, references=None, **columns):
        if references is None:
            raise ValueError("char-match needs references (the answers)")
        out = np.empty(len(completions), np.float32)
        for i, (c, refs) in enumerate(zip(completions, references)):
            a = refs[0] if refs else ""
            hits = sum(x == y for x, y in zip(c, a))
            out[i] = hits / max(len(a), len(c)) if (a or c) else 1.0
        return out


class TokenCountReward(RewardFunction):
    """``2 ** -|n - k|``: 1.0 when the completion has exactly ``k`` tokens (column ``count``).

    Args:
        tokenizer: counts tokens by re-encoding the completion without special
            tokens; ``None`` counts characters (the same for a character tokenizer).
        column: the column with each sample's target count ``k``.

    Returns (when called): ``(B,)`` float32 in ``(0, 1]``.

    Raises:
        ValueError (when called): the column is missing.
    """

    name = "token-count"

    def __init__(self, tokenizer: Any = None, column: str = "count"):
        self.tokenizer = tokenizer
        self.column = column

    def _count(self, text: str) -> int:
        if self.tokenizer is None or not text:
            return len(text)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score(self, prompts, completions, *, references=None, **columns):
        if self.column not in columns:
            raise ValueError(f"token-count needs a {self.column!r} column; the batch has {sorted(columns)}")
        n = np.array([self._count(c) for c in completions], np.float64)
        k = np.asarray(columns[self.column], np.float64)
        return np.power(2.0, -np.abs(n - k)).astype(np.float32)
