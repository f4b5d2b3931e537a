"""CodeExecutionReward: pass fractions, and hostile completions that must end within their limits."""

import os
import time
import uuid

import numpy as np
import pytest

import textgym.rewards as R
from textgym.reward_api import call_reward

TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]


def run(reward, completions, tests=TESTS, **columns):
    columns.setdefault("test_list", [tests] * len(completions))
    return call_reward(reward, ["# write add(a, b)\n"] * len(completions), completions, columns=columns)


@pytest.fixture(scope="module")
def sandbox():
    return R.CodeExecutionReward(timeout=2.0, memory_mb=256, workers=2)


def test_pass_fail_and_partial(sandbox):
    scores, comps = run(sandbox, [
        "def add(a, b):\n    return a + b\n",
        "def add(a, b):\n    return a - b\n",
        "def add(a, b):\n    return a * b\n",  # 1*2 != 3 but 2*2 == 4
        "Sure:\n```python\ndef add(a, b):\n    return a + b\n```\n",  # fenced block extracted
    ])
    assert scores.tolist() == [1.0, 0.0, 0.5, 1.0]
    assert comps["tests_passed"].tolist() == [2, 0, 1, 2]
    assert comps["tests_total"].tolist() == [2, 2, 2, 2]
    assert sandbox.last_reasons[0] == "passed 2/2"
    assert "test 0 failed: AssertionError" in sandbox.last_reasons[2]


def test_humaneval_style_prompt_prefix():
    r = R.CodeExecutionReward(timeout=5.0, workers=1)
    prompt = 'def add(a, b):\n    """Add two numbers."""\n'
    test = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
    scores, _ = call_reward(r, [prompt, prompt], ["    return a + b\n", "    return a\n"],
                            columns={"test": [test, test], "entry_point": ["add", "add"]})
    assert scores.tolist() == [1.0, 0.0]


def test_setup_code_and_missing_tests():
    r = R.CodeExecutionReward(timeout=5.0, workers=1)
    scores, _ = run(r, ["def add(a, b):\n    return a + b + OFFSET\n"], tests=["assert add(1, 2) == 13"],
                    test_setup_code=["OFFSET = 10"])
    assert scores.tolist() == [1.0]
    with pytest.raises(R.RewardError, match="has no tests"):
        call_reward(r, ["p"], ["x = 1"])


HOSTILE = {
    "infinite loop": ("while True:\n    pass\n", "timeout"),
    "sleep": ("import time\ntime.sleep(60)\n", "timeout"),
    "memory bomb": ("x = []\nwhile True:\n    x.append(bytearray(10**7))\n", "MemoryError"),
    "fork bomb": ("import os\nwhile True:\n    os.fork()\n", "fork"),
    "subprocess": ("import subprocess\nsubprocess.run(['sh', '-c', 'sleep 60'])\n", "subprocess"),
    "exit": ("def add(a, b):\n    return a + b\nexit(0)\n", "exit()"),
    "os._exit": ("import os\nos._exit(0)\n", "before finishing"),
    "network": ("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n", "network"),
}


def test_hostile_completions_end_within_limits_and_score_zero(sandbox):
    names = list(HOSTILE)
    start = time.monotonic()
    scores, comps = run(sandbox, [HOSTILE[n][0] for n in names])
    elapsed = time.monotonic() - start
    assert elapsed < 2 * 2.0 + 4  # two timeouts at most per worker, plus process start-up
    assert scores.tolist() == [0.0] * len(names)
    for name, reason in zip(names, sandbox.last_reasons):
        assert HOSTILE[name][1] in reason, (name, reason)
    assert comps["timed_out"].tolist() == [n in ("infinite loop", "sleep") for n in names]
    assert comps["aborted"].tolist() == [1.0] * len(names)


def test_write_outside_working_directory_is_blocked(sandbox, tmp_path):
    target = tmp_path / f"escape-{uuid.uuid4().hex}.txt"
    code = f"open({str(target)!r}, 'w').write('x')\ndef add(a, b):\n    return a + b\n"
    inside = "open('scratch.txt', 'w').write('fine')\ndef add(a, b):\n    return a + b\n"
    scores, _ = run(sandbox, [code, inside])
    assert scores.tolist() == [0.0, 1.0]
    assert not target.exists()
    assert "outside the sandbox directory" in sandbox.last_reasons[0]


def test_no_processes_or_temp_dirs_left_behind(sandbox):
    import tempfile

    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("textgym-sandbox-")}
    run(sandbox, [HOSTILE["fork bomb"][0], HOSTILE["sleep"][0]])
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("textgym-sandbox-")}
    assert after <= before
    children = [p for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == os.getpid()]
    assert children == []


def _ppid(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_per_test_timeout_keeps_partial_credit():
    r = R.CodeExecutionReward(timeout=5.0, test_timeout=0.5, workers=1)
    code = "def add(a, b):\n    while a == 1:\n        pass\n    return a + b\n"
    scores, comps = run(r, [code])
    assert scores.tolist() == [0.5]
    assert "timed out after 0.5 s" in r.last_reasons[0]
    assert comps["timed_out"].tolist() == [0.0]


def test_odd_completions_get_defined_scores(sandbox):
    odd = ["", "   \n\t", "\x00\x07\x1b[0m", "x = 1\n" * 20000]
    scores, _ = run(sandbox, odd)
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
    assert scores.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_parallel_workers_give_the_serial_scores():
    """Speed is measured in benchmarks/reward_throughput.py (a 1-worker and an N-worker row), not asserted here."""
    programs = ["def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n",
                "def add(a, b):\n    return a * b\n", "import time\ntime.sleep(0.2)\ndef add(a, b):\n    return a + b\n"]
    serial = R.CodeExecutionReward(timeout=5.0, workers=1)
    parallel = R.CodeExecutionReward(timeout=5.0, workers=4)
    s1, _ = run(serial, programs)
    s2, _ = run(parallel, programs)
    assert s1.tolist() == s2.tolist() == [1.0, 0.0, 0.5, 1.0]  # in the order of the completions
    assert parallel.last_reasons == serial.last_reasons
