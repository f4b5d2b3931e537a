"""Real data sets shipped with textgym, with fixed, reproducible splits.

Every set listed in :data:`DATASETS` is vendored inside the package (under
``textgym/envs/data/<folder>/``) as gzip-compressed JSON Lines, next to its
``SOURCE.json`` (provenance: repository, commit, license evidence, subset
rule), the upstream license/readme files (``original/``) and a ``README.md``.
Nothing is downloaded: :func:`load` reads the local file and builds an
in-memory :class:`datasets.Dataset` with :meth:`datasets.Dataset.from_dict`,
so it works with ``HF_DATASETS_OFFLINE=1``, a fresh ``HOME`` and a read-only
install, and it never writes a cache file.

Quick use::

    from textgym.envs import datasets as tds
    train = tds.load("rt-polarity", split="train")      # datasets.Dataset
    pairs = tds.load("hh-rlhf-harmless", split="validation")
    chats = tds.load("hh-rlhf-harmless", split="dialogue")
    mine = tds.load("my_reviews.jsonl", split="test")     # your own file
    mine = tds.load("my_reviews.jsonl", split="test", like="rt-polarity")

Sets (name: rows; splits; license)
----------------------------------
==================  =====  =====================================================  =====================
name                rows   splits (rows)                                          license
==================  =====  =====================================================  =====================
movie-reviews       2000   train 1600 / validation 200 / test 200                 CC BY 4.0
rt-polarity         10662  train 8567 / validation 1035 / test 1060               CC BY 4.0
imdb-sentences      1000   test 1000                                              CC BY 4.0
cnn-dailymail       200    train 162 / validation 18 / test 20                    unclear, research use
xsum                200    train 151 / validation 26 / test 23                    unclear, research use
tatoeba-en-de       5000   train 4008 / validation 513 / test 479                 CC BY 2.0 FR
tatoeba-en-fr       5000   train 4012 / validation 491 / test 497                 CC BY 2.0 FR
flores200           1012   test 1012                                              CC BY-SA 4.0
ntrex128            1997   test 1997                                              CC BY-SA 4.0
xquad-en            1190   train 962 / validation 102 / test 126                  CC BY-SA 4.0
self-instruct-seed  175    train 139 / validation 17 / test 19                    Apache-2.0
self-instruct-eval  252    test 252                                               Apache-2.0
mt-bench            80     test 80                                                Apache-2.0
hh-rlhf-harmless    2312   dialogue 302 / train 1611 / validation 201 / test 198  MIT
humaneval           164    test 164                                               MIT
mbpp                974    prompt 10 / train 374 / validation 90 / test 500       CC BY 4.0
commongen           2490   train 1497 / validation 418 / test 575                 MIT
crows-pairs         1508   test 1508                                              CC BY-SA 4.0
bold-prompts        2091   test 2091                                              CC BY-SA 4.0
==================  =====  =====================================================  =====================

(The authoritative counts are ``DATASETS[name]["splits"]``; the test-suite
checks them.)  Every set also has the split ``"all"``: every row, in file
order.  The catalogue itself is data, ``envs/data/catalogue.json``
(read by :mod:`textgym.envs.dataset_catalogue`); the split rules below are
:mod:`textgym.envs.dataset_splits`.

Split rules
-----------
Splits are disjoint, their union is ``"all"``, rows keep file order inside a
split, and the assignment depends only on the row's content, never on the
platform, Python's ``hash()`` seed, or the other rows. Where a set has
official splits they are used; otherwise a row goes to a split by
:func:`stable_bucket` -- the first 8 bytes of ``sha256("textgym-v1" + NUL +
<set name> + ":" + <key>)`` as a big-endian integer, modulo 1000 -- with
buckets 0-799 train, 800-899 validation, 900-999 test. The key is chosen so
that near-duplicates cannot straddle splits:

* ``movie-reviews``: Pang & Lee's 10 cross-validation folds (``fold``):
  1-8 train, 9 validation, 10 test.
* ``rt-polarity``, ``cnn-dailymail``, ``xsum``, ``self-instruct-seed``: hash
  of ``id``.
* ``tatoeba-en-de`` / ``tatoeba-en-fr``: hash of the English sentence
  (``en``), so a repeated source sentence stays in one split.
* ``xquad-en``: hash of the paragraph (``context``): all questions about one
  paragraph stay together.
* ``imdb-sentences``, ``flores200``, ``ntrex128``, ``self-instruct-eval``,
  ``mt-bench``, ``humaneval``, ``crows-pairs``, ``bold-prompts``: evaluation
  sets, split ``"test"`` only.
  (The Self-Instruct authors ask that their user-oriented set is never used
  for training.)
* ``mbpp``: the official task_id ranges: 1-10 ``"prompt"`` (few-shot
  examples), 11-510 test, 511-600 validation, 601-974 (and any other id)
  train.
* ``commongen``: only CommonGen's dev and test files are public with
  references. Upstream *test* rows (ids ``commongen.test:*``, whose
  references were later withdrawn from the leaderboard) form ``"train"``;
  upstream *dev* rows (``commongen.dev:*``) are divided by hash of
  ``concept_set``: buckets 0-399 validation, 400-999 test. Rows with other
  ids (your own data with ``like="commongen"``) use the default 80/10/10 hash
  of ``concept_set``.
* ``hh-rlhf-harmless``: rows are grouped by the conversation's *opening human
  turn* (whitespace-collapsed, lower-cased); identical prompts therefore
  always share a group, and so do different conversations that start with the
  same request. Group hash buckets 0-129 form ``"dialogue"`` -- a held-out
  block of conversations for a dialogue environment whose prompts (and
  opening turns) never occur in the reward-model pairs -- and 130-829 train,
  830-914 validation, 915-999 test.

Your own data
-------------
``load(path_or_dataset, split=...)`` also takes a ``.jsonl`` / ``.jsonl.gz``
path or a :class:`datasets.Dataset`. Without ``like=``, data with a ``split``
column is split by it (every row needs a value; the splits are the values it
holds); otherwise the generic 80/10/10 hash rule keys on ``id`` (else
``task_id``, else ``question_id``, else the whole row as canonical JSON).
Column types are inferred. With
``like="<name>"`` the rows must have that set's columns, get its types, and
are split with its rule (a row equal to a vendored one lands in the same
split).

Licenses
--------
Each set keeps its own license (``DATASETS[name]["license"]``); the textgym
code license does not apply to the data. CC BY-SA sets (FLORES-200,
NTREX-128, XQuAD, CrowS-Pairs, BOLD) must stay under CC BY-SA when
redistributed; CrowS-Pairs' authors ask that it is used for evaluation only. The two
summarization subsets have no clear license (news articles copyright CNN /
Daily Mail / BBC): research use only. **hh-rlhf-harmless contains offensive
and upsetting red-team text** (see its README); **crows-pairs states
offensive stereotypes by design**.
"""

