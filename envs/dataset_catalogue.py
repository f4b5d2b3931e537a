"""The catalogue of vendored data sets: names, metadata, column types and split rules.

The catalogue itself is data, ``envs/data/catalogue.json`` (one entry a set:
task, folder, files, other accepted spellings, description, license, source,
citation, fields, split rule text, split sizes, the rule spec and a content
warning where one is needed).  This module reads it once at import and
answers questions about names; :mod:`textgym.envs.datasets` loads the rows.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets as hf_datasets

from textgym.envs.dataset_splits import make_rule

__all__ = ["DATASETS", "DATA_DIR", "UnknownDatasetError", "available_splits", "features", "resolve_name"]

#: Folder holding the vendored files (one sub-folder per source data set).
DATA_DIR = Path(__file__).resolve().parent / "data"


class UnknownDatasetError(KeyError):
    """Raised by :func:`~textgym.envs.datasets.load` for a name that is neither a set nor a file."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def _read_catalogue(path: Path) -> dict[str, dict[str, Any]]:
    """name -> entry, with ``files`` a tuple and ``rule`` the rule function."""
    entries = json.loads(path.read_text(encoding="utf-8"))["datasets"]
    return {name: {**spec, "files": tuple(spec["files"]), "rule": make_rule(spec["rule"])}
            for name, spec in entries.items()}


_REGISTRY: dict[str, dict[str, Any]] = _read_catalogue(DATA_DIR / "catalogue.json")

_PUBLIC_KEYS = ("task", "description", "license", "source", "citation", "folder", "files",
                "fields", "size", "splits", "split_rule", "warning")


def _public(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    meta = {key: spec[key] for key in _PUBLIC_KEYS if key in spec}
    meta["name"] = name
    meta["size"] = sum(spec["splits"].values())
    meta["splits"] = dict(spec["splits"])
    return meta


#: name -> metadata: task, description, license, source (repo@commit path),
#: citation, folder (under DATA_DIR), files, fields (column -> type: "string",
#: "int64", "bool", ["string"] = list of strings, {...} = struct), size
#: (rows), splits (split -> rows; "all" is always available too), split_rule,
#: and warning where the content needs one.
DATASETS: dict[str, dict[str, Any]] = {name: _public(name, spec) for name, spec in _REGISTRY.items()}

# Other spellings accepted by load(): the source folder names.
_ALIASES = {alias: name for name, spec in _REGISTRY.items() for alias in spec.get("aliases", ())}


def resolve_name(name: str) -> str:
    """Canonical set name for ``name`` (case, ``_``/``-`` and folder aliases ignored).

    Raises :class:`UnknownDatasetError` (a ``KeyError``) listing the valid names
    and the closest match.
    """
    key = re.sub(r"[\s_]+", "-", str(name).strip().lower())
    if key in _REGISTRY:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    close = difflib.get_close_matches(key, list(_REGISTRY) + list(_ALIASES), n=1, cutoff=0.5)
    hint = f" Did you mean {_ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise UnknownDatasetError(
        f"unknown data set {name!r}.{hint} Valid names: {', '.join(sorted(_REGISTRY))}. "
        "A path to a .jsonl / .jsonl.gz file or a datasets.Dataset is accepted too."
    )


def available_splits(name: str) -> tuple[str, ...]:
    """Splits of a vendored set, e.g. ``("train", "validation", "test", "all")``."""
    return (*_REGISTRY[resolve_name(name)]["splits"], "all")


def _to_feature(spec: Any) -> Any:
    if isinstance(spec, str):
        return hf_datasets.Value(spec)
    if isinstance(spec, list):
        return [_to_feature(spec[0])]
    return {key: _to_feature(value) for key, value in spec.items()}


def features(name: str) -> hf_datasets.Features:
    """The :class:`datasets.Features` (column types) of a vendored set."""
    spec = _REGISTRY[resolve_name(name)]["fields"]
    return hf_datasets.Features({key: _to_feature(value) for key, value in spec.items()})
