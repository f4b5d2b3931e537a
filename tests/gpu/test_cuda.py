"""CUDA checks: every registered algorithm, LoRA, perplexity and the rollout scoring pass on a GPU.

Marked ``gpu`` and skipped without CUDA, so the default test run (CPU) skips
them.  Run on a GPU machine with ``python -m pytest tests/gpu -m gpu``.  To
dry-run the same code on the CPU (the device-vs-CPU comparisons then compare
CPU with CPU), set ``TEXTGYM_TEST_DEVICE=cpu``: CI (``.ci/run``) runs all of
them so, after the default suite (none needs CUDA to run; on the CPU,
``test_gpu_checkpoint_resumes_on_cpu`` checks a CPU checkpoint loaded with
``device="cpu"``, and the device-vs-CPU comparisons are exact).

What is checked, with the tiny presets (``tiny-char`` on
``textgym/TokenCount-v0``, ``tiny-llama`` on ``textgym/Copy-v0``):

* each algorithm of :func:`textgym.agents.algorithms.registry.list_algorithms` built with
  ``config.device``: 3 learn iterations with finite metrics and no skipped
  step, the weights moved, every policy tensor (LM, reference, value head,
  NLPO's masking LM) and the optimizer state on the device, ``evaluate`` /
  ``predict`` / ``generate``, and a ``save`` / ``load(device=...)`` round trip
  that reproduces the weights and the evaluation;
* PPO and NLPO with a LoRA adapter on the device; ``LMActorCritic``'s reference
  logits (adapter disabled) equal the base model's;
* :func:`textgym.agents.common.fluency.perplexity` on the device equals the CPU value;
* the scoring pass on the device gives the CPU rollout's logprobs, reference
  logprobs and values for the same fixed actions, and a device rollout's
  generation-time logprobs (KV cache) match its own scoring pass.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os

import numpy as np
import pytest
import torch

DEVICE = os.environ.get("TEXTGYM_TEST_DEVICE", "cuda")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                       reason="needs a CUDA GPU (TEXTGYM_TEST_DEVICE=cpu dry-runs these checks on the CPU)"),
]

QUIET = dict(progress_bar=False, tensorboard=False)

#: per-algorithm settings for a quick run (3 iterations, 8 envs); unknown names run with the defaults
SETTINGS: dict[str, dict] = {
    "ppo": dict(n_epochs=2, minibatch_size=4),
    "nlpo": dict(n_epochs=1, mask_update_interval=2),  # the masking policy is refreshed within the 3 iterations
    "reinforce": {},
    "a2c": {},
    "rloo": dict(group_size=4),
    "grpo": dict(group_size=4, n_epochs=2, minibatch_size=4),
    "sb3-ppo": dict(n_steps=8, batch_size=16, n_epochs=2),
    "sb3-a2c": dict(n_steps=4),
}

#: metrics that may legitimately be NaN (zero variance of the returns)
MAY_BE_NAN = ("stats/explained_variance",)


def token_count_env(num_envs: int = 8, split: str = "train"):
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the ids)

    return gym.make_vec("textgym/TokenCount-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="Disabled", split=split)


def eval_env(seed: int = 0, num_envs: int = 8):
    """A test-split env whose sample order is seeded (``evaluate`` resets it without a seed and continues it)."""
    env = token_count_env(num_envs, "test")
    env.reset(seed=seed)
    return env


def copy_env_llama(num_envs: int = 4):
    import gymnasium as gym

    import textgym  # noqa: F401

    return gym.make_vec("textgym/Copy-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="Disabled", tokenizer="tiny-llama", max_length=4)


def lm_policy_of(algo):
    """The :class:`LMActorCritic` of a textgym algorithm or an SB3 adapter."""
    return getattr(algo.policy, "lm_policy", algo.policy)


def off_device(named_tensors) -> list[str]:
    want = torch.device(DEVICE).type
    return [name for name, t in named_tensors if t.device.type != want]


def assert_policy_on_device(algo) -> None:
    """LM, reference, value head (and NLPO's masking LM), and the optimizer state all on ``DEVICE``."""
    lm = lm_policy_of(algo)
    bad = off_device(itertools.chain(algo.policy.named_parameters(), algo.policy.named_buffers()))
    assert not bad, f"on another device than {DEVICE}: {bad[:5]}"
    assert lm.value_head.weight.device.type == torch.device(DEVICE).type
    assert lm.device.type == torch.device(DEVICE).type
    if lm.ref_model is not None:
        assert not off_device(lm.ref_model.named_parameters())
    mask_lm = getattr(getattr(algo, "masking_policy", None), "lm", None)
    if mask_lm is not None:
        assert not off_device(mask_lm.named_parameters())
    optimizer = getattr(algo, "optimizer", None) or algo.policy.optimizer
    state = [(f"{i}.{k}", v) for i, s in enumerate(optimizer.state.values()) for k, v in s.items()
             if isinstance(v, torch.Tensor) and k != "step"]
    assert state, "the optimizer has no state after training"
    assert not off_device(state)


def assert_finite_row(row: dict) -> None:
    bad = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
           and k not in MAY_BE_NAN and not math.isfinite(v)}
    assert not bad, bad


