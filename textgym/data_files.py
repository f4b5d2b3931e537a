"""Your own prompts from a file: JSONL / JSON / CSV / Parquet, a folder, or a ``datasets.Dataset``.

:func:`load_prompts` reads the data with Hugging Face ``datasets`` (its packaged
``json`` / ``csv`` / ``parquet`` builders, into memory, with a throw-away cache
folder: nothing is downloaded and nothing is left behind), renames the prompt
column to ``"prompt"`` and the reference column to ``"references"``, keeps every
other column (the env passes them to the reward function as keyword arguments)
and selects a split.

Split rule (deterministic, the same on every machine and run):

1. a folder whose files are named by split (``train.jsonl``, ``test.jsonl``, ...;
   ``datasets``' naming rules) or a mapping ``{"train": FILE, "test": FILE}``:
   each file is its split;
2. otherwise, data with a ``split`` column: the rows whose ``split`` is the one asked for;
3. otherwise, by a hash of the prompt text: a prompt is in ``"test"`` when
   ``int(sha256("textgym-v1\\0text:" + prompt)[:8 bytes]) % 10000 < test_fraction * 10000``,
   else in ``"train"`` (:func:`prompt_split`).  The same prompt always lands in
   the same split, whatever the other rows, so duplicates never straddle it.

``split="all"`` keeps every row.  ``TextGenEnv(tokenizer, "prompts.jsonl", reward)``
uses every row (``"all"``); ``gym.make("textgym/Text-v0", data=..., split=...)``
applies the rule.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["load_prompts", "read_data", "prompt_split", "is_data_path", "SUFFIXES", "SALT"]

#: File endings :func:`read_data` reads, and the ``datasets`` builder for each.
SUFFIXES = {".jsonl": "json", ".json": "json", ".jsonl.gz": "json", ".json.gz": "json", ".csv": "csv",
            ".parquet": "parquet"}
#: Prefix of the hashed text in :func:`prompt_split` (shared with the vendored sets' rule).
SALT = "textgym-v1"


def _builder(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    return None


def is_data_path(value: Any) -> bool:
    """``value`` names a data file or folder (a path-like, or a string with a known ending or that exists)."""
    if isinstance(value, os.PathLike):
        return True
    if not isinstance(value, str):
        return False
    return _builder(Path(value)) is not None or Path(value).expanduser().exists()


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """``datasets``' progress bars off for the duration (restored after)."""
    import datasets
    from datasets.utils import logging as ds_logging

    was_enabled = not datasets.are_progress_bars_disabled()
    level = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity_error()
    try:
        yield
    finally:
        ds_logging.set_verbosity(level)
        if was_enabled:
            datasets.enable_progress_bars()


def read_data(data: Any) -> dict[str, list[dict[str, Any]]]:
    """The rows of ``data`` by file split: ``{"all": rows}`` for one file / Dataset / list, or
    ``{"train": rows, "test": rows, ...}`` for a folder of split files or a ``{split: file}`` mapping.

    Raises:
        FileNotFoundError: a path that does not exist (the message gives the absolute path).
        ValueError: a file ending :func:`read_data` cannot read, or a folder without data files.
    """
    if isinstance(data, Mapping) and "prompt" not in data:
        out: dict[str, list[dict[str, Any]]] = {}
        for split, part in data.items():
            rows = read_data(part)
            out[str(split)] = [r for rs in rows.values() for r in rs]
        return out
    if hasattr(data, "to_list") and hasattr(data, "column_names"):  # a datasets.Dataset
        return {"all": data.to_list()}
    if not is_data_path(data):
        return {"all": [dict(r) for r in data]}
    path = Path(data).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such data file or folder: {str(path.resolve())!r}")
    import datasets

    with tempfile.TemporaryDirectory(prefix="textgym-data-") as cache, _quiet_datasets():
        if path.is_dir():
            files = [p for p in sorted(path.iterdir()) if p.is_file() and _builder(p)]
            if not files:
                raise ValueError(f"folder {str(path)!r} holds no data file ({', '.join(sorted(SUFFIXES))})")
            loaded = datasets.load_dataset(str(path), cache_dir=cache, keep_in_memory=True)
            return {str(k): v.to_list() for k, v in loaded.items()}
        builder = _builder(path)
        if builder is None:
            raise ValueError(f"cannot read {str(path)!r}: use a {', '.join(sorted(SUFFIXES))} file or a folder of them")
        ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache, keep_in_memory=True)
        return {"all": ds.to_list()}


