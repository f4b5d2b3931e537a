"""The code sandbox's limits, seen from outside (score and side effects only, whatever the sandbox's mechanism):
a huge file cannot be written, a CPU-burning loop is stopped at the time limit, the child sees none of the
parent's environment variables."""

from __future__ import annotations

import threading

import textgym.rewards as R
from sandbox_helpers import needs_bwrap
from textgym.reward_api import call_reward

pytestmark = needs_bwrap

ADD = "def add(a, b):\n    return a + b\n"
TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]


def run(reward, completions, *, watchdog=120.0):
    """Score ``completions``; fail (instead of hanging) if the sandbox does not return within ``watchdog`` s."""
    out = {}

    def target():
        try:
            out["result"] = call_reward(reward, ["# write add(a, b)\n"] * len(completions), completions,
                                        columns={"test_list": [TESTS] * len(completions)})
        except BaseException as exc:  # noqa: BLE001  (re-raised in the test's thread)
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(watchdog)
    assert not t.is_alive(), f"the sandbox did not return within {watchdog} s: a limit did not stop the program"
    if "error" in out:
        raise out["error"]
    scores, _ = out["result"]
    return scores.tolist()


def test_a_file_over_the_size_limit_cannot_be_written():
    sandbox = R.CodeExecutionReward(timeout=20.0, file_size_mb=1, workers=1)
    small = "open('ok.bin', 'wb').write(b'x' * 100_000)\n" + ADD  # 0.1 MB: allowed
    huge = "with open('big.bin', 'wb') as f:\n    for _ in range(64):\n        f.write(b'x' * 2**20)\n" + ADD
    assert run(sandbox, [small, huge, ADD]) == [1.0, 0.0, 1.0]


def test_a_cpu_burning_loop_is_stopped_at_the_time_limit():
    sandbox = R.CodeExecutionReward(timeout=2.0, workers=2)
    burn = "x = 0\nwhile True:\n    x += 1\n" + ADD
    assert run(sandbox, [burn, ADD, "def add(a, b):\n    while True:\n        pass\n"], watchdog=90.0) == [0.0, 1.0, 0.0]


def test_the_child_sees_none_of_the_parents_environment(monkeypatch):
    secret = "s3cr3t-token-5f1e"
    monkeypatch.setenv("TEXTGYM_TEST_SECRET", secret)
    monkeypatch.setenv("HF_TOKEN", secret)
    sandbox = R.CodeExecutionReward(timeout=20.0, workers=1)
    # add() is right only when no variable of the parent (nor its value) reached the child
    leak_check = ("import os\nLEAK = any(k in os.environ for k in ('TEXTGYM_TEST_SECRET', 'HF_TOKEN')) or "
                  f"any({secret!r} in v for v in os.environ.values())\n"
                  "def add(a, b):\n    return a + b + (100 if LEAK else 0)\n")
    control = f"import os\nos.environ['X'] = {secret!r}\n" + ADD  # setting variables inside is harmless
    assert run(sandbox, [leak_check, control]) == [1.0, 1.0]
    # and the check itself catches a leak: the same program with the secret planted in the child's environment
    planted = f"import os\nos.environ['HF_TOKEN'] = {secret!r}\n" + leak_check
    assert run(sandbox, [planted]) == [0.0]
