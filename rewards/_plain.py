"""Plain data between the code sandbox and the parent: tagged JSON of exact built-in types.

The child (``_sandbox_child.py``, which has its own copy of the encoder) sends
the value of each call under test as ``[tag, payload]`` lists; the parent
decodes them here into fresh objects of exact built-in types, so that the
comparison with the expected value runs only the interpreter's own ``==``:
an object from the candidate (say, one whose ``__eq__`` always returns True)
never reaches the parent.  Anything that is not well-formed plain data is
refused (:class:`PlainError`).

Tags: ``N`` None, ``b`` bool, ``i`` int (decimal string), ``f`` float
(``repr``), ``c`` complex, ``s`` str, ``y`` bytes (hex), ``l`` list, ``t``
tuple, ``d`` dict, ``S`` set, ``F`` frozenset, ``q`` deque, ``C`` Counter,
``o`` OrderedDict.  Parent-to-child bindings also use ``m`` (a module, by
name) and ``h`` (the value of an earlier call in the same child).
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict, deque
from types import ModuleType
from typing import Any

MAX_DEPTH = 64
MAX_INT_DIGITS = 4000
_INT_RE = re.compile(r"-?[0-9]{1,%d}\Z" % MAX_INT_DIGITS)
_FLOAT_RE = re.compile(r"-?(?:[0-9]+\.?[0-9]*(?:e[-+]?[0-9]+)?|inf|nan)\Z")
_SEQ = {"l": list, "t": tuple, "S": set, "F": frozenset, "q": deque}
_MAP = {"d": dict, "C": Counter, "o": OrderedDict}


class PlainError(ValueError):
    """A value that is not plain data (or malformed plain data)."""


class HoleRef:
    """Stands, in the parent's run of a test, for the value of call ``index`` computed in the child."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __repr__(self) -> str:
        return f"<value of call {self.index}>"


def decode(obj: Any, depth: int = 0) -> Any:
    """Build the value described by ``obj`` (parsed JSON) from exact built-in types.

    Raises:
        PlainError: anything but a well-formed tagged value.
    """
    if depth > MAX_DEPTH:
        raise PlainError("value nested too deeply")
    if type(obj) is not list or not obj or type(obj[0]) is not str:
        raise PlainError("malformed value")
    tag, args = obj[0], obj[1:]
    if tag == "N" and not args:
        return None
    if len(args) == 1:
        (a,) = args
        if tag == "b" and type(a) is bool:
            return a
        if tag == "i" and type(a) is str and _INT_RE.match(a):
            return int(a)
        if tag == "f" and type(a) is str:
            return _float(a)
        if tag == "s" and type(a) is str:
            return a
        if tag == "y" and type(a) is str:
            try:
                return bytes.fromhex(a)
            except ValueError as exc:
                raise PlainError("malformed bytes") from exc
        if tag in _SEQ and type(a) is list:
            items = [decode(x, depth + 1) for x in a]
            try:
                return _SEQ[tag](items)
            except TypeError as exc:  # unhashable set element
                raise PlainError(str(exc)) from exc
        if tag in _MAP and type(a) is list:
            pairs = []
            for p in a:
                if type(p) is not list or len(p) != 2:
                    raise PlainError("malformed mapping")
                pairs.append((decode(p[0], depth + 1), decode(p[1], depth + 1)))
            try:
                return _MAP[tag](dict(pairs)) if tag == "C" else _MAP[tag](pairs)
            except TypeError as exc:  # unhashable key
                raise PlainError(str(exc)) from exc
    if tag == "c" and len(args) == 2 and all(type(a) is str for a in args):
        return complex(_float(args[0]), _float(args[1]))
    raise PlainError(f"malformed value with tag {tag[:10]!r}")


def _float(text: str) -> float:
    if not _FLOAT_RE.match(text.lower()):
        raise PlainError("malformed float")
    return float(text)


def encode(value: Any, depth: int = 0) -> list:
    """Tagged form of a parent value sent to the child as a binding (test data, modules, earlier calls).

    Raises:
        PlainError: a value that cannot be sent (the test is then not supported).
    """
    if depth > MAX_DEPTH:
        raise PlainError("value nested too deeply")
    t = type(value)
    if value is None:
        return ["N"]
    if t is bool:
        return ["b", value]
    if t is int:
        return ["i", str(value)]
    if t is float:
        return ["f", repr(value)]
    if t is complex:
        return ["c", repr(value.real), repr(value.imag)]
    if t is str:
        return ["s", value]
    if t is bytes:
        return ["y", value.hex()]
    if t is HoleRef:
        return ["h", value.index]
    if isinstance(value, ModuleType):
        return ["m", value.__name__]
    for tag, kind in _SEQ.items():
        if t is kind:
            return [tag, [encode(x, depth + 1) for x in value]]
    for tag, kind in _MAP.items():
        if t is kind:
            return [tag, [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    raise PlainError(f"cannot send a {t.__name__} to the sandbox")