def make_algo(name: str, env, policy: str = "tiny-char", **overrides):
    from textgym.agents.algorithms.registry import get_algorithm

    cls = get_algorithm(name)
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    assert "device" in fields, f"{cls.config_class.__name__} has no device field"
    kw = {"seed": 0, "learning_rate": 1e-3, "device": DEVICE, **QUIET, **SETTINGS.get(name, {}), **overrides}
    return cls(policy, env, cls.config_class(**kw))


def _algorithms() -> list[str]:
    from textgym.agents.algorithms.registry import list_algorithms

    return list_algorithms()


# ---------------------------------------------------------------------------------------------- algorithms
@pytest.mark.parametrize("name", _algorithms())
def test_algorithm_trains_evaluates_and_round_trips_on_device(name, tmp_path):
    algo = make_algo(name, token_count_env())
    assert not off_device(itertools.chain(algo.policy.named_parameters(), algo.policy.named_buffers()))
    before = [p.detach().clone() for p in lm_policy_of(algo).trainable_parameters()]

    # 1. three learn iterations: finite metrics, no skipped optimizer step, the weights moved
    algo.learn(iterations=3)
    rows = algo.logger.history
    assert len(rows) == 3
    for row in rows:
        assert_finite_row(row)
        assert row.get("stats/skipped_steps", 0.0) == 0.0, row
    assert "loss/policy" in rows[-1] and "time/rollout" in rows[-1]
    after = lm_policy_of(algo).trainable_parameters()
    assert any(not torch.equal(p, q) for p, q in zip(before, after)), "no trainable weight changed"
    assert_policy_on_device(algo)

    # 2. evaluate / predict / generate
    ev = algo.evaluate(eval_env(1), n_episodes=8, seed=5)
    assert_finite_row(ev)
    assert ev["n_episodes"] == 8 and 0.0 <= ev["score_mean"] <= 1.0 and ev["length_mean"] >= 1
    obs, _ = token_count_env(4, "test").reset(seed=0)
    actions, _ = algo.predict(obs, deterministic=True)
    assert actions.shape == (4,) and ((0 <= actions) & (actions < algo.env.vocab_size)).all()
    if hasattr(algo, "generate"):
        texts = algo.generate(["count:3=", "count:5="], greedy=True)
        assert len(texts) == 2 and all(isinstance(t, str) for t in texts)

    # 3. save / load on the device: same weights, same evaluation (same seed, same prompts)
    algo.save(tmp_path / "ckpt")
    ev_a = algo.evaluate(eval_env(2), n_episodes=8, seed=7)
    loaded = type(algo).load(tmp_path / "ckpt", token_count_env(), device=DEVICE)
    assert loaded.iteration == 3
    assert_policy_on_device(loaded)
    for p, q in zip(lm_policy_of(algo).state_dict().values(), lm_policy_of(loaded).state_dict().values()):
        torch.testing.assert_close(q, p, rtol=0, atol=0)
    ev_b = loaded.evaluate(eval_env(2), n_episodes=8, seed=7)
    assert ev_b == pytest.approx(ev_a, rel=1e-5, abs=1e-6)
    algo.close()
    loaded.close()


