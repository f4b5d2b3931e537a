"""Every registered algorithm implements the one Algorithm protocol; the pipeline asks it, not its config."""

import pytest

from textgym.agents.algorithms.registry import get_algorithm, list_algorithms
from textgym.agents.common.protocol import ALGORITHM_MEMBERS, Algorithm


def algorithm_or_skip(name):
    """The registered class; skipped when its optional extra is missing (sb3-maskable-ppo needs sb3-contrib)."""
    try:
        return get_algorithm(name)
    except ImportError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", list_algorithms())
def test_every_registered_algorithm_has_the_protocol_members(name):
    cls = algorithm_or_skip(name)
    missing = [m for m in ALGORITHM_MEMBERS if m not in ("config", "iteration", "num_timesteps") and not hasattr(cls, m)]
    assert not missing, f"{name} lacks {missing}"
    assert cls.saves_checkpoints is (not name.startswith("sb3-"))  # SB3's learn does not checkpoint by itself


def test_a_built_algorithm_is_an_algorithm(char_tok):
    from agent_helpers import char_env

    from textgym.agents import A2C, A2CConfig

    algo = A2C("tiny-char", char_env(2), A2CConfig(progress_bar=False, tensorboard=False))
    assert isinstance(algo, Algorithm) and algo.iteration == 0 and algo.num_timesteps == 0
