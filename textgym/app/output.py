"""What a ``textgym`` command prints: the flags every subcommand shares, and library noise.

Every subcommand takes the same four flags (:func:`add_output_flags`):

* ``--no-progress``: no progress bars at all (textgym's and the libraries'); long stages print a
  short line instead (:func:`progress_lines`: RL prints one at its first and last iteration and
  at least every :data:`PROGRESS_LINE_EVERY_S` seconds in between).
* ``-q`` / ``--quiet``: no progress bars and no stage lines; results and errors only.
* ``-v`` / ``--verbose``: the libraries' own output too: their progress bars ("Loading
  weights", "Writing model shards", dataset builders) and their warnings (transformers'
  LOAD REPORT when a new head is initialised, ...).
* ``--threads N``: torch CPU threads (default: torch's choice; 1 suits a busy machine).

By default a job shows one progress display (textgym's own bar) and textgym's stage
lines; the libraries' bars and info/warning logs are off.  :func:`apply_output_flags` does
this before the heavy libraries are imported, through their documented environment
variables (``HF_HUB_DISABLE_PROGRESS_BARS`` also covers transformers' bars,
``HF_DATASETS_DISABLE_PROGRESS_BARS``, ``TRANSFORMERS_VERBOSITY``; ``TQDM_DISABLE`` for
``--no-progress``), all read when the library is first imported: the CLI applies the flags
before that.  Libraries a caller of ``main()`` imported earlier keep the caller's settings.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["add_output_flags", "apply_output_flags", "say", "is_quiet", "progress_lines", "PROGRESS_LINE_EVERY_S",
           "HelpFormatter"]

_QUIET = False
_LINES = False
#: Seconds between the progress lines that replace the bars under ``--no-progress``.
PROGRESS_LINE_EVERY_S = 30.0


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` with each option's default: ``(default: X)`` unless the help text names it already or the
    default is empty (``None`` / ``False``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        d = action.default
        if "default" in text or d is None or d is False or d == [] or d is argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)".strip()


def add_output_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--no-progress``, ``-q``, ``-v`` and ``--threads`` to ``parser`` (returns it)."""
    g = parser.add_argument_group("output and threads (every textgym command)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("-q", "--quiet", action="store_true", help="results and errors only (no bars, no stage lines)")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="also the libraries' progress bars and warnings (transformers, datasets, hub)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 suits a machine busy with other jobs)")
    return parser


def is_quiet() -> bool:
    """``-q`` was given."""
    return _QUIET


def progress_lines() -> bool:
    """``--no-progress`` without ``-q``: long stages print a line now and then instead of a bar."""
    return _LINES


def say(msg: str) -> None:
    """Print a stage line (``[sft] ...``) unless ``-q``."""
    if not _QUIET:
        print(msg, flush=True)


def apply_output_flags(args: Any) -> None:
    """Set up the process's output for the parsed ``args`` (see the module docstring).

    Raises:
        ValueError: ``--threads`` below 1, or ``-q`` together with ``-v``.
    """
    global _QUIET, _LINES
    quiet, verbose = bool(getattr(args, "quiet", False)), bool(getattr(args, "verbose", False))
    if quiet and verbose:
        raise ValueError("-q and -v contradict each other: give one")
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    _QUIET = quiet
    no_bars = quiet or bool(getattr(args, "no_progress", False))
    _LINES = no_bars and not quiet
    env = os.environ
    if not verbose:
        env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        env["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        env.setdefault("DATASETS_VERBOSITY", "error")
    if no_bars:
        env["TQDM_DISABLE"] = "1"
    if threads:
        import torch

        torch.set_num_threads(threads)
