"""What a judgment is, and its validation against the item it answers.

The JSON form (``POST /api/judgments``), with completion ids as the item showed them::

    {"item_id": 7, "idempotency_key": "a-fresh-random-string",
     "ratings": {"21": 6, "22": 2},            # 1-7 Likert per completion (any subset)
     "comments": {"22": "off topic"},          # optional, per rated completion
     "ranking": [[21], [22, 23]],              # best first; completions in one group are tied
     "vote": "left",                           # K = 2 only: left | right | tie | both_bad
     "edit": {"completion_id": 21, "text": "a better answer"},
     "flags": [23], "flag_reason": "unsafe",   # completions flagged as unsafe content
     "skip": false}

The HTML form sends the same content as flat fields (``rating_<id>``, ``comment_<id>``,
``rank_<id>``, ``vote``, ``edit_base``, ``edit_text``, ``flag_<id>``, ``flag_reason``,
``action=skip``); :func:`parse_form` turns them into the JSON form, and both go through
:func:`parse_judgment`, so the page and the API accept exactly the same judgments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Judgment", "JudgmentError", "parse_judgment", "parse_form", "VOTES", "RATING_MIN", "RATING_MAX"]

VOTES = ("left", "right", "tie", "both_bad")
RATING_MIN, RATING_MAX = 1, 7
MAX_COMMENT, MAX_EDIT, MAX_REASON = 2000, 20000, 500
_KEY = re.compile(r"[A-Za-z0-9_\-]{8,100}")


class JudgmentError(ValueError):
    """A judgment that does not fit its item; the message says which field and why (HTTP 422)."""


@dataclass
class Judgment:
    """One validated judgment (see the module docstring for the fields)."""

    item_id: int
    idempotency_key: str
    skip: bool = False
    ratings: dict[int, int] = field(default_factory=dict)
    comments: dict[int, str] = field(default_factory=dict)
    ranking: list[list[int]] = field(default_factory=list)
    vote: str | None = None
    edit: tuple[int, str] | None = None
    flags: list[int] = field(default_factory=list)
    flag_reason: str | None = None

    def ranks(self) -> dict[int, int]:
        """Completion id -> rank (1 = best; tied completions share a rank; dense)."""
        return {c: r for r, group in enumerate(self.ranking, 1) for c in group}


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise JudgmentError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
        return int(value)
    raise JudgmentError(f"{what}: expected an integer, got {value!r}")


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise JudgmentError(f"{what}: expected a string, got {type(value).__name__}")
    if len(value) > limit:
        raise JudgmentError(f"{what}: at most {limit} characters, got {len(value)}")
    return value


def parse_judgment(data: Any, item: Any) -> Judgment:
    """Validate ``data`` (the JSON form) against ``item`` (a :class:`textgym.app.feedback.db.Item`).

    Raises:
        JudgmentError: an unknown key, a rating outside 1-7, a completion id the item does not show,
            a ranking that is not a permutation of the shown ids, a vote on K != 2, an empty edit or
            one equal to its original, a skip with content, or no content at all.
    """
    if not isinstance(data, Mapping):
        raise JudgmentError("the judgment must be a JSON object")
    allowed = {"item_id", "idempotency_key", "ratings", "comments", "ranking", "vote", "edit", "flags",
               "flag_reason", "skip"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise JudgmentError(f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(allowed))}")
    if _int(data.get("item_id"), "item_id") != item.id:
        raise JudgmentError(f"item_id {data.get('item_id')!r} does not match the item {item.id}")
    key = data.get("idempotency_key")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise JudgmentError("idempotency_key: 8-100 characters of letters, digits, '_' or '-', new for each "
                            "submission (the same key again means a retry of the same submission)")
    shown = item.completion_ids
    texts = {c["id"]: c["text"] for c in item.completions}

    def cid(value: Any, what: str) -> int:
        c = _int(value, what)
        if c not in texts:
            raise JudgmentError(f"{what}: completion {c} is not one of this item's completions {shown}")
        return c

    j = Judgment(item_id=item.id, idempotency_key=key, skip=bool(data.get("skip", False)))
    ratings = data.get("ratings") or {}
    if not isinstance(ratings, Mapping):
        raise JudgmentError("ratings: expected an object {completion_id: score}")
    for k, v in ratings.items():
        c = cid(k, "ratings")
        score = _int(v, f"rating of completion {c}")
        if not RATING_MIN <= score <= RATING_MAX:
            raise JudgmentError(f"rating of completion {c}: must be {RATING_MIN}-{RATING_MAX}, got {score}")
        j.ratings[c] = score
    comments = data.get("comments") or {}
    if not isinstance(comments, Mapping):
        raise JudgmentError("comments: expected an object {completion_id: text}")
    for k, v in comments.items():
        c = cid(k, "comments")
        text = _text(v, f"comment on completion {c}", MAX_COMMENT).strip()
        if text:
            if c not in j.ratings:
                raise JudgmentError(f"comment on completion {c}: comments go with a rating; rate it too")
            j.comments[c] = text
    ranking = data.get("ranking") or []
    if not isinstance(ranking, list):
        raise JudgmentError("ranking: expected a list of groups of completion ids, best first")
    if ranking:
        groups = [[cid(x, "ranking") for x in (g if isinstance(g, list) else [g])] for g in ranking]
        flat = [c for g in groups for c in g]
        if any(not g for g in groups) or sorted(flat) != sorted(shown):
            raise JudgmentError(f"ranking: must order each shown completion exactly once ({sorted(shown)}), "
                                f"got {sorted(flat)}")
        j.ranking = groups
    vote = data.get("vote")
    if vote is not None:
        if vote not in VOTES:
            raise JudgmentError(f"vote: one of {', '.join(VOTES)}, got {vote!r}")
        if len(shown) != 2:
            raise JudgmentError(f"vote: an A/B vote needs exactly 2 completions; this item has {len(shown)} "
                                "(rank them instead)")
        j.vote = vote
    edit = data.get("edit")
    if edit is not None:
        if not isinstance(edit, Mapping) or set(edit) != {"completion_id", "text"}:
            raise JudgmentError("edit: expected {\"completion_id\": id, \"text\": \"...\"}")
        base = cid(edit["completion_id"], "edit.completion_id")
        text = _text(edit["text"], "edit.text", MAX_EDIT).strip()
        if not text:
            raise JudgmentError("edit.text: empty; write the improved answer, or leave the edit out")
        if text == texts[base].strip():
            raise JudgmentError("edit.text: unchanged from the completion; change it, or leave the edit out")
        j.edit = (base, text)
    flags = data.get("flags") or []
    if not isinstance(flags, list):
        raise JudgmentError("flags: expected a list of completion ids")
    j.flags = sorted({cid(x, "flags") for x in flags})
    reason = data.get("flag_reason")
    if reason is not None and _text(reason, "flag_reason", MAX_REASON).strip():
        if not j.flags:
            raise JudgmentError("flag_reason: given without a flagged completion")
        j.flag_reason = reason.strip()
    has_content = bool(j.ratings or j.ranking or j.vote or j.edit or j.flags)
    if j.skip and has_content:
        raise JudgmentError("skip: a skipped item carries no ratings, ranking, vote, edit or flags")
    if not j.skip and not has_content:
        raise JudgmentError("nothing to save: rate, rank, vote, edit or flag the completions - or skip the item")
    return j


def parse_form(form: Mapping[str, Any], item: Any) -> Judgment:
    """The HTML form's flat fields -> :func:`parse_judgment` (same rules, same messages).

    ``rank_<id>`` fields are all empty (no ranking) or all set to ``1..K`` (equal numbers are ties).
    """
    data: dict[str, Any] = {"item_id": form.get("item_id"), "idempotency_key": form.get("idempotency_key")}
    if form.get("action") == "skip":
        data["skip"] = True
        return parse_judgment(data, item)
    ratings, comments, ranks, flags = {}, {}, {}, []
    for c in item.completion_ids:
        if (v := str(form.get(f"rating_{c}", "")).strip()):
            ratings[c] = v
        if (v := str(form.get(f"comment_{c}", "")).strip()):
            comments[c] = v
        if (v := str(form.get(f"rank_{c}", "")).strip()):
            ranks[c] = _int(v, f"rank of completion {c}")
        if form.get(f"flag_{c}"):
            flags.append(c)
    data.update(ratings=ratings, comments=comments, flags=flags)
    if ranks:
        k = len(item.completion_ids)
        if len(ranks) != k:
            raise JudgmentError(f"ranking: give every completion a rank (1-{k}), or none")
        if any(not 1 <= r <= k for r in ranks.values()):
            raise JudgmentError(f"ranking: ranks go from 1 (best) to {k}")
        data["ranking"] = [[c for c in ranks if ranks[c] == r] for r in sorted(set(ranks.values()))]
    if form.get("vote"):
        data["vote"] = form["vote"]
    if str(form.get("edit_text", "")).strip():
        data["edit"] = {"completion_id": form.get("edit_base"), "text": form["edit_text"]}
    if str(form.get("flag_reason", "")).strip():
        data["flag_reason"] = form["flag_reason"]
    return parse_judgment(data, item)
