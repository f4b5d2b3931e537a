"""The bias probes' results and statistics: estimates with bootstrap CIs, per-group means, largest gaps.

Shared by :mod:`~textgym.agents.common.crows_pairs` (:class:`CrowsPairsResult`,
:func:`stereotype_score`) and :mod:`~textgym.agents.common.bold` (:class:`BoldResult`,
:func:`group_stats`, :func:`largest_gap`); see :mod:`textgym.agents.common.bias` for the probes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from textgym.agents.common.bootstrap import bootstrap_ci, bootstrap_diff_ci

__all__ = ["Estimate", "GroupStat", "Gap", "CrowsPairsResult", "BoldResult", "stereotype_score", "group_stats",
           "largest_gap"]


@dataclass
class Estimate:
    """A mean with its percentile-bootstrap 95% CI over ``n`` items (``lo``/``hi`` ``None`` when ``n < 2``)."""

    value: float
    lo: float | None
    hi: float | None
    n: int

    def text(self, digits: int = 1) -> str:
        """``"57.3 [52.1, 62.0] (n=262)"``; without a CI: ``"57.3 (n=1, no CI)"``."""
        if self.lo is None or self.hi is None:
            return f"{self.value:.{digits}f} (n={self.n}, no CI)"
        return f"{self.value:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}] (n={self.n})"


@dataclass
class GroupStat:
    """One group's sentiment: ``mean`` (``None`` for an empty group), CI, ``n`` and a ``note`` when it is short."""

    group: str
    n: int
    mean: float | None
    lo: float | None
    hi: float | None
    note: str = ""


@dataclass
class Gap:
    """The largest gap between two groups' means: ``high`` minus ``low``, with the bootstrap CI of the difference.

    ``gap`` is ``None`` (and ``note`` says why) when fewer than two groups have two or more values.
    """

    high: str | None
    low: str | None
    gap: float | None
    lo: float | None
    hi: float | None
    note: str = ""


@dataclass
class CrowsPairsResult:
    """What :func:`crows_pairs_score` returns (scores in percent; 50 = no preference)."""

    overall: Estimate
    by_type: dict[str, Estimate]
    method: str
    outcomes: list[float] = field(repr=False, default_factory=list)  # per pair: 1 more wins, 0.5 tie, 0 less

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "overall": asdict(self.overall),
                "by_type": {k: asdict(v) for k, v in self.by_type.items()}}


@dataclass
class BoldResult:
    """What :func:`bold_bias` returns: ``groups[scorer][domain]`` and ``gaps[scorer][domain]``, plus the texts."""

    groups: dict[str, dict[str, list[GroupStat]]]
    gaps: dict[str, dict[str, Gap]]
    samples: list[dict[str, Any]] = field(repr=False, default_factory=list)  # prompt, continuation, scores
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings,
                "groups": {s: {d: [asdict(g) for g in gs] for d, gs in v.items()} for s, v in self.groups.items()},
                "gaps": {s: {d: asdict(g) for d, g in v.items()} for s, v in self.gaps.items()}}


# ---------------------------------------------------------------------------------------------- statistics
def _estimate(values: Sequence[float], scale: float = 1.0, seed: int = 0) -> Estimate:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no values to estimate from")
    if x.size < 2:
        return Estimate(float(x.mean() * scale), None, None, int(x.size))
    lo, hi = bootstrap_ci(x, seed=seed)
    return Estimate(float(x.mean() * scale), lo * scale, hi * scale, int(x.size))


def stereotype_score(outcomes: Sequence[float], bias_types: Sequence[str], seed: int = 0
                     ) -> tuple[Estimate, dict[str, Estimate]]:
    """Stereotype scores (percent) from per-pair outcomes: overall and per bias type, with bootstrap CIs.

    Args:
        outcomes: per pair 1.0 (``sent_more`` more likely), 0.5 (tie) or 0.0.
        bias_types: the pair's bias type, same length.
        seed: bootstrap seed.

    Returns:
        ``(overall, {bias_type: Estimate})``, types sorted by name; the ``n`` add up to the number of pairs.

    Raises:
        ValueError: no pairs, or lengths differ.
    """
    if len(outcomes) != len(bias_types):
        raise ValueError(f"{len(outcomes)} outcomes but {len(bias_types)} bias types")
    if not len(outcomes):
        raise ValueError("no CrowS-Pairs pairs to score; pass at least one pair")
    by: dict[str, list[float]] = {}
    for o, t in zip(outcomes, bias_types):
        by.setdefault(str(t), []).append(float(o))
    return _estimate(outcomes, 100.0, seed), {t: _estimate(v, 100.0, seed) for t, v in sorted(by.items())}


def group_stats(scores: Mapping[str, Sequence[float]], seed: int = 0) -> list[GroupStat]:
    """Mean and bootstrap 95% CI of each group's scores, groups in the order given.

    An empty group gets ``mean=None`` and the note ``"no samples"``; a group of one
    value gets its mean, no CI and the note ``"one sample: no CI"``.  Never NaN.

    Raises:
        ValueError: a non-finite score (from :func:`bootstrap_ci`).
    """
    out = []
    for name, values in scores.items():
        x = np.asarray(list(values), dtype=np.float64)
        if x.size == 0:
            out.append(GroupStat(str(name), 0, None, None, None, "no samples"))
        elif x.size == 1:
            if not math.isfinite(x[0]):
                raise ValueError(f"group {name!r}: non-finite score {x[0]}")
            out.append(GroupStat(str(name), 1, float(x[0]), None, None, "one sample: no CI"))
        else:
            lo, hi = bootstrap_ci(x, seed=seed)
            out.append(GroupStat(str(name), int(x.size), float(x.mean()), lo, hi))
    return out


def largest_gap(scores: Mapping[str, Sequence[float]], seed: int = 0) -> Gap:
    """The two groups whose means differ most, and the bootstrap 95% CI of ``mean(high) - mean(low)``.

    Only groups with two or more values take part (a one-value group has no
    spread to resample).  The CI resamples each of the two groups
    independently (:func:`~textgym.agents.common.bootstrap.bootstrap_diff_ci`); it is the CI
    of *that* pair's difference - picking the most distant pair after looking
    makes the gap biased upward, so read a CI that includes 0 as "no
    resolved gap".

    Returns:
        A :class:`Gap`; ``gap=None`` and a note when fewer than two groups have two values.
    """
    usable = {str(k): np.asarray(list(v), dtype=np.float64) for k, v in scores.items() if len(v) >= 2}
    skipped = sorted(str(k) for k, v in scores.items() if len(v) < 2)
    note = f"left out (fewer than 2 samples): {', '.join(skipped)}" if skipped else ""
    if len(usable) < 2:
        why = f"fewer than two groups with 2+ samples ({len(usable)} of {len(scores)})"
        return Gap(None, None, None, None, None, why + (f"; {note}" if note else ""))
    means = {k: float(v.mean()) for k, v in usable.items()}
    high = max(means, key=lambda k: (means[k], k))
    low = min(means, key=lambda k: (means[k], k))
    lo, hi = bootstrap_diff_ci(usable[high], usable[low], seed=seed)
    return Gap(high, low, means[high] - means[low], lo, hi, note)
