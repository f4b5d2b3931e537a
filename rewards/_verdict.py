"""The verdict of the code-execution reward, decided in the parent from values computed in the sandbox.

A test is trusted code (an MBPP ``assert`` line, a HumanEval ``check``
function); the program is not.  The parent runs the test's own code, with two
changes made on its syntax tree:

* every expression that depends on the program (a call of one of its
  functions, ``candidate(...)``, a name the program defines) is a **call
  under test**: the parent does not evaluate it but sends its source and the
  test data it uses (plain values) to the sandbox, which evaluates it after
  running the program and returns the value as plain data
  (:mod:`textgym.rewards._plain`);
* every ``assert`` is recorded instead of executed; once the sandbox has
  answered, the parent evaluates the assertion with those values in place of
  the calls (so ``assert f(x) == 3``, ``assert abs(f(x) - 1.5) < 1e-6``,
  ``assert set(f(x)) == {1, 2}``, ``assert f(x)``, ``assert f(x) is None``
  all compare with the parent's own code).

The expected values therefore never enter the sandbox, and nothing the
program does there can change a verdict except the values it returns.
Assignments from a call under test (``y = candidate(x)``) keep the value in
the sandbox for later calls under test (``assert check_root(y)``); loops,
``if`` and imports in a test run in the parent (``random`` is a private
generator seeded with 0, so a test draws the same inputs every time).

Not supported (the test counts as failed, with a reason that says so): a
program-dependent expression anywhere but in an ``assert`` or on the right of
an assignment to one name (in a loop header, an ``if`` condition, a bare
call); a comprehension or lambda that would compare or test the program's
values inside the sandbox (``all(f(x) == x for x in xs)``: the program could
make it true; ``[f(x) for x in xs]`` is fine); test data that is not plain
data; a value of the program used by the parent outside an assertion.  In an assertion whose only calls are to
built-in names (MBPP task 126 tests its own ``sum``), the call on the left of
the comparison is taken as the call under test.
"""

from __future__ import annotations

import ast
import builtins
import copy
import functools
import random
import types
from dataclasses import dataclass, field
from typing import Any

from ._plain import HoleRef, PlainError, encode

MAX_CALLS = 20_000  # calls under test per sample
_BUILTINS = frozenset(dir(builtins)) - {"__import__", "exec", "eval", "compile", "open", "input", "breakpoint"}
_MODULES = frozenset({"math", "cmath", "sys", "re", "string", "itertools", "collections", "heapq", "operator",
                      "functools", "copy", "decimal", "fractions", "statistics", "random"})
_PASS_THROUGH = (ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.IfExp, ast.Tuple, ast.List, ast.Set, ast.Dict,
                 ast.JoinedStr, ast.FormattedValue)


class Unsupported(Exception):
    """A test form the safe verdict cannot split; the test is scored as failed."""


@dataclass
class Call:
    """One call under test: source, the test's plain values it uses, and which test it belongs to."""

    src: str
    bind: dict[str, list]
    test: int


@dataclass
class Check:
    """One executed assertion: its expression (calls replaced by ``__cN`` names) and the parent values."""

    test: int
    expr: Any  # code object (mode "eval")
    env: dict[str, Any]
    calls: dict[str, int]
    label: str


@dataclass
class Plan:
    """What to ask the sandbox (``calls``) and how to judge its answers (``checks``)."""

    n_tests: int
    calls: list[Call] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # test index -> why it fails regardless of the program
    aliases: dict[str, str] = field(default_factory=dict)  # e.g. {"candidate": entry point}, bound in the sandbox


def _private_random() -> types.ModuleType:
    mod = types.ModuleType("random")
    rng = random.Random(0)
    for name in dir(random):
        if not name.startswith("_"):
            setattr(mod, name, getattr(rng, name, getattr(random, name)))
    return mod


def _stored_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


