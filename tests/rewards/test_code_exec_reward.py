"""CodeExecutionReward: pass fractions, test forms, and hostile completions that end within their limits."""

import os
import tempfile

import numpy as np
import pytest

import textgym.rewards as R
from textgym.reward_api import call_reward

from sandbox_helpers import needs_bwrap, run, sandbox

pytestmark = needs_bwrap


@pytest.fixture(scope="module")
def box():
    return sandbox(timeout=3.0)


def test_pass_fail_and_partial(box):
    scores, comps = run(box, [
        "def add(a, b):\n    return a + b\n",
        "def add(a, b):\n    return a - b\n",
        "def add(a, b):\n    return a * b\n",  # 1*2 != 3 but 2*2 == 4
        "Sure:\n```python\ndef add(a, b):\n    return a + b\n```\n",  # fenced block extracted
    ])
    assert scores.tolist() == [1.0, 0.0, 0.5, 1.0]
    assert comps["tests_passed"].tolist() == [2, 0, 1, 2]
    assert comps["tests_total"].tolist() == [2, 2, 2, 2]
    assert box.last_reasons[0] == "passed 2/2"
    assert box.last_reasons[2] == "passed 1/2; test 0 failed: AssertionError: assert add(1, 2) == 3"


def test_humaneval_style_prompt_prefix(box):
    prompt = 'def add(a, b):\n    """Add two numbers."""\n'
    test = ("METADATA = {}\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n"
            "    for x in range(3):\n        assert candidate(x, x) == 2 * x\n")
    scores, _ = call_reward(box, [prompt] * 3, ["    return a + b\n", "    return a\n", "    return a * 2 - b\n"],
                            columns={"test": [test] * 3, "entry_point": ["add"] * 3})
    assert scores.tolist() == [1.0, 0.0, 0.0]  # HumanEval: one test, all of check() must pass


def test_test_forms_are_judged_in_the_parent(box):
    tests = [
        "assert abs(half(3) - 1.5) < 1e-9",
        "assert set(evens(5)) == {0, 2, 4}",
        "assert is_even(4)",
        "assert not is_even(3)",
        "assert nothing() is None",
        "assert half(1) == 0.5 and evens(1) == [0]",
    ]
    program = ("def half(x):\n    return x / 2\n\ndef evens(n):\n    return [i for i in range(n) if i % 2 == 0]\n\n"
               "def is_even(n):\n    return n % 2 == 0\n\ndef nothing():\n    return None\n")
    wrong = program.replace("x / 2", "x // 2").replace("n % 2 == 0\n", "True\n")
    scores, _ = run(box, [program, wrong], tests=tests)
    assert scores.tolist() == [1.0, 0.5]  # wrong: the set, is_even(4) and None tests still pass
    assert box.last_reasons[1].startswith("passed 3/6; test 0 failed: AssertionError: assert abs(half(3)")


def test_setup_code_and_missing_tests(box):
    scores, _ = run(box, ["def add(a, b):\n    return a + b + OFFSET\n"], tests=["assert add(1, 2) == 13"],
                    test_setup_code=["OFFSET = 10"])
    assert scores.tolist() == [1.0]
    with pytest.raises(R.RewardError, match="has no tests"):
        call_reward(box, ["p"], ["x = 1"])


def test_unsupported_test_form_fails_with_a_reason(box):
    tests = ["for x in add(1, 2):\n    pass", "assert add(1, 2) == 3"]
    scores, _ = run(box, ["def add(a, b):\n    return a + b\n"], tests=tests)
    assert scores.tolist() == [0.5]
    assert "unsupported test form: line 1: a loop or if depends on the program" in box.last_reasons[0]


HOSTILE = {
    "infinite loop": ("while True:\n    pass\n", "timeout"),
    "sleep": ("import time\ntime.sleep(60)\n", "timeout"),
    "memory bomb": ("x = []\nwhile True:\n    x.append(bytearray(10**7))\n", "MemoryError"),
    "exit": ("def add(a, b):\n    return a + b\nexit(0)\n", "exit()"),
    "os._exit": ("import os\nos._exit(0)\n", "before finishing"),
    "syntax error": ("def add(a, b)\n    return a + b\n", "SyntaxError"),
}


def test_hostile_completions_score_zero_with_their_reason(box):
    names = list(HOSTILE)
    scores, comps = run(box, [HOSTILE[n][0] for n in names])
    assert scores.tolist() == [0.0] * len(names)
    for name, reason in zip(names, box.last_reasons):
        assert HOSTILE[name][1] in reason, (name, reason)
    assert comps["timed_out"].tolist() == [n in ("infinite loop", "sleep") for n in names]
    assert comps["aborted"].tolist() == [1.0] * len(names)


def test_no_processes_or_temp_files_left_behind(box):
    before, children_before = set(os.listdir(tempfile.gettempdir())), _children()
    run(box, ["import os\nwhile True:\n    os.fork()\n", "import time\ntime.sleep(60)\n"])
    after = set(os.listdir(tempfile.gettempdir()))
    assert {p for p in after - before if p.startswith(("textgym-sandbox-", "tmp"))} == set()
    left = _children() - children_before  # (children of earlier tests in the same pytest process are not ours)
    assert {p: _cmdline(p) for p in left} == {}


def _children() -> set[str]:
    return {p for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == os.getpid()}


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def _ppid(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_per_call_timeout_keeps_partial_credit():
    r = sandbox(test_timeout=0.5, workers=1)
    code = "def add(a, b):\n    while a == 1:\n        pass\n    return a + b\n"
    scores, comps = run(r, [code])
    assert scores.tolist() == [0.5]
    assert "timed out after 0.5 s" in r.last_reasons[0]
    assert comps["timed_out"].tolist() == [0.0]


def test_odd_completions_get_defined_scores(box):
    odd = ["", "   \n\t", "\x00\x07\x1b[0m", "x = 1\n" * 20000]
    scores, _ = run(box, odd)
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
    assert scores.tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.slow
def test_every_reference_solution_passes():
    """All 974 MBPP and 164 HumanEval reference solutions score 1.0 under the parent-side verdict (~2 min)."""
    from textgym.envs.datasets import load

    box = sandbox(timeout=20.0, memory_mb=1024)
    mbpp = [row for split in ("train", "validation", "test", "prompt") for row in load("mbpp", split).to_list()]
    scores, _ = call_reward(box, [""] * len(mbpp), [r["code"] for r in mbpp],
                            columns={"test_list": [r["test_list"] for r in mbpp],
                                     "test_setup_code": [r["test_setup_code"] for r in mbpp]})
    assert len(mbpp) == 974 and scores.tolist() == [1.0] * 974, [r for r in box.last_reasons if r != "passed 3/3"]
    he = load("humaneval", "test").to_list()
    scores, _ = call_reward(box, [r["prompt"] for r in he], [r["canonical_solution"] for r in he],
                            columns={"test": [r["test"] for r in he], "entry_point": [r["entry_point"] for r in he]})
    assert len(he) == 164 and scores.tolist() == [1.0] * 164, [r for r in box.last_reasons if r != "passed 1/1"]
