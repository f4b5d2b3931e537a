"""Each task's lengths are stated once (its module's DEFAULTS, the TaskSpec's defaults); the docstrings agree."""

import re

import gymnasium as gym
import pytest

import textgym
from textgym.envs import task_factory

SPECS = [s for s in textgym.list_envs(details=True) if s.defaults]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_registered_defaults_are_the_spec_and_the_docstring_agrees(spec):
    assert gym.spec(spec.id).kwargs == dict(spec.defaults)
    doc = task_factory(spec.id).__doc__ or ""
    for key in ("max_prompt_length", "max_new_tokens"):
        stated = re.findall(rf"``{key}`` default (\d+)", doc)
        assert all(int(n) == spec.defaults[key] for n in stated), (spec.id, key, stated, spec.defaults)
