"""The code-execution verdict cannot be influenced by the candidate: each exploit below scores 0.

The tests' expected values (3, 4 and 10) appear nowhere in the exploits: a
program that could make the parent accept a value without computing it would
score above 0 here.
"""

import json

import pytest

from textgym.rewards._plain import PlainError, decode, encode
from textgym.rewards._verdict import judge, make_plan

from sandbox_helpers import needs_bwrap, run, sandbox

TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(5, 5) == 10"]
WRONG_ADD = "def add(a, b):\n    return 0\n"

# Each program defines a wrong (or no) `add` and tries to make the verdict say "passed".
EXPLOITS = {
    "patch builtins.exec/eval": "import builtins\nbuiltins.exec = lambda *a, **k: None\n"
                                "builtins.eval = lambda *a, **k: True\n" + WRONG_ADD,
    "patch the harness via sys.modules['__main__']": (
        "import sys\nm = sys.modules['__main__']\nm.encode = lambda value, depth=0: ['b', True]\n"
        "m.main = lambda: None\n" + WRONG_ADD),
    "forge result lines found with sys._getframe": (
        "import json, os, sys\n"
        "f = sys._getframe()\n"
        "while f is not None and 'nonce' not in f.f_locals:\n    f = f.f_back\n"
        "nonce, fd, job = f.f_locals['nonce'], f.f_locals['out'], f.f_locals['job']\n"
        "for i in range(len(job['calls'])):\n"
        "    os.write(fd, (nonce + ' ' + json.dumps({'i': i, 'v': ['b', True]}) + '\\n').encode())\n"
        "os.write(fd, (nonce + ' ' + json.dumps({'done': len(job['calls'])}) + '\\n').encode())\n"
        "os._exit(0)\n"),
    "forge the old 'test passed' lines": (
        "import os, sys\n"
        "f = sys._getframe()\n"
        "while 'nonce' not in f.f_locals:\n    f = f.f_back\n"
        "for i in range(3):\n"
        "    os.write(f.f_locals['out'], (f.f_locals['nonce'] + ' {\"event\": \"test\", \"i\": %d, \"ok\": true}\\n'"
        " % i).encode())\n"
        + WRONG_ADD),
    "one guessed value per call, many times": (
        "import json, os, sys\n"
        "f = sys._getframe()\n"
        "while 'nonce' not in f.f_locals:\n    f = f.f_back\n"
        "nonce, fd = f.f_locals['nonce'], f.f_locals['out']\n"
        "for guess in range(20):\n"
        "    os.write(fd, (nonce + ' ' + json.dumps({'i': 0, 'v': ['i', str(guess)]}) + '\\n').encode())\n"
        + WRONG_ADD),
    "__eq__ always True": "class Any:\n    def __eq__(self, other):\n        return True\n"
                          "    __hash__ = object.__hash__\n\ndef add(a, b):\n    return Any()\n",
    "int subclass with __eq__": "class Int(int):\n    def __eq__(self, other):\n        return True\n"
                                "    __hash__ = int.__hash__\n\ndef add(a, b):\n    return Int(0)\n",
    "os._exit(0) early": "import os\nos._exit(0)\n",
    "print fake results": "print('passed 3/3')\nimport sys\nsys.stderr.write('passed 3/3\\n')\n" + WRONG_ADD,
    "raise SystemExit in the call": "def add(a, b):\n    raise SystemExit(0)\n",
    "monkeypatch json": "import json\n_d = json.dumps\n"
                        "json.dumps = lambda obj, *a, **k: _d({'i': 0, 'v': ['b', True]})\n" + WRONG_ADD,
    "close the result fd": "import os, sys\nf = sys._getframe()\nwhile 'out' not in f.f_locals:\n    f = f.f_back\n"
                           "os.close(f.f_locals['out'])\n" + WRONG_ADD,
    "redirect the result fd": "import os, sys\nf = sys._getframe()\nwhile 'out' not in f.f_locals:\n"
                              "    f = f.f_back\nos.dup2(os.open(os.devnull, os.O_WRONLY), f.f_locals['out'])\n"
                              + WRONG_ADD,
    "huge output": "import os, sys\nf = sys._getframe()\nwhile 'out' not in f.f_locals:\n    f = f.f_back\n"
                   "print('x' * 10**7)\nchunk = b'y' * 2**20\nfor _ in range(40):\n"
                   "    os.write(f.f_locals['out'], chunk)\n" + WRONG_ADD,
    "patch builtins used by the tests' expected side": "import builtins\nbuiltins.abs = lambda x: 0\n"
                                                        "builtins.set = lambda *a: True\n" + WRONG_ADD,
}


@needs_bwrap
@pytest.mark.parametrize("isolation", ["bwrap", "none"])
def test_every_exploit_scores_zero(isolation):
    if isolation == "none":
        with pytest.warns(RuntimeWarning, match="isolation='none'"):
            box = sandbox(isolation="none", timeout=5.0)
    else:
        box = sandbox(timeout=5.0)
    names = list(EXPLOITS)
    scores, comps = run(box, [EXPLOITS[n] for n in names], tests=TESTS)
    assert dict(zip(names, scores.tolist())) == dict.fromkeys(names, 0.0), box.last_reasons
    assert comps["tests_passed"].tolist() == [0.0] * len(names)


