"""Name -> factory registries (rewards, responders): registering with a clash check, looking up with hints.

A registry is a plain ``dict`` owned by its module (``reward_api._REGISTRY``,
``responders._REGISTRY``); these two functions are the rules both follow.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["register_in", "look_up"]

F = TypeVar("F")


def register_in(registry: dict[str, Any], kind: str, name: str, factory: F | None = None, *,
                same: Callable[[Any, Any], bool] | None = None) -> Any:
    """Register ``factory`` under ``name`` in ``registry``; without ``factory``, a decorator that does.

    Args:
        registry: the registry.
        kind: what it holds, for the error (``"reward"``, ``"responder"``).
        name: the name.
        factory: the class, factory or instance.
        same: ``same(old, new)`` is true when ``new`` may replace a different object ``old`` already
            registered under ``name`` (e.g. the same definition re-imported); default: never.

    Returns:
        ``factory`` (or the decorator).

    Raises:
        ValueError: ``name`` is already registered to a different factory.
    """

    def deco(obj: F) -> F:
        old = registry.get(name, obj)
        if old is not obj and not (same is not None and same(old, obj)):
            raise ValueError(f"{kind} {name!r} is already registered to {old!r}")
        registry[name] = obj
        return obj

    return deco(factory) if factory is not None else deco


def look_up(registry: dict[str, Any], kind: str, name: str) -> Any:
    """The object registered as ``name``.

    Raises:
        KeyError: unknown name; the message suggests close matches and lists the registered names.
    """
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown {kind} {name!r}.{hint} Registered: {sorted(registry)}")
    return registry[name]
