"""The rewards' cache folder for derived files (WordNet's LF copy, ``evaluate`` data and modules)."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

__all__ = ["cache_dir", "writable"]


def writable(path: Path) -> bool:
    """Whether ``path`` is (or can be made) a folder this process can write a file in."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".textgym-probe-{os.getpid()}-{threading.get_ident()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def cache_dir() -> Path:
    """A writable cache directory for textgym's derived files.

    ``$TEXTGYM_CACHE`` if set, else the platform user cache dir
    (``~/.cache/textgym`` on Linux), else ``<tmp>/textgym-<uid>``.

    Raises:
        OSError: none of them is writable (set ``TEXTGYM_CACHE``).
    """
    candidates = []
    if os.environ.get("TEXTGYM_CACHE"):
        candidates.append(Path(os.environ["TEXTGYM_CACHE"]).expanduser())
    try:
        import platformdirs

        candidates.append(Path(platformdirs.user_cache_dir("textgym")))
    except Exception:  # noqa: BLE001 - platformdirs missing or no home: use the fallbacks
        pass
    candidates.append(Path(tempfile.gettempdir()) / f"textgym-{os.getuid()}")
    for cand in candidates:
        if writable(cand):
            return cand
    raise OSError(f"no writable cache directory among {[str(c) for c in candidates]}; set TEXTGYM_CACHE")
