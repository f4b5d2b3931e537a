"""The ``--set key.path=value`` grammar: parse the items, set them in a raw (YAML) config mapping.

``textgym train``, ``textgym compare`` and ``textgym bias`` share it: each item is a
dotted key path, ``=``, and a value parsed with ``yaml.safe_load``; the items are set
in the raw mapping before it is validated, so an override is checked like the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textgym.app.config_errors import ConfigError

__all__ = ["parse_overrides", "apply_overrides"]


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """``["algo.learning_rate=1e-4", ...]`` -> ``[("algo.learning_rate", 0.0001), ...]``.

    Values are parsed with ``yaml.safe_load`` (``8`` -> int, ``null`` -> None,
    ``[1, 2]`` -> list, ``{a: 1}`` -> dict, ``sentiment`` -> str).

    Raises:
        ConfigError: an item without ``=`` or with an empty key, or a value YAML cannot parse.
    """
    import yaml

    out = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set takes key=value (e.g. --set algo.learning_rate=1e-4), got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse the value {text!r} as YAML ({exc.__class__.__name__}); "
                              "quote strings with special characters", key) from None
        out.append((key, value))
    return out


def apply_overrides(raw: dict[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Set each dotted ``key`` of ``overrides`` in ``raw`` (in place; missing sections are created).

    Returns:
        ``raw``.

    Raises:
        ConfigError: a key goes through a value that is not a mapping (``seed.x=1``).
    """
    for key, value in overrides:
        parts = key.split(".")
        node = raw
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"cannot set {key!r}: `{where}` is {nxt!r}, not a section", key)
            node = nxt
        node[parts[-1]] = value
    return raw
