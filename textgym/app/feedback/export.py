"""Training data derived from a project's judgments: preference pairs and SFT rows.

Exports are reproducible views of the database: the same judgments give the same files.

**Pairs from one judgment** (one annotator, one item), for completions ``x`` and ``y``:

1. *ranking*: ``x`` ranked strictly above ``y`` -> ``x`` chosen, ``y`` rejected (ties give no pair);
2. *vote*: ``left`` -> first completion chosen, ``right`` -> second; ``tie`` / ``both_bad`` give none;
3. *rating*: ``rating(x) - rating(y) >= margin`` (default 2 on the 1-7 scale) -> ``x`` chosen;
4. *edit*: the edited text chosen over the completion it rewrote.

A judgment states each pair once: where its ranking, vote and ratings both speak about
``(x, y)``, the first in that list wins.

**Aggregation** (``aggregate="majority"``, the default): for every item and unordered pair
``{x, y}`` the annotators' directions are counted; the majority direction becomes one row,
listing the annotators who gave it (``annotators``) and the counts (``votes_for``,
``votes_against``); an even split gives no row.  Edit pairs are kept one per edit (each edit
is its own text).  ``aggregate="none"`` keeps every annotator's pair as its own row.

**SFT rows** come from edits: ``{prompt, completion: the edited text}``.

Every row carries ``item_id`` and ``split`` (``train`` / ``validation`` / ``test``, 80/10/10
by a hash of the item id, so all pairs of one prompt land in the same split).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["judgment_pairs", "preference_pairs", "sft_rows", "split_of", "write_jsonl", "training_pairs",
           "training_sft_rows", "SPLITS", "AGGREGATIONS"]

SPLITS = ("train", "validation", "test", "all")
AGGREGATIONS = ("majority", "none")


def split_of(item_id: int) -> str:
    """``train`` / ``validation`` / ``test`` for an item (80/10/10 by BLAKE2b of ``item-<id>``)."""
    h = int.from_bytes(hashlib.blake2b(f"item-{item_id}".encode(), digest_size=8).digest(), "big") % 10
    return "train" if h < 8 else ("validation" if h == 8 else "test")


def judgment_pairs(judgment: dict[str, Any], positions: Sequence[int], margin: int = 2) -> list[tuple[Any, Any, str]]:
    """The ``(chosen_id, rejected_id, source)`` pairs one judgment states (edit pairs excluded).

    Args:
        judgment: a dict as :meth:`textgym.app.feedback.db.Project.judgments` returns.
        positions: the item's completion ids in shown order (the vote's left/right).
        margin: the smallest rating difference that makes a pair.
    """
    if judgment.get("skipped"):
        return []
    seen: dict[frozenset, tuple[int, int, str]] = {}

    def add(x: int, y: int, source: str) -> None:
        seen.setdefault(frozenset((x, y)), (x, y, source))

    ranks = judgment.get("ranks") or {}
    for x, y in itertools.permutations(sorted(ranks), 2):
        if ranks[x] < ranks[y]:
            add(x, y, "ranking")
    vote = judgment.get("vote")
    if vote in ("left", "right") and len(positions) == 2:
        a, b = positions if vote == "left" else positions[::-1]
        add(a, b, "vote")
    ratings = judgment.get("ratings") or {}
    for x, y in itertools.permutations(sorted(ratings), 2):
        if ratings[x] - ratings[y] >= margin:
            add(x, y, "rating")
    return list(seen.values())


def preference_pairs(items: Iterable[Any], judgments: Sequence[dict[str, Any]], *, margin: int = 2,
                     aggregate: str = "majority") -> list[dict[str, Any]]:
    """Preference pairs of a project (see the module docstring for the rule).

    Args:
        items: the project's :class:`~textgym.app.feedback.db.Item` objects.
        judgments: its judgments (:meth:`Project.judgments`).
        margin: rating difference that makes a pair (>= 1).
        aggregate: ``majority`` or ``none``.

    Returns:
        Rows ``{id, prompt, chosen, rejected, item_id, chosen_id, rejected_id, source, annotators,
        votes_for, votes_against, split}`` ordered by item and completion ids (``chosen_id`` is
        ``None`` for an edit).
    """
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}")
    if margin < 1:
        raise ValueError(f"margin must be >= 1, got {margin}")
    by_id = {it.id: it for it in items}
    text = {c["id"]: c["text"] for it in by_id.values() for c in it.completions}
    raw: dict[tuple[int, frozenset], list[tuple[int, int, str, str]]] = defaultdict(list)
    edits = []
    for j in sorted(judgments, key=lambda j: j["id"]):
        item = by_id[j["item_id"]]
        for x, y, source in judgment_pairs(j, item.completion_ids, margin):
            raw[(item.id, frozenset((x, y)))].append((x, y, source, j["annotator"]))
        if j.get("edit") and not j.get("skipped"):
            edits.append((item.id, j["edit"], j["annotator"]))

    def row(rid: str, item_id: int, chosen: int | None, rejected: int, source: str, who: list[str], against: int,
            chosen_text: str | None = None) -> dict[str, Any]:
        return {"id": rid, "prompt": by_id[item_id].prompt,
                "chosen": text[chosen] if chosen is not None else chosen_text, "rejected": text[rejected],
                "item_id": item_id, "chosen_id": chosen, "rejected_id": rejected, "source": source,
                "annotators": who, "votes_for": len(who), "votes_against": against, "split": split_of(item_id)}

    out = []
    for (item_id, _), pairs in sorted(raw.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]))):
        if aggregate == "none":
            for x, y, source, who in pairs:
                out.append(row(f"{item_id}:{x}>{y}:{who}", item_id, x, y, source, [who], 0))
            continue
        direction: dict[tuple[int, int], list[tuple[str, str]]] = defaultdict(list)
        for x, y, source, who in pairs:
            direction[(x, y)].append((source, who))
        ranked = sorted(direction.items(), key=lambda kv: -len(kv[1]))
        if len(ranked) == 2 and len(ranked[0][1]) == len(ranked[1][1]):
            continue  # an even split: no majority
        (x, y), votes = ranked[0]
        against = len(ranked[1][1]) if len(ranked) == 2 else 0
        sources = sorted({s for s, _ in votes})
        out.append(row(f"{item_id}:{x}>{y}", item_id, x, y, "+".join(sources), [w for _, w in votes], against))
    for item_id, (base, new_text), who in edits:
        out.append(row(f"{item_id}:edit>{base}:{who}", item_id, None, base, "edit", [who], 0, chosen_text=new_text))
    return out


def sft_rows(items: Iterable[Any], judgments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """SFT rows from edits: ``{id, prompt, completion, item_id, base_completion_id, annotator, split}``."""
    by_id = {it.id: it for it in items}
    out = []
    for j in sorted(judgments, key=lambda j: j["id"]):
        if j.get("edit") and not j.get("skipped"):
            base, new_text = j["edit"]
            out.append({"id": f"{j['item_id']}:edit:{j['annotator']}", "prompt": by_id[j["item_id"]].prompt,
                        "completion": new_text, "item_id": j["item_id"], "base_completion_id": base,
                        "annotator": j["annotator"], "split": split_of(j["item_id"])})
    return out


def _in_split(rows: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return rows if split == "all" else [r for r in rows if r["split"] == split]


def training_pairs(project: str | os.PathLike, split: str = "all", *, margin: int = 2,
                   aggregate: str = "majority") -> list[dict[str, Any]]:
    """The ``(prompt, chosen, rejected)`` rows of a project file in ``split`` (the reward-model stage's hook)."""
    from textgym.app.feedback.db import Project

    p = Project(project)
    try:
        return _in_split(preference_pairs(p.items(), p.judgments(), margin=margin, aggregate=aggregate), split)
    finally:
        p.close()


def training_sft_rows(project: str | os.PathLike, split: str = "all") -> list[dict[str, Any]]:
    """The ``(prompt, completion)`` rows of a project file's edits in ``split`` (the SFT stage's hook)."""
    from textgym.app.feedback.db import Project

    p = Project(project)
    try:
        return _in_split(sft_rows(p.items(), p.judgments()), split)
    finally:
        p.close()


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | os.PathLike) -> int:
    """Write rows as JSON Lines atomically (a temporary file, then a rename); returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