from __future__ import annotations

import difflib
import gzip
import json
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import datasets as hf_datasets

# The catalogue and the split rules live in their own modules; their public names are re-exported here.
from textgym.envs.dataset_catalogue import (
    _REGISTRY,
    DATA_DIR,
    DATASETS,
    UnknownDatasetError,
    available_splits,
    features,
    resolve_name,
)
from textgym.envs.dataset_splits import GENERIC_RULE as _GENERIC_RULE
from textgym.envs.dataset_splits import GENERIC_SPLITS as _GENERIC_SPLITS
from textgym.envs.dataset_splits import SALT, Rule, stable_bucket
from textgym.envs.dataset_splits import hh_opening_turn  # noqa: F401  (re-exported: the HH group key)

__all__ = [
    "DATASETS",
    "DATA_DIR",
    "SALT",
    "UnknownDatasetError",
    "available_splits",
    "features",
    "load",
    "load_jsonl",
    "read_jsonl",
    "resolve_name",
    "split_of",
    "stable_bucket",
]

PathOrData = Union[str, "os.PathLike[str]", hf_datasets.Dataset]


# --------------------------------------------------------------------------
# reading


def read_jsonl(path: Union[str, "os.PathLike[str]"]) -> list[dict[str, Any]]:
    """Rows (dicts) of a JSON Lines file; ``.gz`` files are decompressed.

    Blank lines are skipped; a line that is not a JSON object raises
    ``ValueError`` naming the file and line number.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [_json_object(line, f"{path}:{number}") for number, line in enumerate(handle, 1) if line.strip()]


def _json_object(line: str, where: str) -> dict[str, Any]:
    """One JSON Lines row; ``where`` (``file:line``) names it in the error."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row


