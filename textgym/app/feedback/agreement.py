"""How much the annotators agree: Krippendorff's alpha for ratings, pairwise agreement for rankings and votes.

* **Ratings**: the units are completions, the coders are annotators, the values are the
  1-7 ratings.  Krippendorff's alpha (``alpha = 1 - D_o / D_e``, observed over expected
  disagreement) is computed by the ``krippendorff`` package at the ``ordinal`` and
  ``interval`` levels; completions rated by only one annotator are not pairable and
  drop out.  1 = perfect agreement, 0 = chance level, < 0 = systematic disagreement.
* **Rankings**: for every item, every pair of annotators who both ranked it and every
  pair of its completions ``(x, y)``, the two annotators agree when they order ``x`` and
  ``y`` the same way (``<``, ``=`` or ``>``; a tie is its own answer).  Reported as the
  fraction of agreeing comparisons.
* **Votes** (A/B): the fraction of pairs of annotators on the same item who cast the same vote.

Undefined values (fewer than two pairable ratings, or no variation at all) are ``None``, never NaN.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["rating_alpha", "ranking_agreement", "vote_agreement", "agreement_report"]


def rating_alpha(judgments: Sequence[dict[str, Any]], level: str = "ordinal") -> float | None:
    """Krippendorff's alpha of the ratings in ``judgments`` (dicts as :meth:`Project.judgments` returns).

    Args:
        judgments: each with ``annotator`` and ``ratings`` ``{completion_id: 1..7}``.
        level: ``ordinal`` or ``interval``.

    Returns:
        alpha, or ``None`` when it is undefined (fewer than 2 pairable values, or a single value used).
    """
    import krippendorff

    coders = sorted({j["annotator"] for j in judgments if j["ratings"]})
    units = sorted({c for j in judgments for c in j["ratings"]})
    if len(coders) < 2 or not units:
        return None
    row, col = {a: i for i, a in enumerate(coders)}, {u: i for i, u in enumerate(units)}
    data = np.full((len(coders), len(units)), np.nan)
    for j in judgments:
        for c, s in j["ratings"].items():
            data[row[j["annotator"]], col[c]] = s
    pairable = (~np.isnan(data)).sum(0) >= 2
    values = data[:, pairable]
    values = values[~np.isnan(values)]
    if values.size < 2 or np.unique(values).size < 2:
        return None
    alpha = float(krippendorff.alpha(reliability_data=data[:, pairable], level_of_measurement=level,
                                     value_domain=list(range(1, 8))))
    return alpha if math.isfinite(alpha) else None


def _by_item(judgments: Sequence[dict[str, Any]], key: str) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    for j in judgments:
        if j.get(key):
            out[j["item_id"]].append(j[key])
    return out


def ranking_agreement(judgments: Sequence[dict[str, Any]]) -> tuple[float | None, int]:
    """Pairwise agreement of rankings: ``(fraction of agreeing comparisons, comparisons)``; ``None`` if none."""
    agree = total = 0
    for rankings in _by_item(judgments, "ranks").values():
        for a, b in itertools.combinations(rankings, 2):
            for x, y in itertools.combinations(sorted(a), 2):
                total += 1
                agree += (a[x] > a[y]) - (a[x] < a[y]) == (b[x] > b[y]) - (b[x] < b[y])
    return (agree / total if total else None), total


def vote_agreement(judgments: Sequence[dict[str, Any]]) -> tuple[float | None, int]:
    """Agreement of A/B votes: ``(fraction of annotator pairs on an item with the same vote, pairs)``."""
    agree = total = 0
    for votes in _by_item(judgments, "vote").values():
        for a, b in itertools.combinations(votes, 2):
            total += 1
            agree += a == b
    return (agree / total if total else None), total


def agreement_report(judgments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """All agreement numbers of a project's judgments (skips excluded) as one dict."""
    kept = [j for j in judgments if not j.get("skipped")]
    rank, n_rank = ranking_agreement(kept)
    vote, n_vote = vote_agreement(kept)
    return {
        "rating_alpha_ordinal": rating_alpha(kept, "ordinal"),
        "rating_alpha_interval": rating_alpha(kept, "interval"),
        "ranking_pairwise": rank,
        "ranking_comparisons": n_rank,
        "vote_agreement": vote,
        "vote_pairs": n_vote,
    }