def prompt_split(prompt: str, test_fraction: float = 0.1) -> str:
    """``"test"`` or ``"train"`` for a prompt under the hash rule (module docstring, rule 3)."""
    digest = hashlib.sha256(f"{SALT}\0text:{prompt}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 10000 < round(test_fraction * 10000) else "train"


def _describe(data: Any) -> str:
    if is_data_path(data):
        return repr(str(data))
    return f"the given {type(data).__name__}"


def load_prompts(data: Any, split: str = "all", *, prompt_column: str = "prompt",
                 reference_column: str | None = None, test_fraction: float = 0.1) -> list[dict[str, Any]]:
    """The samples of ``split`` of ``data``, ready for :class:`textgym.TextGenEnv`.

    Args:
        data: a ``.jsonl`` / ``.json`` / ``.csv`` / ``.parquet`` file, a folder of them (named by
            split), a ``{split: file}`` mapping, a ``datasets.Dataset`` or a list of dicts.
        split: ``"all"``, ``"train"``, ``"test"`` (or any split a folder / ``split`` column has).
        prompt_column: the column holding the prompt (renamed to ``"prompt"``).
        reference_column: a column of reference texts (a string or a list of strings;
            renamed to ``"references"``); ``None``: a ``"references"`` column if present.
        test_fraction: the share of prompts the hash rule puts in ``"test"`` (0 < f < 1).

    Returns:
        A list of dicts: ``prompt``, optionally ``references``, and the other columns.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a missing column, an unknown or empty split, a bad ``test_fraction``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    parts = read_data(data)
    where = _describe(data)
    if split == "all":
        rows = [r for rs in parts.values() for r in rs]
        rule = "every row"
    elif set(parts) != {"all"}:
        if split not in parts:
            raise ValueError(f"unknown split {split!r} for {where}: its files give the splits "
                             f"{', '.join(sorted(parts))} (or 'all')")
        rows, rule = parts[split], f"file split {split!r}"
    else:
        rows = parts["all"]
        if rows and "split" in rows[0]:
            have = sorted({str(r.get("split")) for r in rows})
            if split not in have:
                raise ValueError(f"unknown split {split!r} for {where}: its 'split' column holds "
                                 f"{', '.join(have)} (or use 'all')")
            rows, rule = [r for r in rows if str(r.get("split")) == split], "its 'split' column"
        else:
            if split not in ("train", "test"):
                raise ValueError(f"unknown split {split!r} for {where}: without a 'split' column, prompts are split "
                                 "into 'train' and 'test' by a hash of the prompt (or use 'all')")
            rule = f"hash of the prompt, test_fraction {test_fraction}"
            _check_column(rows, prompt_column, where)
            rows = [r for r in rows if prompt_split(str(r[prompt_column]), test_fraction) == split]
    if not rows:
        raise ValueError(f"split {split!r} of {where} holds no rows ({rule}); raise test_fraction, add a 'split' "
                         "column, or give separate train / test files")
    _check_column(rows, prompt_column, where)
    if reference_column is not None and reference_column not in rows[0]:
        raise ValueError(f"{where} has no reference column {reference_column!r}; its columns: {sorted(rows[0])}")
    out = []
    for r in rows:
        s = dict(r)
        s["prompt"] = str(s.pop(prompt_column))
        s.pop("split", None)
        if reference_column is not None and reference_column != "references":
            s["references"] = s.pop(reference_column)
        refs = s.get("references")
        if isinstance(refs, str):
            s["references"] = [refs]
        elif refs is None:
            s.pop("references", None)
        out.append(s)
    return out


def _check_column(rows: list[dict[str, Any]], column: str, where: str) -> None:
    if rows and column not in rows[0]:
        raise ValueError(f"{where} has no prompt column {column!r}; its columns: {sorted(rows[0])}. "
                         "Pass prompt_column=... (in a config: env.kwargs.prompt_column)")
