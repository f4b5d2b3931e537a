"""LMActorCritic: padding-independent logprobs, cached decoding, action-space cut, reference without copies."""

from __future__ import annotations

import pytest
import torch

from agent_helpers import char_gpt2, tiny_char
from textgym.agents import LMActorCritic
from textgym.agents.common.policy import position_ids_from_mask


def left_pad(rows, pad=0):
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def response_logprobs(policy, ids, mask, n):
    with torch.no_grad():
        logits = policy.score(ids, mask, n).logits
    return torch.log_softmax(logits.double(), -1).gather(-1, ids[:, -n:, None]).squeeze(-1)


@pytest.mark.parametrize("build", [tiny_char, char_gpt2], ids=["llama", "gpt2"])
def test_logprobs_do_not_depend_on_left_padding(build):
    model, tok = build()
    policy = LMActorCritic(model, tok)
    prompts = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [15]]
    response = [20, 21, 22, 1]  # ends with EOS
    rows = [p + response for p in prompts]
    ids, mask = left_pad(rows)
    batched = response_logprobs(policy, ids, mask, len(response))
    for i, r in enumerate(rows):
        alone = response_logprobs(policy, torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long), len(response))
        torch.testing.assert_close(batched[i], alone[0], atol=1e-5, rtol=0)
    assert torch.equal(position_ids_from_mask(mask)[0], torch.tensor([0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6]))


@pytest.mark.parametrize("build", [tiny_char, char_gpt2], ids=["llama", "gpt2"])
def test_cached_decoding_matches_full_forward(build):
    model, tok = build()
    policy = LMActorCritic(model, tok)
    ids, mask = left_pad([[5, 6, 7], [8, 9, 10, 11, 12]])
    new = torch.tensor([[20, 21, 22], [23, 24, 25]])
    with torch.no_grad():
        out = policy.prefill(ids, mask)
        step_logits, step_values = [out.logits], [out.values]
        am = mask
        for t in range(new.shape[1]):
            am = torch.cat([am, torch.ones(2, 1, dtype=torch.long)], 1)
            out = policy.decode_step(new[:, t], am, out.cache)
            step_logits.append(out.logits)
            step_values.append(out.values)
        full = policy.score(torch.cat([ids, new], 1), am, new.shape[1])
    torch.testing.assert_close(torch.stack(step_logits[:-1], 1), full.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.stack(step_values, 1), full.values, atol=1e-5, rtol=0)


def test_logits_are_cut_to_the_action_space():
    model, tok = tiny_char()
    policy = LMActorCritic(model, tok, action_size=40)
    ids, mask = left_pad([[5, 6], [7]])
    with torch.no_grad():
        assert policy.prefill(ids, mask).logits.shape == (2, 40)
        assert policy.score(ids, mask, 1).logits.shape == (2, 1, 40)
        assert policy.reference_logits(ids, mask, 1).shape == (2, 1, 40)
    with pytest.raises(ValueError, match="larger than the model's vocabulary"):
        LMActorCritic(model, tok, action_size=58)


def test_reference_is_a_frozen_copy_without_lora():
    model, tok = tiny_char()
    policy = LMActorCritic(model, tok)
    ref_params = [p for _, p in policy.reference_parameters()]
    assert ref_params and all(not p.requires_grad for p in ref_params)
    trainable = {id(p) for p in policy.trainable_parameters()}
    assert not trainable & {id(p) for p in ref_params}  # the optimizer never sees the reference
    assert not {p.data_ptr() for p in ref_params} & {p.data_ptr() for p in policy.lm.parameters()}
    ids, mask = left_pad([[5, 6, 7, 8], [9, 10]])
    before = policy.reference_logits(ids, mask, 2).clone()
    with torch.no_grad():
        for p in policy.lm.parameters():
            p.add_(0.1)
    torch.testing.assert_close(policy.reference_logits(ids, mask, 2), before, rtol=0, atol=0)


def test_lora_reference_shares_the_base_weights():
    model, tok = tiny_char()
    policy = LMActorCritic(model, tok, lora={"r": 4, "lora_alpha": 8})
    assert policy.ref_model is None and policy.is_lora
    base_ptrs = {p.data_ptr() for n, p in policy.model.named_parameters() if "lora_" not in n}
    ref_ptrs = {p.data_ptr() for _, p in policy.reference_parameters()}
    assert ref_ptrs == base_ptrs  # no second copy: the reference reads the policy's base tensors
    trainable = policy.trainable_parameters()
    names = {id(p): n for n, p in policy.named_parameters()}
    assert all("lora_" in names[id(p)] or "value_head" in names[id(p)] for p in trainable)
    ids, mask = left_pad([[5, 6, 7, 8], [9, 10]])
    with torch.no_grad():
        pol = policy.score(ids, mask, 2).logits
    assert torch.equal(pol, policy.reference_logits(ids, mask, 2))  # exactly equal before any update


def test_starting_adapter_is_the_reference(tmp_path):
    model, tok = tiny_char()
    policy = LMActorCritic(model, tok, lora={"r": 4, "lora_alpha": 8})
    with torch.no_grad():
        for n, p in policy.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # an adapter that changes the model
    policy.model.save_pretrained(tmp_path / "adapter")
    ids, mask = left_pad([[5, 6, 7, 8], [9, 10]])
    with torch.no_grad():
        adapted = policy.score(ids, mask, 2).logits
        with policy.model.disable_adapter():
            bare = policy.score(ids, mask, 2).logits
    assert not torch.allclose(adapted, bare)

    base, _ = tiny_char()
    rl = LMActorCritic(base, tok, adapter=str(tmp_path / "adapter"))
    assert rl.has_reference_adapter
    with torch.no_grad():
        start = rl.score(ids, mask, 2).logits
    torch.testing.assert_close(start, adapted)
    assert torch.equal(rl.reference_logits(ids, mask, 2), start)  # the reference is the starting policy
    with torch.no_grad():  # train the adapter a bit: the reference stays the starting policy
        for p in rl.trainable_parameters():
            p.add_(0.05)
    torch.testing.assert_close(rl.reference_logits(ids, mask, 2), adapted)
    assert all(not p.requires_grad for n, p in rl.named_parameters() if ".reference." in n)
    assert {p.data_ptr() for n, p in rl.model.named_parameters() if "lora_" not in n} == {
        p.data_ptr() for n, p in rl.reference_parameters() if "lora_" not in n}


def test_dropout_stays_off():
    model, tok = char_gpt2(dropout=0.5)
    policy = LMActorCritic(model, tok)
    policy.train()  # even when asked: rollouts and updates must see one distribution
    assert not any(m.training for m in policy.modules())
    ids, mask = left_pad([[5, 6, 7, 8]])
    a = policy.score(ids, mask, 2).logits
    b = policy.score(ids, mask, 2).logits
    assert torch.equal(a, b)
