"""A2C and the SB3-A2C adapter: save -> load -> continue."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from agent_helpers import tiny_char
from algo_helpers import QUIET, check_resume, stop_env
from textgym.agents import A2C, SB3A2C, A2CConfig, LMActorCritic, SB3A2CConfig


def test_a2c_save_load_continue_equals_uninterrupted(tmp_path):
    """The iteration after a reload gives the uninterrupted run's metrics and weights (optimizer, RNGs, env)."""
    a, b = check_resume(lambda: A2C(LMActorCritic(*tiny_char()), stop_env(8),
                                    A2CConfig(learning_rate=5e-3, kl_coef=0.1, ent_coef=0.01, **QUIET)),
                        A2C, tmp_path)
    assert b.num_timesteps == a.num_timesteps and b.num_timesteps > 0
    assert b.config.kl_coef == 0.1 and b.config.ent_coef == 0.01  # the hyper-parameters came back too


def _token_count(n, **kw):
    return gym.make_vec("textgym/TokenCount-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        autoreset_mode="Disabled", **kw)


def _seeded_test_env(n=8):
    env = _token_count(n, split="test")
    env.reset(seed=0)
    return env


def test_sb3_a2c_save_load_continue(tmp_path):
    algo = SB3A2C("tiny-char", _token_count(2), SB3A2CConfig(n_steps=4, learning_rate=1e-2, **QUIET))
    before = [p.detach().clone() for p in algo.policy.parameters()]
    algo.learn(iterations=2)
    assert (algo.num_timesteps, algo.iteration) == (16, 2)
    assert any(not torch.equal(p, q) for p, q in zip(before, algo.policy.parameters()))
    algo.save(tmp_path / "ckpt")
    loaded = SB3A2C.load(tmp_path / "ckpt", _token_count(2))
    assert (loaded.num_timesteps, loaded.iteration, loaded.config.n_steps) == (16, 2, 4)
    assert loaded.config.learning_rate == 1e-2
    for (k, p), q in zip(algo.policy.state_dict().items(), loaded.policy.state_dict().values()):
        assert torch.equal(p, q), k
    states = list(zip(algo.policy.optimizer.state.values(), loaded.policy.optimizer.state.values()))
    assert states and all(torch.equal(s["exp_avg"], t["exp_avg"]) for s, t in states)
    assert loaded.evaluate(_seeded_test_env(), n_episodes=8, seed=5) == algo.evaluate(_seeded_test_env(),
                                                                                       n_episodes=8, seed=5)
    loaded.learn(iterations=1)
    assert (loaded.num_timesteps, loaded.iteration) == (24, 3)
    assert any(not torch.equal(p, q) for p, q in zip(algo.policy.parameters(), loaded.policy.parameters()))
    with pytest.raises(ValueError, match="SB3A2C checkpoint, not SB3PPO"):
        from textgym.agents import SB3PPO

        SB3PPO.load(tmp_path / "ckpt", _token_count(2))
