"""A safe arithmetic evaluator for the calculator tool: Python's ``ast`` parser, a whitelist, and limits.

The expression is model output, so hostile: it is parsed (never ``eval``-ed)
and only numbers, ``+ - * / // %``, ``**`` with a small exponent, unary signs
and parentheses are evaluated.  Size limits keep a crafted expression from
costing time or memory (``9**9**9``, a 10 kB expression, deep nesting).
"""

from __future__ import annotations

import ast
import math
import operator

__all__ = ["evaluate_arithmetic", "ArithmeticError_", "format_number"]

MAX_CHARS = 200
MAX_NODES = 100
MAX_EXPONENT = 12
MAX_ABS = 1e15

_BIN = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}  # fmt: skip
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class ArithmeticError_(ValueError):
    """The expression is not plain arithmetic, is too large, or has no finite value."""


def evaluate_arithmetic(expression: str) -> int | float:
    """The value of ``expression`` (e.g. ``"37 + 4 * 12"`` -> ``85``).

    Raises:
        ArithmeticError_: not arithmetic, over :data:`MAX_CHARS` characters or
            :data:`MAX_NODES` nodes, an exponent over :data:`MAX_EXPONENT`, a
            division by zero, or a value over :data:`MAX_ABS`.
    """
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("^", "**")
    if len(text) > MAX_CHARS:
        raise ArithmeticError_(f"expression longer than {MAX_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        raise ArithmeticError_("not an arithmetic expression") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ArithmeticError_(f"expression has more than {MAX_NODES} parts")
    return _eval(tree.body)


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ArithmeticError_(f"exponent larger than {MAX_EXPONENT}")
        try:
            return _check(_BIN[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ArithmeticError_("division by zero") from None
        except (OverflowError, TypeError):
            raise ArithmeticError_("value out of range") from None
    raise ArithmeticError_("only numbers, + - * / // % ** and parentheses are allowed")


def _check(value: int | float | complex) -> int | float:
    if isinstance(value, complex) or not math.isfinite(value) or abs(value) > MAX_ABS:
        raise ArithmeticError_("value out of range")
    return value


def format_number(value: int | float) -> str:
    """``85`` for integral values, else up to 6 significant decimals (``2.333333``)."""
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")
