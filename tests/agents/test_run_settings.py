"""Every algorithm's config is its hyperparameters plus the shared RunSettings (flat fields)."""

import dataclasses

import pytest

from textgym.agents import PPOConfig, RunSettings
from textgym.agents.algorithms import registry
from textgym.agents.common.run_settings import OnPolicyRunSettings

RUN_FIELDS = ["device", "run_dir", "tensorboard", "progress_bar"]


@pytest.mark.parametrize("name", registry.list_algorithms())
def test_every_algorithm_config_has_the_shared_run_settings_after_the_common_hyperparameters(name):
    try:
        cls = registry.get_config_class(name)
    except ImportError as e:  # an optional extra is missing (sb3-maskable-ppo needs sb3-contrib)
        pytest.skip(str(e))
    assert issubclass(cls, RunSettings)
    names = [f.name for f in dataclasses.fields(cls)]
    start = names.index("device")
    assert names[start : start + 4] == RUN_FIELDS
    assert names[0] == "seed" and "learning_rate" in names[:start]  # hyperparameters come first
    if issubclass(cls, OnPolicyRunSettings):  # the native algorithms also log samples and checkpoint
        assert names[start + 4 : start + 6] == ["log_samples", "save_every"]
    else:
        assert "save_every" not in names and "log_samples" not in names


def test_run_settings_are_still_plain_keyword_fields_of_the_config():
    cfg = PPOConfig(learning_rate=1e-3, run_dir="runs/x", save_every=5, progress_bar=False)
    assert (cfg.run_dir, cfg.save_every, cfg.progress_bar, cfg.device) == ("runs/x", 5, False, None)
    d = cfg.to_dict()
    assert d["save_every"] == 5 and d["learning_rate"] == 1e-3 and d["run_dir"] == "runs/x"
    assert PPOConfig(**d) == cfg  # checkpoints rebuild the config from this dict
