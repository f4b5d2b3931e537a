"""``textgym bench``: list and run the benchmark scripts of ``benchmarks/``.

* ``textgym bench`` (or ``textgym bench list``) prints each benchmark's name
  and the first line of its docstring;
* ``textgym bench NAME [ARGS...]`` runs ``benchmarks/NAME.py ARGS...`` with the
  current Python in a child process (so each benchmark starts from a fresh
  process: clean memory figures, its own ``--help``) and returns its exit code.

The scripts are not part of the installed package: they are found in
``$TEXTGYM_BENCHMARKS`` when set, else in the ``benchmarks/`` folder of the
source checkout that ``textgym`` is imported from (an editable install,
``pip install -e .``).  Files whose name starts with ``_`` are helpers, not
benchmarks.
"""

from __future__ import annotations

import ast
import difflib
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["benchmarks_dir", "list_benchmarks", "run_benchmark", "main"]

HELP = """usage: textgym bench [list | NAME [ARGS...]]

  textgym bench              list the benchmarks (name and one line each)
  textgym bench NAME ARGS    run benchmarks/NAME.py ARGS in a fresh Python process
  textgym bench NAME --help  that benchmark's own options

Flags of every textgym command (given to bench, applied to the benchmark's process):
  --no-progress   no progress bars
  -q, --quiet     results and errors only
  -v, --verbose   also the libraries' progress bars and warnings
  --threads N     torch CPU threads (default: torch's choice)

The scripts live in the source checkout's benchmarks/ folder (or in
$TEXTGYM_BENCHMARKS); their results go to benchmarks/results/.  See
benchmarks/README.md for what each measures and the latest numbers."""

ENV_VAR = "TEXTGYM_BENCHMARKS"


def benchmarks_dir() -> Path:
    """The folder holding the benchmark scripts.

    ``$TEXTGYM_BENCHMARKS`` when set, else ``<checkout>/benchmarks`` where
    ``<checkout>`` is the parent of the folder of ``textgym/__init__.py``.

    Raises:
        FileNotFoundError: ``$TEXTGYM_BENCHMARKS`` is not a folder, or textgym
            is not imported from a source checkout (a wheel install ships no
            benchmarks), with how to fix it.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"${ENV_VAR} is {env!r}, which is not a folder; point it at the benchmarks/ "
                                    "folder of a textgym checkout")
        return path
    import textgym

    path = Path(textgym.__file__).resolve().parent.parent / "benchmarks"
    if not path.is_dir():
        raise FileNotFoundError(
            f"no benchmarks/ folder next to the textgym package ({path} does not exist): the benchmark scripts "
            f"live in the source checkout. Clone the repository and `pip install -e .` it, or set ${ENV_VAR} to "
            "its benchmarks/ folder")
    return path


def _summary(path: Path) -> str:
    """First line of a script's module docstring (read with ``ast``; the script is not imported)."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return "(unreadable)"
    return doc.strip().splitlines()[0] if doc else ""


def list_benchmarks(directory: str | os.PathLike | None = None) -> dict[str, str]:
    """Benchmark name -> one-line description, sorted by name.

    Args:
        directory: the scripts' folder (default :func:`benchmarks_dir`).

    Raises:
        FileNotFoundError: see :func:`benchmarks_dir`.
    """
    folder = Path(directory) if directory is not None else benchmarks_dir()
    return {p.stem: _summary(p) for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")}


def run_benchmark(name: str, args: list[str] | None = None, directory: str | os.PathLike | None = None) -> int:
    """Run benchmark ``name`` with ``args`` in a child Python process; returns its exit code.

    Output goes straight to this process's stdout/stderr.

    Raises:
        KeyError: no such benchmark (the message lists the available ones and a close match).
        FileNotFoundError: see :func:`benchmarks_dir`.
    """
    folder = Path(directory) if directory is not None else benchmarks_dir()
    names = list_benchmarks(folder)
    stem = name[:-3] if name.endswith(".py") else name
    if stem not in names:
        close = difflib.get_close_matches(stem, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"no benchmark named {name!r} in {folder}.{hint} Available: {', '.join(names) or 'none'}")
    return subprocess.call([sys.executable, str(folder / f"{stem}.py"), *(args or [])])


def _print_list(folder: Path) -> None:
    names = list_benchmarks(folder)
    width = max((len(n) for n in names), default=0)
    print(f"Benchmarks in {folder} (run one with: textgym bench NAME [--help | args]):")
    for n, doc in names.items():
        print(f"  {n.ljust(width)}  {doc}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``textgym bench``: ``[]`` / ``["list"]`` lists, ``[NAME, *args]`` runs one.

    Returns:
        0 after a listing, the benchmark's exit code after a run, 2 on an
        unknown name or a missing benchmarks folder (the reason goes to stderr).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    import argparse

    from textgym.app.output import add_output_flags, apply_output_flags

    flags, argv = add_output_flags(argparse.ArgumentParser(add_help=False)).parse_known_args(argv)
    try:
        apply_output_flags(flags)  # the benchmark subprocesses inherit the environment it sets
    except ValueError as err:
        print(f"textgym bench: error: {err}", file=sys.stderr)
        return 2
    if flags.threads:  # the benchmark runs in a child process: torch reads its thread count from the env
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(flags.threads)
    if argv and argv[0] in ("-h", "--help"):
        print(HELP)
        return 0
    try:
        folder = benchmarks_dir()
        if not argv or argv[0] == "list":
            _print_list(folder)
            return 0
        return run_benchmark(argv[0], argv[1:], folder)
    except (FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) else str(err)
        print(f"textgym bench: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
