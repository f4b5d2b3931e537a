"""The reward registry is written only through ``register``: a re-import replaces textgym's own entries."""

import importlib

import pytest

import textgym.rewards as R
from textgym import reward_api


def test_reimporting_the_rewards_package_replaces_its_own_entries():
    before = R.list()
    importlib.reload(R)
    assert R.list() == before
    assert type(R.make("rougeL")).__name__ == "ROUGEReward"


def test_a_different_factory_under_a_builtin_name_is_still_refused():
    with pytest.raises(ValueError, match="'bleu' is already registered"):
        reward_api.register("bleu", lambda prompt, completion: 0.0)