def test_ppo_resume_on_device_continues_the_run(tmp_path):
    """Save after 2 iterations on the device, load on the device: the 3rd iteration matches the uninterrupted one
    (CUDA's sampling generator, global RNGs and the optimizer state restored; atomics in the embedding backward
    allow float-level differences)."""
    a = make_algo("ppo", token_count_env())
    a.learn(iterations=2)
    a.save(tmp_path / "ckpt")
    m_a = a.train_step()
    b = type(a).load(tmp_path / "ckpt", token_count_env(), device=DEVICE)
    m_b = b.train_step()
    for k, v in m_a.items():
        if not k.startswith("time/") and isinstance(v, float) and not math.isnan(v):
            assert m_b[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
    for p, q in zip(a.policy.trainable_parameters(), b.policy.trainable_parameters()):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-4)


def test_gpu_checkpoint_resumes_on_cpu(tmp_path):
    """A checkpoint written on the device loads with ``device="cpu"`` and gives the same evaluation."""
    a = make_algo("ppo", token_count_env())
    a.learn(iterations=1)
    a.save(tmp_path / "ckpt")
    ev_a = a.evaluate(eval_env(2), n_episodes=8, seed=7, greedy=True)
    b = type(a).load(tmp_path / "ckpt", token_count_env(), device="cpu")
    assert b.policy.device.type == "cpu"
    assert all(v.device.type == "cpu" for s in b.optimizer.state.values() for v in s.values()
               if isinstance(v, torch.Tensor))
    ev_b = b.evaluate(eval_env(2), n_episodes=8, seed=7, greedy=True)
    # greedy: the same tokens unless two logits tie within float noise; the KL estimates are float-close
    assert ev_b["score_mean"] == pytest.approx(ev_a["score_mean"], abs=1e-6)
    assert ev_b["length_mean"] == pytest.approx(ev_a["length_mean"], abs=1e-6)
    b.learn(iterations=1)
    assert_finite_row(b.logger.history[-1])