@lru_cache(maxsize=None)
def _vendored_rows(name: str) -> tuple[dict[str, Any], ...]:
    spec = _REGISTRY[name]
    rows: list[dict[str, Any]] = []
    for file in spec["files"]:
        path = DATA_DIR / spec["folder"] / file
        if not path.is_file():
            raise FileNotFoundError(f"vendored data file missing: {path} (broken install?)")
        rows.extend(read_jsonl(path))
    return tuple(rows)


def split_of(name: str, row: Mapping[str, Any]) -> str:
    """The split a row belongs to under the rule of set ``name``."""
    return _REGISTRY[resolve_name(name)]["rule"](row)


def _check_split(split: str, valid: Sequence[str], what: str) -> None:
    if split not in valid and split != "all":
        choices = [*valid, "all"]
        close = difflib.get_close_matches(str(split), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown split {split!r} for {what}.{hint} Valid splits: {', '.join(choices)}")


def _build(rows: Sequence[Mapping[str, Any]], feats: hf_datasets.Features | None) -> hf_datasets.Dataset:
    if feats is not None:
        columns = {key: [row.get(key) for row in rows] for key in feats}
        return hf_datasets.Dataset.from_dict(columns, features=feats)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return hf_datasets.Dataset.from_dict({key: [row.get(key) for row in rows] for key in names})


def _check_columns(have: Sequence[str], like: str) -> None:
    missing = [col for col in _REGISTRY[like]["fields"] if col not in have]
    if missing:
        raise ValueError(f"data given with like={like!r} lacks column(s) {missing}; "
                         f"{like!r} has {list(_REGISTRY[like]['fields'])}")


def _select_rows(rows: Sequence[Mapping[str, Any]], rule: Rule, split: str) -> list[Mapping[str, Any]]:
    if split == "all":
        return list(rows)
    return [row for row in rows if rule(row) == split]


def _looks_like_path(value: Any) -> bool:
    if isinstance(value, os.PathLike):
        return True
    text = str(value)
    return (text.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz"))
            or os.sep in text or "/" in text or Path(text).is_file())


def load_jsonl(path: Union[str, "os.PathLike[str]"], split: str = "all", *,
               like: str | None = None) -> hf_datasets.Dataset:
    """A user's JSON Lines file (``.jsonl`` or ``.jsonl.gz``) as a Dataset.

    ``split="all"`` (default) keeps every row. Other splits use ``like``'s rule
    and column types when ``like`` names a vendored set; otherwise the file's
    ``split`` column when it has one, else the generic 80/10/10 hash rule (key:
    ``id``, else ``task_id``, else ``question_id``, else the whole row) with
    splits train / validation / test.
    """
    rows = read_jsonl(path)
    if like is not None:
        like = resolve_name(like)
        _check_columns(list(dict.fromkeys(k for row in rows for k in row)) if rows else
                       list(_REGISTRY[like]["fields"]), like)
        _check_split(split, tuple(_REGISTRY[like]["splits"]), f"data like {like!r}")
        return _build(_select_rows(rows, _REGISTRY[like]["rule"], split), features(like))
    return _build(_generic_rows(rows, split, f"file {str(path)!r}"), None)


def _generic_rows(rows: Sequence[Mapping[str, Any]], split: str, what: str) -> list[Mapping[str, Any]]:
    """The rows of ``split`` of your own data without ``like=``: by its ``split`` column when it has one
    (every row must then have a value; the splits are the values it holds), else by the 80/10/10 hash rule."""
    if split == "all":
        return list(rows)
    if not any("split" in row for row in rows):
        _check_split(split, _GENERIC_SPLITS, what)
        return _select_rows(rows, _GENERIC_RULE, split)
    missing = [i for i, row in enumerate(rows) if row.get("split") is None]
    if missing:
        raise ValueError(f"{what} has a 'split' column but row(s) {missing[:5]} have no value in it: give every "
                         "row a split (train / validation / test) or drop the column for the hash rule")
    _check_split(split, sorted({str(row["split"]) for row in rows}), f"{what} (its 'split' column)")
    return _select_rows(rows, lambda row: str(row["split"]), split)


def load(name: PathOrData, split: str = "train", *, like: str | None = None) -> hf_datasets.Dataset:
    """Load a vendored set (or your own data) as an in-memory ``datasets.Dataset``.

    Args:
        name: a key of :data:`DATASETS` (``"_"``/``"-"`` and case do not
            matter; source folder names work too), a path to a ``.jsonl`` /
            ``.jsonl.gz`` file, or a :class:`datasets.Dataset`.
        split: one of ``DATASETS[name]["splits"]`` or ``"all"``. Rules are in
            the module docstring and ``DATASETS[name]["split_rule"]``. For your
            own data: train / validation / test / all.
        like: for your own data only: the vendored set whose columns, column
            types and split rule apply.

    Returns:
        The rows of the split in file order, with the columns and types of
        ``DATASETS[name]["fields"]`` (missing optional values are ``None``).

    Raises:
        UnknownDatasetError: (a ``KeyError``) unknown name; the message lists
            the valid names and the closest match.
        ValueError: unknown split (the message lists the valid ones), or
            ``like`` data without the required columns.
    """
    if isinstance(name, hf_datasets.Dataset):
        return _load_dataset_object(name, split, like)
    if isinstance(name, str) and (_is_registered(name) or not _looks_like_path(name)):
        if like is not None:
            raise ValueError("like= applies to your own data (a path or a Dataset), not to a vendored set")
        canonical = resolve_name(name)
        spec = _REGISTRY[canonical]
        _check_split(split, tuple(spec["splits"]), f"data set {canonical!r}")
        return _build(_select_rows(_vendored_rows(canonical), spec["rule"], split), features(canonical))
    path = Path(name)
    if not path.is_file():
        raise UnknownDatasetError(f"no such file: {str(path)!r} (and not a data set name; "
                                  f"valid names: {', '.join(sorted(_REGISTRY))})")
    return load_jsonl(path, split, like=like)


def _is_registered(name: str) -> bool:
    try:
        resolve_name(name)
    except KeyError:
        return False
    return True


def _load_dataset_object(data: hf_datasets.Dataset, split: str, like: str | None) -> hf_datasets.Dataset:
    if like is not None:
        like = resolve_name(like)
        _check_columns(data.column_names, like)
        rule, valid = _REGISTRY[like]["rule"], tuple(_REGISTRY[like]["splits"])
    elif split != "all" and "split" in data.column_names:  # its 'split' column decides (_generic_rows)
        marks = [{"split": None if v is None else str(v)} for v in data["split"]]
        _generic_rows(marks, split, "the given Dataset")
        return data.select([i for i, m in enumerate(marks) if m["split"] == split], keep_in_memory=True)
    else:
        rule, valid = _GENERIC_RULE, _GENERIC_SPLITS
    _check_split(split, valid, "the given Dataset" + (f" (like {like!r})" if like else ""))
    if split == "all":
        return data
    indices = [i for i, row in enumerate(data) if rule(row) == split]
    return data.select(indices, keep_in_memory=True)