@needs_bwrap
def test_exploits_with_forged_results_are_reported_as_tampering():
    box = sandbox()
    names = ["forge result lines found with sys._getframe", "forge the old 'test passed' lines",
             "one guessed value per call, many times", "monkeypatch json", "huge output"]
    run(box, [EXPLOITS[n] for n in names], tests=TESTS)
    reasons = dict(zip(names, box.last_reasons))
    assert reasons["forge result lines found with sys._getframe"].startswith("passed 0/3")  # values, not verdicts
    assert "tampered" in reasons["forge the old 'test passed' lines"]
    assert "tampered" in reasons["one guessed value per call, many times"]
    assert reasons["monkeypatch json"].startswith("passed 0/3")
    assert "more than 16 MiB of results" in reasons["huge output"]


def test_expected_values_never_enter_the_sandbox():
    plan = make_plan(("assert add(2, 2) == 1234567", "assert abs(half(7) - 3.25e-3) < 1e-9",
                      "assert set(pair(9)) == {8642, 9753}"), None)
    sent = json.dumps([(c.src, c.bind) for c in plan.calls])
    assert [c.src for c in plan.calls] == ["add(2, 2)", "half(7)", "pair(9)"]
    for expected in ("1234567", "3.25e-3", "0.00325", "8642", "9753", "1e-09"):
        assert expected not in sent


def test_humaneval_loops_and_test_data_are_run_by_the_parent():
    test = ("import math\n\ndef check(candidate):\n    import random\n    xs = [1, 2]\n"
            "    for i in range(3):\n        x = random.randint(0, 10)\n        assert candidate(x, i) == x + i\n"
            "    y = candidate(*xs)\n    assert math.fabs(y - 3) < 1e-9\n    assert candidate(y, 0) == 3\n")
    plan = make_plan((test,), "add")
    assert plan.aliases == {"candidate": "add"} and plan.errors == {}
    srcs = [c.src for c in plan.calls]
    assert srcs == ["candidate(x, i)"] * 3 + ["candidate(*xs)", "candidate(y, 0)"]
    assert [c.bind["i"] for c in plan.calls[:3]] == [["i", "0"], ["i", "1"], ["i", "2"]]
    assert plan.calls[4].bind == {"y": ["h", 3]}  # the sandbox's own value of call 3
    xs = [int(c.bind["x"][1]) for c in plan.calls[:3]]
    assert xs == [int(c.bind["x"][1]) for c in make_plan.__wrapped__((test,), "add").calls[:3]]  # seeded
    right = [(True, x + i) for i, x in enumerate(xs)] + [(True, 3), (True, 3)]
    assert judge(plan, right) == [""]
    wrong = right[:3] + [(True, 4), (True, 3)]
    assert judge(plan, wrong) == ["AssertionError: assert math.fabs(y - 3) < 1e-9"]
    assert judge(plan, right[:4] + [(False, "ZeroDivisionError")]) == ["ZeroDivisionError"]


def test_comparisons_of_program_values_never_run_in_the_sandbox():
    tests = ("assert all(f(x) == x for x in [1, 2])", "assert all(not f(x) for x in [1])",
             "assert (lambda: f(1) == 3)()", "assert [1, 2][f(0)] == 2",
             "assert sorted(f(x) for x in [2, 1]) == [1, 2]", "assert f(1)[0] == 5")
    plan = make_plan(tests, None)
    assert sorted(plan.errors) == [0, 1, 2, 3]
    assert all("would compute more than the program's values" in e for e in plan.errors.values())
    assert [c.src for c in plan.calls] == ["[f(x) for x in [2, 1]]", "f(1)[0]"]
    assert judge(plan, [(True, [1, 2]), (True, 5)])[4:] == ["", ""]


def test_builtin_named_function_under_test_and_unsupported_forms():
    plan = make_plan(("assert sum(10, 15) == 6", "assert f(1)\nif f(2):\n    pass"), None)
    assert [c.src for c in plan.calls] == ["sum(10, 15)"]
    assert judge(plan, [(True, 6)]) == ["", plan.errors[1]]
    assert plan.errors[1] == "unsupported test form: line 2: a loop or if depends on the program"


def test_plain_data_round_trip_and_refusals():
    from collections import Counter, OrderedDict, deque

    values = [None, True, -12345678901234567890, 1.5, float("inf"), 2j, "é\ud800", b"\x00", [1, (2, 3)],
              {"a": {1, 2}}, frozenset({3}), deque([1]), Counter("aab"), OrderedDict(b=1, a=2)]
    for v in values:
        back = decode(json.loads(json.dumps(encode(v))))
        assert type(back) is type(v) and back == v
    assert decode(["f", "nan"]) != decode(["f", "nan"])  # NaN stays NaN
    for bad in (["i", "1e5"], ["i", "9" * 5000], ["b", 1], ["x", 1], ["l", "abc"], ["S", [["l", []]]],
                ["d", [[["l", []], ["N"]]]], [], "s", ["f", "1.0; import os"]):
        with pytest.raises(PlainError):
            decode(bad)
    nested = ["N"]
    for _ in range(100):
        nested = ["l", [nested]]
    with pytest.raises(PlainError, match="nested"):
        decode(nested)