# ---------------------------------------------------------------------------------------------- LoRA
def _perturb_lora(policy, std: float = 0.5, seed: int = 0) -> None:
    """LoRA's B matrices start at 0 (adapter = identity); random ones make the policy differ from the base."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def _prompts(tok, texts, extra: list[int]):
    """Left-padded prompts with ``extra`` tokens appended to every row: ``(ids, mask)`` on the device."""
    tok.padding_side = "left"
    enc = tok(texts, padding=True, return_tensors="pt")
    tail = torch.tensor(extra, dtype=torch.long).expand(len(texts), -1)
    ids = torch.cat([enc["input_ids"], tail], 1)
    am = torch.cat([enc["attention_mask"], torch.ones_like(tail)], 1)
    return ids.to(DEVICE), am.to(DEVICE)


def test_lora_reference_logits_equal_the_base_model_on_device():
    from textgym.agents.common.policy import LMActorCritic, position_ids_from_mask
    from textgym.models import load

    base, tok = load("tiny-llama", seed=0)
    base_copy = copy.deepcopy(base).to(DEVICE).eval()
    policy = LMActorCritic(base, tok, lora={"r": 4, "lora_alpha": 8}).to(DEVICE)
    _perturb_lora(policy)
    assert not off_device(itertools.chain(policy.named_parameters(), policy.named_buffers()))
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("value_head") for n in trainable), trainable
    assert policy.ref_model is None  # the reference is the base with the adapter disabled

    t = 3
    ids, am = _prompts(tok, ["hello world, this is", "a", "the cat sat on the"], [11, 22, 33])
    ref = policy.reference_logits(ids, am, t)  # (N, t, V)
    with torch.no_grad():
        want = base_copy(input_ids=ids, attention_mask=am, position_ids=position_ids_from_mask(am)).logits
    want = want[:, -t - 1 : -1, : policy.action_size]
    assert ref.shape == want.shape == (3, t, policy.action_size)
    torch.testing.assert_close(ref, want, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        own = policy.score(ids, am, t).logits
    assert float((own - want).abs().max()) > 1e-2, "the perturbed adapter should change the policy's logits"


@pytest.mark.parametrize("name", ["ppo", "nlpo"])
def test_lora_algorithm_on_device(name):
    """tiny-llama with a LoRA adapter on Copy-v0 (NLPO adds its masking adapter after the move to the device)."""
    algo = make_algo(name, copy_env_llama(), policy="tiny-llama", lora={"r": 4, "lora_alpha": 8},
                     learning_rate=1e-2)
    assert algo.policy.is_lora
    before = {n: p.detach().clone() for n, p in algo.policy.named_parameters() if p.requires_grad}
    algo.learn(iterations=2)
    for row in algo.logger.history:
        assert_finite_row(row)
        assert row["stats/skipped_steps"] == 0.0
    assert_policy_on_device(algo)
    moved = [n for n, p in algo.policy.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert any("lora_" in n for n in moved), moved
    assert_finite_row(algo.evaluate(copy_env_llama(), n_episodes=4, seed=1))


# ---------------------------------------------------------------------------------------------- perplexity
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello world", "a",
         "Reinforcement learning from human feedback fine-tunes language models with a reward model.",
         "Numbers 1 2 3 and symbols !?"]


def test_perplexity_on_device_equals_cpu():
    from textgym.agents.common.fluency import perplexity
    from textgym.agents.common.policy import LMActorCritic
    from textgym.models import load

    model, tok = load("tiny-llama", seed=0)
    on_cpu = perplexity(model, tok, TEXTS, max_length=32, batch_size=2)
    on_dev = perplexity(copy.deepcopy(model).to(DEVICE), tok, TEXTS, max_length=32, batch_size=2)
    assert math.isfinite(on_cpu) and on_cpu > 1.0
    assert on_dev == pytest.approx(on_cpu, rel=1e-3)
    # through the policy wrapper, and with the device given explicitly
    policy = LMActorCritic(copy.deepcopy(model), tok).to(DEVICE)
    assert perplexity(policy, None, TEXTS, max_length=32, batch_size=3) == pytest.approx(on_cpu, rel=1e-3)
    assert perplexity(model, tok, TEXTS, max_length=32, device=DEVICE) == pytest.approx(on_cpu, rel=1e-3)


# ---------------------------------------------------------------------------------------------- rollouts
@pytest.mark.parametrize("sampling", [dict(), dict(temperature=0.7, top_k=20, top_p=0.9)], ids=["plain", "topk-topp"])
def test_scoring_on_device_matches_cpu_rollout(sampling):
    from textgym.agents.common.policy import LMActorCritic
    from textgym.agents.common.rollout import RolloutCollector
    from textgym.agents.common.sampling import SamplingParams

    env_cpu = token_count_env(8)
    cpu = LMActorCritic.from_pretrained("tiny-char", action_size=env_cpu.unwrapped.vocab_size, seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move the policy away from its reference so the KL is not 0
        for p in cpu.lm.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        cpu.value_head.weight.normal_(std=0.5, generator=gen)
    dev = copy.deepcopy(cpu).to(DEVICE)
    sp = SamplingParams(**sampling)

    # 1. a CPU rollout, then the device's scoring pass on the same fixed actions
    b = RolloutCollector(cpu, env_cpu, sp, seed=3).collect(seed=11)
    col_dev = RolloutCollector(dev, token_count_env(8), sp, seed=3)
    lp, values, boot, ref = col_dev.score(b.input_ids, b.attention_mask, b.actions, b.mask)
    assert lp.device.type == "cpu" and lp.shape == b.logprobs.shape
    torch.testing.assert_close(lp, b.logprobs, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ref, b.ref_logprobs, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(values, b.values, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.where(b.truncated, boot, 0.0), b.bootstrap_values, atol=1e-4, rtol=1e-4)
    assert float((b.logprobs - b.ref_logprobs).abs().max()) > 1e-3  # a real KL, not a trivial 0 = 0

    # 2. a device rollout: finite, and its KV-cached generation logprobs match its own scoring pass
    d = col_dev.collect(seed=11)
    for t in (d.logprobs, d.ref_logprobs, d.values, d.scores, d.bootstrap_values):
        assert t.device.type == "cpu" and bool(torch.isfinite(t).all())
    assert bool((d.lengths >= 1).all()) and bool(((d.scores > 0) & (d.scores <= 1)).all())
    assert col_dev.last_logprob_mismatch < 1e-4
    assert bool((d.logprobs[d.mask] <= 0).all()) and bool((d.logprobs[~d.mask] == 0).all())
    # with the same generator seed the device samples are reproducible
    d2 = RolloutCollector(dev, token_count_env(8), sp, seed=3).collect(seed=11)
    assert torch.equal(d.actions, d2.actions)
    np.testing.assert_allclose(d.scores.numpy(), d2.scores.numpy())
