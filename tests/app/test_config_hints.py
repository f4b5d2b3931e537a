"""A key that another algorithm uses under that name gets a hint, not only a closest match."""

import pytest

from textgym.app.config import ConfigError, parse_config


def test_grpo_kl_coef_points_to_beta():
    raw = {"model": "tiny-char", "algorithm": "grpo", "env": {"id": "textgym/TokenCount-v0", "num_envs": 4},
           "algo": {"kl_coef": 0.1}, "train": {"iterations": 1}}
    with pytest.raises(ConfigError, match=r"algo\.kl_coef.*unknown key 'kl_coef'.*weighted by `beta`"):
        parse_config(raw)
    raw["algo"] = {"beta": 0.1}
    assert parse_config(raw).algo.beta == 0.1
