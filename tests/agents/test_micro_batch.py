"""``micro_batch_size="auto"``: the activation estimate, the choice from the budget, and an unchanged update."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from agent_helpers import char_env, tiny_char
from textgym.agents import PPO, LMActorCritic, PPOConfig
from textgym.agents.algorithms.grpo import GRPOConfig
from textgym.agents.common.micro_batch import (ModelDims, activation_bytes_per_row, auto_micro_batch_size,
                                               model_dims, resolve_micro_batch_size)

QUIET = dict(progress_bar=False, tensorboard=False)


def test_activation_estimate_by_hand():
    dims = ModelDims(num_layers=2, hidden_size=4, intermediate_size=8, vocab_size=10, dtype_bytes=4)
    # per layer and token 8*4 + 4*8 = 64 -> 2 layers x 5 tokens x 64 = 640; logits 3 x 3 slots x 10 = 90
    assert activation_bytes_per_row(dims, seq_len=5, new_tokens=3) == 4 * (640 + 90) == 2920


def test_smollm2_estimate_and_choice_at_the_memory_benchmark_setting():
    """SmolLM2-135M (30 layers, 576 wide, MLP 1536, 49,152 tokens), fp32, P = 64, T = 32: 136.1 MiB per episode,
    so the default 256 MiB budget takes one episode per forward/backward (benchmarks/memory.py's setting)."""
    cfg = SimpleNamespace(num_hidden_layers=30, hidden_size=576, intermediate_size=1536, vocab_size=49152)
    model = SimpleNamespace(config=cfg, parameters=lambda: iter([torch.zeros(1)]))
    dims = model_dims(model)
    assert dims == ModelDims(30, 576, 1536, 49152, 4)
    per_row = activation_bytes_per_row(dims, 96, 32)
    assert per_row == 4 * (30 * 96 * (8 * 576 + 4 * 1536) + 3 * 32 * 49152) == 142_737_408
    assert auto_micro_batch_size(256, per_row) == 1
    assert auto_micro_batch_size(1024, per_row) == 7  # floor(1024 MiB / 136.1 MiB)
    assert auto_micro_batch_size(1, per_row) == 1  # never fewer than one row


def test_gpt2_style_config_defaults_the_mlp_width_to_4d():
    cfg = SimpleNamespace(n_layer=2, n_embd=8, n_inner=None, vocab_size=11)
    model = SimpleNamespace(config=cfg, parameters=lambda: iter([torch.zeros(1, dtype=torch.bfloat16)]))
    assert model_dims(model) == ModelDims(2, 8, 32, 11, 2)
    assert model_dims(SimpleNamespace()) is None


def test_explicit_values_are_kept_and_auto_is_logged_once(caplog):
    env = char_env(8)
    lm = LMActorCritic(*tiny_char()).lm
    assert resolve_micro_batch_size(PPOConfig(micro_batch_size=3, **QUIET), lm, env) == 3
    assert resolve_micro_batch_size(PPOConfig(micro_batch_size=None, **QUIET), lm, env) is None
    with caplog.at_level(logging.INFO, logger="textgym.agents"):
        algo = PPO(LMActorCritic(*tiny_char()), env, PPOConfig(**QUIET))
        algo.train_step()
    notes = [r.getMessage() for r in caplog.records if "micro_batch_size='auto'" in r.getMessage()]
    assert len(notes) == 1 and "budget micro_batch_memory_mb=256" in notes[0]
    assert algo.micro_batch_size >= 8  # a tiny model: the whole batch in one pass, as micro_batch_size=None


def test_auto_with_a_small_budget_gives_the_same_update_as_the_whole_batch():
    """A budget of one episode: 8 single-episode backwards, accumulated, give the whole-batch update."""
    runs = {}
    for name, extra in (("whole", {"micro_batch_size": None}), ("auto", {"micro_batch_memory_mb": 1e-6})):
        algo = PPO(LMActorCritic(*tiny_char()), char_env(8, stop_token_ids=list(range(1, 10))),
                   PPOConfig(learning_rate=1e-3, n_epochs=1, **QUIET, **extra))
        algo.train_step()
        runs[name] = algo
    assert runs["auto"].micro_batch_size == 1 and runs["whole"].micro_batch_size is None
    for p, q in zip(runs["whole"].policy.trainable_parameters(), runs["auto"].policy.trainable_parameters()):
        # atol 1e-5: Adam's first step is lr * g / (|g| + eps), so a gradient element near eps (1e-8) turns the
        # float noise of summing 8 backwards instead of one into up to ~1e-6 of the step (2.9e-6 seen once)
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)


def test_config_errors():
    with pytest.raises(ValueError, match="micro_batch_size must be an integer >= 1, 'auto' or None"):
        PPOConfig(micro_batch_size="big")
    with pytest.raises(ValueError, match="micro_batch_size must be an integer >= 1, 'auto' or None"):
        GRPOConfig(micro_batch_size=0)
    with pytest.raises(ValueError, match="micro_batch_memory_mb must be a number of MiB > 0"):
        PPOConfig(micro_batch_memory_mb=0)
    assert PPOConfig().micro_batch_size == "auto" and GRPOConfig().micro_batch_size == "auto"
