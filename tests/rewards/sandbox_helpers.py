"""Shared helpers of the code-execution sandbox tests."""

import functools

import pytest

import textgym.rewards as R
from textgym.reward_api import call_reward
from textgym.rewards._launcher import SandboxUnavailable, resolve_bwrap

TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]


@functools.cache
def bwrap_problem() -> str:
    """Why bubblewrap cannot run here ('' when it can)."""
    try:
        resolve_bwrap(None, 64)
    except SandboxUnavailable as exc:
        return str(exc)
    return ""


needs_bwrap = pytest.mark.skipif(
    bool(bwrap_problem()),
    reason="needs bubblewrap (apt-get install bubblewrap; `.ci/run` installs it): " + bwrap_problem()[:200],
)


def run(reward, completions, tests=TESTS, **columns):
    """Score ``completions`` (MBPP style) against ``tests`` (one list for all)."""
    columns.setdefault("test_list", [tests] * len(completions))
    return call_reward(reward, ["# write add(a, b)\n"] * len(completions), completions, columns=columns)


def sandbox(**kwargs):
    return R.CodeExecutionReward(**{"timeout": 5.0, "memory_mb": 256, "workers": 2, **kwargs})
