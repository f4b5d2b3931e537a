"""The split rules of the vendored data sets: which split a row belongs to, from its content alone.

A rule is a function ``rule(row) -> split name``.  The catalogue
(``envs/data/catalogue.json``) names each set's rule as a small spec that
:func:`make_rule` turns into that function; the rules themselves, and why
each set uses its key, are described in :mod:`textgym.envs.datasets`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["SALT", "Rule", "stable_bucket", "hh_opening_turn", "make_rule", "GENERIC_RULE", "GENERIC_SPLITS"]

#: Salt of :func:`stable_bucket`; changing it would reshuffle every hash split.
SALT = "textgym-v1"

Rule = Callable[[Mapping[str, Any]], str]


def stable_bucket(key: str, namespace: str = "", buckets: int = 1000) -> int:
    """Return a platform-independent bucket in ``range(buckets)`` for ``key``.

    ``int.from_bytes(sha256(SALT + "\\0" + namespace + ":" + key)[:8], "big")
    % buckets``. Unlike :func:`hash`, the result is the same on every
    platform, Python version and run.
    """
    data = f"{SALT}\0{namespace}:{key}".encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") % buckets


#: (split, upper bucket bound): buckets 0-799 train, 800-899 validation, 900-999 test
_STANDARD = (("train", 800), ("validation", 900), ("test", 1000))
_COMMONGEN_DEV = (("validation", 400), ("test", 1000))
_HH_BOUNDS = (("dialogue", 130), ("train", 830), ("validation", 915), ("test", 1000))
_OPENING = re.compile(r"\s*Human:\s*(.*?)(?:\n\nAssistant:|\Z)", re.S)


def _by_bucket(bucket: int, bounds: Sequence[tuple[str, int]]) -> str:
    for name, upper in bounds:
        if bucket < upper:
            return name
    raise AssertionError("bucket out of range")  # pragma: no cover


def _hash_rule(namespace: str, key: Callable[[Mapping[str, Any]], Any],
               bounds: Sequence[tuple[str, int]] = _STANDARD) -> Rule:
    def rule(row: Mapping[str, Any]) -> str:
        return _by_bucket(stable_bucket(str(key(row)), namespace), bounds)

    return rule


def _column(name: str) -> Callable[[Mapping[str, Any]], Any]:
    def get(row: Mapping[str, Any]) -> Any:
        value = row.get(name)
        if value is None:
            raise ValueError(f"row has no {name!r} value, needed by the split rule: {dict(row)!r:.200}")
        return value

    return get


def _test_only(row: Mapping[str, Any]) -> str:
    return "test"


def _movie_fold(row: Mapping[str, Any]) -> str:
    fold = int(_column("fold")(row))
    return {9: "validation", 10: "test"}.get(fold, "train")


def _mbpp_task(row: Mapping[str, Any]) -> str:
    task_id = int(_column("task_id")(row))
    if 1 <= task_id <= 10:
        return "prompt"
    if 11 <= task_id <= 510:
        return "test"
    if 511 <= task_id <= 600:
        return "validation"
    return "train"


def _commongen(row: Mapping[str, Any]) -> str:
    row_id = str(row.get("id") or "")
    key = str(_column("concept_set")(row))
    if row_id.startswith("commongen.test:"):
        return "train"
    if row_id.startswith("commongen.dev:"):
        return _by_bucket(stable_bucket(key, "commongen"), _COMMONGEN_DEV)
    return _by_bucket(stable_bucket(key, "commongen"), _STANDARD)


def hh_opening_turn(prompt: str) -> str:
    """Normalised first human turn of an HH-RLHF transcript (the group key)."""
    match = _OPENING.match(prompt)
    text = match.group(1) if match else prompt
    return " ".join(text.split()).lower()


def _hh(row: Mapping[str, Any]) -> str:
    key = hh_opening_turn(str(_column("prompt")(row)))
    return _by_bucket(stable_bucket(key, "hh-rlhf-harmless"), _HH_BOUNDS)


def _generic_key(row: Mapping[str, Any]) -> str:
    for column in ("id", "task_id", "question_id"):
        if row.get(column) is not None:
            return str(row[column])
    return json.dumps(dict(row), sort_keys=True, ensure_ascii=False, default=str)


#: The rule of your own data without ``like=``: 80/10/10 hash of ``id`` / ``task_id`` / ``question_id`` / the row.
GENERIC_RULE = _hash_rule("user", _generic_key)
GENERIC_SPLITS = ("train", "validation", "test")

#: rule kind (the catalogue's ``rule.kind``) -> the rule, for the kinds that take no arguments
_NAMED: dict[str, Rule] = {
    "test-only": _test_only,
    "movie-folds": _movie_fold,
    "mbpp-task-ids": _mbpp_task,
    "commongen": _commongen,
    "hh-opening-turn": _hh,
}


def make_rule(spec: Mapping[str, Any]) -> Rule:
    """The rule a catalogue entry names.

    ``{"kind": "hash", "namespace": N, "column": C}``: the standard 80/10/10
    :func:`stable_bucket` split of the row's column ``C`` in namespace ``N``;
    any other kind is one of the fixed rules (``test-only``, ``movie-folds``,
    ``mbpp-task-ids``, ``commongen``, ``hh-opening-turn``).

    Raises:
        ValueError: an unknown kind.
    """
    kind = spec.get("kind")
    if kind == "hash":
        return _hash_rule(str(spec["namespace"]), _column(str(spec["column"])))
    if kind not in _NAMED:
        raise ValueError(f"unknown split rule kind {kind!r}; valid: hash, {', '.join(_NAMED)}")
    return _NAMED[kind]
