"""YAML values -> typed dataclass fields: :func:`build_dataclass` and its type rules.

Each field is checked against its annotation (``int``, ``float``, ``bool``, ``str``,
``X | None``, ``tuple[...]``, ``list[...]``, ``dict``, a nested dataclass, ``Any``), and
every problem is a :class:`~textgym.app.config_errors.ConfigError` at the field's key path.

Type rules: a YAML int is accepted where a float is expected; a numeric string
(``1e-5``, which YAML 1.1 reads as a string) is accepted for int/float fields;
anything else of the wrong type (``learning_rate: fast``, a bool for a number)
is an error.  NaN is never accepted.

Why not pydantic v2 / cattrs: tried on these rules, both accept a bool for a number
(``learning_rate: true`` -> 1.0) and cattrs also ``2.5`` for an int and ``maybe`` for a
bool; pydantic reports a ``__post_init__`` error at the section, not at its field, and
neither lists the valid keys with the closest match.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from textgym.app.config_errors import ConfigError, suggest

__all__ = ["build_dataclass", "coerce", "coerce_number"]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(tp: Any, value: Any, path: str) -> Any:
    """``value`` converted to type ``tp`` (see the module docstring's type rules)."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"must not be null (expected {' or '.join(_type_name(a) for a in args)})", path)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if value is None:
        raise ConfigError(f"must not be null (expected {_type_name(tp)})", path)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true or false, got {value!r}", path)
    if tp in (int, float):
        return coerce_number(tp, value, path)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"expected a string, got {type(value).__name__} {value!r} (quote it in YAML)", path)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list of {len(args)} values, got {value!r}", path)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"expected {len(args)} values, got {len(value)}: {list(value)!r}", path)
        return tuple(coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", path)
        (arg,) = typing.get_args(tp) or (Any,)
        return [coerce(arg, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping (key: value), got {value!r}", path)
        return dict(value)
    return value  # an annotation we do not check (e.g. a Protocol): take the value as is


def coerce_number(tp: type, value: Any, path: str) -> int | float:
    """``value`` as an ``int`` or ``float`` (``tp``): numbers and numeric strings; no bool, no NaN."""
    what = "an integer" if tp is int else "a number"
    if isinstance(value, bool):
        raise ConfigError(f"expected {what}, got {value!r}", path)
    if isinstance(value, str):
        try:
            value = float(value.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"expected {what}, got the string {value!r}", path) from None
    if not isinstance(value, (int, float)):
        raise ConfigError(f"expected {what}, got {type(value).__name__} {value!r}", path)
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError("NaN is not a valid value", path)
    if tp is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"expected an integer, got {value!r}", path)
            value = int(value)
        return value
    return float(value)


def build_dataclass(cls: type, data: Any, path: str, *, label: str | None = None) -> Any:
    """An instance of dataclass ``cls`` from the mapping ``data``, every field type-checked.

    Args:
        cls: the dataclass.
        data: a mapping of field names to values (missing fields keep their defaults).
        path: the key path of ``data`` (for messages; ``""`` for the top level).
        label: how to name the section in messages (default: the class name).

    Raises:
        ConfigError: ``data`` is not a mapping, an unknown key (with the closest field
            name and the list of valid ones), a value of the wrong type, or a value
            the class itself rejects (``__post_init__`` / ``check()``).
    """
    if data is None:
        data = {}
    where = path or "the top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of {label or cls.__name__} fields, got {data!r}", path or None)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        key = str(key)
        if key not in names:
            hint = getattr(cls, "key_hints", {}).get(key)  # e.g. a name another algorithm uses for this
            hint = f" {hint}." if hint else suggest(key, names)
            raise ConfigError(f"unknown key {key!r} in {where} ({label or cls.__name__}).{hint} "
                              f"Valid keys: {', '.join(names)}", _join(path, key))
        kwargs[key] = coerce(hints[key], value, _join(path, key))
    try:
        obj = cls(**kwargs)
        if hasattr(obj, "check"):
            obj.check()
    except ConfigError as exc:  # from __post_init__: its key is relative to this section
        raise ConfigError(exc.detail, _join(path, exc.key) if exc.key else path or None) from None
    except (TypeError, ValueError) as exc:
        field_name = str(exc).split(" ", 1)[0]  # "learning_rate must be > 0 ...": the key is that field
        key = _join(path, field_name) if field_name in names else path or None
        raise ConfigError(f"invalid {label or cls.__name__}: {exc}", key) from None
    return obj