class _Splitter:
    """Finds the program-dependent parts of one test's expressions."""

    def __init__(self, local: set[str], program: set[str]):
        self.local, self.program = local, program

    def depends(self, node: ast.AST, extra: frozenset = frozenset()) -> bool:
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                if n.id in self.program or n.id in extra:
                    return True
                if n.id not in self.local and n.id not in _BUILTINS and n.id not in _MODULES:
                    return True
        return False

    def split(self, node: ast.expr, holes: list[ast.expr], extra: frozenset = frozenset()) -> ast.expr:
        """``node`` with each call under test replaced by the name ``__cK`` (K: index in ``holes``)."""
        if not self.depends(node, extra):
            return node
        if isinstance(node, _PASS_THROUGH) or (isinstance(node, ast.Call) and not self.depends(node.func, extra)):
            for name, value in ast.iter_fields(node):
                if name in ("func", "ctx", "op", "ops", "conversion", "format_spec"):
                    continue
                if isinstance(value, ast.expr):
                    setattr(node, name, self.split(value, holes, extra))
                elif isinstance(value, list):
                    setattr(node, name, [self._split_item(v, holes, extra) for v in value])
            return node
        if not self.safe_hole(node, extra):
            raise Unsupported(f"line {node.lineno}: {ast.unparse(node)[:80]!r} would compute more than the "
                              "program's values in the sandbox (write the comparison as its own assert)")
        if isinstance(node, ast.GeneratorExp):  # all(f(x) for x in xs): the sandbox returns the list
            node = ast.ListComp(elt=node.elt, generators=node.generators)
        holes.append(node)
        return ast.copy_location(ast.Name(id=f"__c{len(holes) - 1}", ctx=ast.Load()), node)

    def safe_hole(self, node: ast.expr, extra: frozenset) -> bool:
        """Whether the sandbox may evaluate ``node``: a value of the program, never a comparison of it.

        A name, attribute, subscript or call of the program is; so is a
        comprehension whose element is one, over test data.  Not, say,
        ``[f(x) == x for x in xs]`` or ``(lambda: f(1) == 3)()``: the program
        could make those true without computing anything.
        """
        if isinstance(node, ast.Name):
            return True
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            return self.depends(node.value, extra) and self.safe_hole(node.value, extra)
        if isinstance(node, ast.Call):
            return self.safe_hole(node.func, extra)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            if any(self.depends(g.iter, extra) or any(self.depends(c, extra) for c in g.ifs)
                   for g in node.generators):
                return False
            return all(self.depends(e, extra) and not isinstance(e, _PASS_THROUGH) and self.safe_hole(e, extra)
                       and not (isinstance(e, ast.Call) and not self.depends(e.func, extra)) for e in elts)
        return False

    def _split_item(self, v, holes, extra):
        if isinstance(v, ast.keyword):
            v.value = self.split(v.value, holes, extra)
            return v
        return self.split(v, holes, extra) if isinstance(v, ast.expr) else v


def _builtin_left_call(test: ast.expr) -> frozenset:
    """Names of a built-in called on the left of an assertion that uses no program name (MBPP 126: ``sum``)."""
    left = test.left if isinstance(test, ast.Compare) else test
    if isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id in _BUILTINS:
        return frozenset({left.func.id})
    return frozenset()


class _Recorder:
    """Runs one test's transformed code in the parent and records calls and checks into ``plan``."""

    def __init__(self, plan: Plan, test: int, splitter: _Splitter, source: str):
        self.plan, self.test, self.splitter, self.source = plan, test, splitter, source
        self.asserts: list[tuple[Any, list[ast.expr], str, set[str]]] = []
        self.assigns: list[tuple[ast.expr, set[str]]] = []

    # -- transformation (static) --

    def transform(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out = []
        for stmt in body:
            out.append(self._stmt(stmt))
        return out

    def _stmt(self, stmt: ast.stmt) -> ast.stmt:
        sp = self.splitter
        if isinstance(stmt, ast.Assert):
            test = stmt.test
            extra = frozenset() if sp.depends(test) else _builtin_left_call(test)
            holes: list[ast.expr] = []
            expr = sp.split(test, holes, extra)
            names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name) and not n.id.startswith("__c")}
            label = (ast.get_source_segment(self.source, stmt) or "assert")[:200]
            code = compile(ast.fix_missing_locations(ast.Expression(expr)), "<test>", "eval")
            self.asserts.append((code, holes, label, names))
            return self._hook("__assert__", len(self.asserts) - 1, stmt)
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and sp.depends(stmt.value)):
            self.assigns.append((stmt.value, set()))
            hook = self._hook("__assign__", len(self.assigns) - 1, stmt)
            return ast.copy_location(ast.Assign(targets=stmt.targets, value=hook.value), stmt)
        if isinstance(stmt, (ast.For, ast.While, ast.If)):
            header = stmt.iter if isinstance(stmt, ast.For) else stmt.test
            if sp.depends(header):
                raise Unsupported(f"line {stmt.lineno}: a loop or if depends on the program")
            stmt.body = self.transform(stmt.body)
            stmt.orelse = self.transform(stmt.orelse)
            return stmt
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)) or not sp.depends(stmt):
            return stmt
        raise Unsupported(f"line {stmt.lineno}: {type(stmt).__name__} statement uses the program outside an assert")

    @staticmethod
    def _hook(fn: str, index: int, stmt: ast.stmt) -> ast.stmt:
        call = ast.Call(func=ast.Name(id=fn, ctx=ast.Load()),
                        args=[ast.Constant(index), ast.Call(func=ast.Name(id="locals", ctx=ast.Load()), args=[],
                                                            keywords=[])], keywords=[])
        return ast.copy_location(ast.Expr(value=call), stmt)

    # -- recording (run time, in the parent) --

    def _lookup(self, name: str, scope: dict, glob: dict) -> Any:
        if name in scope:
            return scope[name]
        if name in glob:
            return glob[name]
        raise Unsupported(f"test name {name!r} is used before it is set")

    def _call(self, hole: ast.expr, scope: dict, glob: dict) -> int:
        if len(self.plan.calls) >= MAX_CALLS:
            raise Unsupported(f"more than {MAX_CALLS} calls under test")
        used = {n.id for n in ast.walk(hole) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        used -= _stored_names(hole)  # comprehension variables
        bind = {}
        for name in sorted(used & self.splitter.local):
            value = self._lookup(name, scope, glob)
            try:
                bind[name] = encode(value)
            except PlainError as exc:
                raise Unsupported(f"test value {name!r}: {exc}") from exc
        self.plan.calls.append(Call(ast.unparse(hole), bind, self.test))
        return len(self.plan.calls) - 1

    def on_assert(self, index: int, scope: dict, glob: dict) -> None:
        code, holes, label, names = self.asserts[index]
        calls = {f"__c{k}": self._call(h, scope, glob) for k, h in enumerate(holes)}
        env = {}
        for name in names:
            if name in scope or name in glob:
                value = self._lookup(name, scope, glob)
                env[name] = value if isinstance(value, (types.ModuleType, HoleRef)) else _copy(value)
        self.plan.checks.append(Check(self.test, code, env, calls, label))

    def on_assign(self, index: int, scope: dict, glob: dict) -> HoleRef:
        return HoleRef(self._call(self.assigns[index][0], scope, glob))


def _copy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - an uncopyable test value is used as is
        return value


def _import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - mirrors __import__
    if name == "random":
        return _private_random()
    return __import__(name, globals, locals, fromlist, level)


def _run_test(plan: Plan, test: int, source: str, entry_point: str | None) -> None:
    """Record the calls and checks of one test (MBPP assert lines, or a HumanEval module with ``check``)."""
    tree = ast.parse(source)
    if entry_point is None:  # MBPP: the lines are the body of the check
        top, body, program = [], tree.body, set()
    else:
        checks = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"]
        if len(checks) != 1 or len(checks[0].args.args) != 1:
            raise Unsupported("the test defines no check(candidate) function")
        top = [s for s in tree.body if s is not checks[0]]
        body, program = checks[0].body, {checks[0].args.args[0].arg}
        plan.aliases[checks[0].args.args[0].arg] = entry_point
    local = _stored_names(ast.Module(body=[*top, *body], type_ignores=[])) - program
    rec = _Recorder(plan, test, _Splitter(local, program), source)
    fn = ast.FunctionDef(name="__check__", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[],
                                                              defaults=[]),
                         body=rec.transform(body) or [ast.Pass()], decorator_list=[], returns=None)
    module = ast.fix_missing_locations(ast.Module(body=[*top, fn], type_ignores=[]))
    glob: dict[str, Any] = {"__builtins__": {**vars(builtins), "__import__": _import}, "__name__": "__test__"}
    glob["__assert__"] = lambda i, scope: rec.on_assert(i, scope, glob)
    glob["__assign__"] = lambda i, scope: rec.on_assign(i, scope, glob)
    for name in _MODULES:
        glob[name] = _import(name)
    exec(compile(module, "<test>", "exec"), glob)  # noqa: S102 - trusted test code, never the program
    glob["__check__"]()


