"""``imports:`` of a run config: your own Python modules (a custom reward, env or algorithm).

An entry is a module name (``haiku_reward``, ``my_pkg.rewards``) or a file path
(``haiku_reward.py``, ``lib/rewards.py``).  :func:`resolve_imports` (called by
:func:`textgym.app.config.load_config`) looks for each one, in order:

1. a file or package next to the config file (``<config dir>/haiku_reward.py``,
   ``<config dir>/haiku_reward/__init__.py``, or the path relative to the config dir);
2. the same in the working directory;
3. an installed module of that name (``importlib.import_module``).

Entries found as files are written to the run's ``config.yaml`` as absolute
paths, so ``textgym eval RUN`` and ``textgym train --resume RUN`` import the same
files again from any directory.  :func:`import_entry` imports one entry; a
failure names every place that was searched.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["resolve_imports", "import_entry", "candidates", "ImportNotFound"]


class ImportNotFound(ImportError):
    """An ``imports:`` entry found nowhere; the message lists where it looked.

    Attributes:
        index: the entry's position in ``imports``.
    """

    def __init__(self, message: str, index: int = 0):
        super().__init__(message)
        self.index = index


def candidates(entry: str, base_dirs: Sequence[Path]) -> list[Path]:
    """The files that could hold ``entry``, in search order (existing or not)."""
    out: list[Path] = []
    path = Path(entry).expanduser()
    for base in base_dirs:
        if entry.endswith(".py") or "/" in entry or os.sep in entry:
            out.append(path if path.is_absolute() else base / path)
        else:
            rel = Path(*entry.split("."))
            out += [base / rel.with_suffix(".py"), base / rel / "__init__.py"]
    return out


def _find(entry: str, base_dirs: Sequence[Path]) -> Path | None:
    for p in candidates(entry, base_dirs):
        if p.is_file():
            return p.resolve()
    return None


def resolve_imports(entries: Sequence[str], config_dir: str | os.PathLike | None) -> list[str]:
    """``entries`` with every one found as a file next to the config or in the working directory
    replaced by its absolute path (others are left as module names).

    Raises:
        ImportNotFound: an entry that is no such file and no installed module (the message lists
            the files looked for).
    """
    bases = [Path(config_dir).resolve()] if config_dir is not None else []
    bases.append(Path.cwd())
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            out.append(entry)
            continue
        found = _find(entry, bases)
        if found is None and not _installed(entry):
            looked = ", ".join(dict.fromkeys(str(p) for p in candidates(entry, bases)))
            raise ImportNotFound(f"cannot import {entry!r}: looked for {looked} (next to the config, then in the "
                                 "working directory) and for an installed module of that name", i)
        out.append(str(found) if found is not None else entry)
    return out


def _installed(entry: str) -> bool:
    if entry.endswith(".py") or "/" in entry or os.sep in entry:
        return False
    try:
        return importlib.util.find_spec(entry) is not None
    except (ImportError, ValueError):
        return False


def _module_name(path: Path) -> str:
    return path.parent.name if path.name == "__init__.py" else path.stem


def import_entry(entry: str) -> ModuleType:
    """Import one ``imports:`` entry: an absolute file path, a path relative to the working
    directory, or a module name (the working directory is searched first).

    Raises:
        ImportNotFound: nothing of that name; the message lists the places searched.
        Exception: whatever the module itself raises while importing.
    """
    found = _find(entry, [Path.cwd()])
    if found is None and Path(entry).is_absolute() and Path(entry).is_file():
        found = Path(entry)
    if found is not None:
        name = _module_name(found)
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__file__", None) and Path(mod.__file__).resolve() == found:
            return mod  # already imported (a resume or an eval in the same process)
        spec = importlib.util.spec_from_file_location(name, found)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return mod
    if entry.endswith(".py") or "/" in entry:
        raise ImportNotFound(f"no such file {entry!r} (looked in the config's folder and in the working directory "
                             f"{str(Path.cwd())!r})")
    try:
        return importlib.import_module(entry)
    except ModuleNotFoundError as exc:
        if exc.name != entry.split(".")[0] and exc.name != entry:
            raise  # the module exists but imports something missing: say that
        looked = ", ".join(str(p) for p in candidates(entry, [Path.cwd()]))
        raise ImportNotFound(f"no module {entry!r}: looked for a file next to the config, in the working directory "
                             f"({looked}) and among installed modules") from None
