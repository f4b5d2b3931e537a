"""Frozen lower layers: the reference pass keeps their output (the trunk) and the update runs only the layers above.

The trunk path must be an optimisation only: the same logits, values, gradients and PPO update as running the
whole model, and it must apply only where the lower layers really are shared (LoRA above them, a supported
architecture).
"""

from __future__ import annotations

import pytest
import torch

from agent_helpers import char_env, char_gpt2, tiny_char
from algo_helpers import QUIET, params_of
from textgym.agents import LMActorCritic, RolloutCollector
from textgym.agents.algorithms.ppo import PPO, PPOConfig
from textgym.agents.common.rollout import RolloutBatch

TOP = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj", "gate_proj"], "layers_to_transform": [1]}


def top_lora_policy(seed=0):
    """tiny-char (a 2-layer Llama) with LoRA on layer 1 only, the adapter made non-zero (else it is a no-op)."""
    policy = LMActorCritic(*tiny_char(seed), lora=TOP)
    g = torch.Generator().manual_seed(seed)
    for name, p in policy.named_parameters():
        if "lora_B" in name:
            p.data.copy_(0.3 * torch.randn(p.shape, generator=g))
    return policy


def batch_of(n=3, s=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 50, (n, s), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a left-padded row
    return ids, mask


def test_frozen_layers_counts_only_shared_unadapted_layers():
    assert top_lora_policy().frozen_layers == 1
    assert LMActorCritic(*tiny_char(), lora={"r": 4}).frozen_layers == 0  # every layer adapted
    assert LMActorCritic(*tiny_char()).frozen_layers == 0  # full fine-tuning: nothing frozen
    gpt2 = LMActorCritic(*char_gpt2(), lora={"r": 4, "target_modules": ["c_attn"], "layers_to_transform": [1]})
    assert gpt2.frozen_layers == 0  # GPT-2 adds position embeddings to inputs_embeds: not supported


def test_reference_forward_returns_the_input_of_the_first_adapted_layer():
    policy = top_lora_policy()
    ids, mask = batch_of()
    logits, trunk = policy.reference_forward(ids, mask, 4)
    assert torch.equal(logits, policy.reference_logits(ids, mask, 4))
    with policy.reference_mode() as ref:
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = ref(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True).hidden_states
    assert trunk.shape == (3, 9, 64)
    assert torch.equal(trunk, hidden[1])  # hidden_states[1]: the output of layer 0 = the input of layer 1
    assert policy.reference_forward(ids, mask, 4)[1] is not None
    assert LMActorCritic(*tiny_char()).reference_forward(ids, mask, 4)[1] is None


def test_score_from_the_trunk_equals_the_whole_model_with_the_same_gradients():
    policy = top_lora_policy()
    ids, mask = batch_of()
    _, trunk = policy.reference_forward(ids, mask, 4)
    grads = []
    for t in (None, trunk):
        policy.zero_grad()
        out = policy.score(ids, mask, 4, trunk=t)
        (out.logits.logsumexp(-1).sum() + out.values.sum()).backward()
        grads.append({n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None})
        if t is None:
            full = out
        else:
            torch.testing.assert_close(out.logits, full.logits, atol=1e-6, rtol=0)
            torch.testing.assert_close(out.values, full.values, atol=1e-6, rtol=0)
    assert grads[0].keys() == grads[1].keys() and any("lora_" in n for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)
    assert len(policy.lm.model.layers) == 2  # the layer list is restored after the forward


def test_score_rejects_a_trunk_it_cannot_use():
    ids, mask = batch_of()
    with pytest.raises(ValueError, match="frozen lower layers"):
        LMActorCritic(*tiny_char()).score(ids, mask, 4, trunk=torch.zeros(3, 9, 64))
    with pytest.raises(ValueError, match="shape"):
        top_lora_policy().score(ids, mask, 4, trunk=torch.zeros(3, 8, 64))


def test_training_collector_keeps_the_trunk_and_evaluation_does_not():
    policy = top_lora_policy()
    env = char_env(6, stop_token_ids=list(range(1, 10)))
    b = RolloutCollector(policy, env, seed=0, keep_trunk=True).collect(seed=0)
    assert b.trunk is not None and b.trunk.shape == (6, 14, 64)
    with policy.reference_mode() as ref:
        pos = (b.attention_mask.cumsum(-1) - 1).clamp(min=0)
        hidden = ref(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=pos,
                     output_hidden_states=True).hidden_states[1]
    real = b.attention_mask.bool()  # the trunk holds the layer-0 output at every real token
    torch.testing.assert_close(b.trunk[real], hidden[real], atol=1e-6, rtol=0)
    assert RolloutCollector(policy, env, seed=0).collect(seed=0).trunk is None  # default: not kept
    sub = b.index(torch.tensor([4, 1]))
    assert torch.equal(sub.trunk, b.trunk[[4, 1]])
    assert RolloutBatch.cat([b, b.index(slice(0, 2))]).trunk.shape == (8, 14, 64)
    assert RolloutBatch.cat([b, b._replace(trunk=None)]).trunk is None


def make_ppo():
    torch.manual_seed(0)
    return PPO(top_lora_policy(), char_env(8, stop_token_ids=list(range(1, 10))),
               PPOConfig(learning_rate=1e-2, n_epochs=2, minibatch_size=4, seed=0, **QUIET))


def test_ppo_update_from_the_trunk_equals_the_update_of_the_whole_model():
    with_trunk, without = make_ppo(), make_ppo()
    without.collector.keep_trunk = False
    calls = []
    layer0 = with_trunk.policy.lm.model.layers[0]
    hook = layer0.register_forward_hook(lambda *a: calls.append(1))
    m_a = with_trunk.learn(iterations=2).logger.history
    hook.remove()
    m_b = without.learn(iterations=2).logger.history
    # layer 0 ran in generation (prefill + one per decoded token) and the reference pass only, never in an update
    assert len(calls) == 2 * (1 + 6 - 1 + 1)  # per rollout: prefill, 5 decode steps after the first token, reference
    for p, q in zip(params_of(with_trunk), params_of(without)):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)
    for k in ("loss/policy", "loss/value", "stats/approx_kl", "reward/score"):
        assert m_a[-1][k] == pytest.approx(m_b[-1][k], rel=1e-4, abs=1e-6), k