@functools.lru_cache(maxsize=4096)
def make_plan(tests: tuple[str, ...], entry_point: str | None) -> Plan:
    """The calls under test and the checks of a sample's tests (cached: it does not depend on the program).

    Args:
        tests: MBPP assert lines (one test each), or one HumanEval test module.
        entry_point: the HumanEval function bound to ``candidate``; ``None`` for MBPP.
    """
    plan = Plan(len(tests))
    for i, source in enumerate(tests):
        n_calls, n_checks = len(plan.calls), len(plan.checks)
        try:
            _run_test(plan, i, source, entry_point)
        except Exception as exc:  # noqa: BLE001 - the test is scored as failed, saying why
            del plan.calls[n_calls:], plan.checks[n_checks:]
            kind = "unsupported test form" if isinstance(exc, Unsupported) else f"test code raised {type(exc).__name__}"
            plan.errors[i] = f"{kind}: {exc}"[:300]
    return plan


def judge(plan: Plan, values: list[tuple[bool, Any]]) -> list[str]:
    """Per test, ``""`` if it passed or why it failed; ``values[k]`` is ``(ok, value or error)`` of call ``k``."""
    failures = [plan.errors.get(i, "") for i in range(plan.n_tests)]
    for check in plan.checks:
        if failures[check.test]:
            continue
        env = {}
        error = ""
        for name, value in [*check.env.items(), *((n, HoleRef(k)) for n, k in check.calls.items())]:
            if isinstance(value, HoleRef):
                ok, value = values[value.index]
                if not ok:
                    error = value
                    break
            elif not isinstance(value, types.ModuleType):
                value = _copy(value)  # the plan is cached: a test expression must not change its data
            env[name] = value
        if not error:
            try:
                if not eval(check.expr, {"__builtins__": builtins, **env}):  # noqa: S307 - trusted test expression
                    error = f"AssertionError: {check.label}"
            except Exception as exc:  # noqa: BLE001 - a failed assertion
                error = f"{check.label} raised {type(exc).__name__}: {str(exc)[:200]}"
        failures[check.test] = error
    return failures
