"""The run config's error, :class:`ConfigError`, and the helpers that word its messages.

Every problem found in a run config is one :class:`ConfigError` naming the dotted key
path at fault; a wrong name also gets the valid choices and the closest match
(:func:`suggest`, :func:`check_choice`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = ["ConfigError", "suggest", "check_choice"]

class ConfigError(ValueError):
    """A config no run can use.

    Attributes:
        key: the dotted key path at fault (``"algo.learnig_rate"``), or ``None`` for the whole file.
    """

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        self.detail = message
        super().__init__(f"config error at `{key}`: {message}" if key else f"config error: {message}")


def suggest(word: str, choices: Sequence[str]) -> str:
    """``" Did you mean 'X'?"`` for the closest of ``choices`` to ``word`` (``""`` when none is close)."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_choice(value: str, choices: Sequence[str], what: str, path: str, hint: str) -> None:
    """Raise a :class:`ConfigError` at ``path`` unless ``value`` is one of ``choices`` (the message lists them and the closest match)."""
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}.{suggest(value, choices)} Choices: {', '.join(choices)} "
                          f"({hint})", path)
