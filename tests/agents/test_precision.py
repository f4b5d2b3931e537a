"""bf16 mixed precision (agents/common/precision.py): autocast forwards, float32 weights and loss math.

Tolerance of the bf16 logprobs (hand-reasoned): bf16 keeps 8 significant bits, so a
rounding to bf16 has a relative error <= 2^-9 and the logits, which come out of the LM
head in bf16, carry an absolute rounding error <= half an ulp = 2^-8 ~ 0.004 for
|z| in [1, 2) (the test checks |z| < 2).  The inputs of each of the ~10 matrix
products upstream are rounded the same way (accumulation is float32), which adds an
error of the same order, say another ~0.006 in the logits.  A logprob is
``z_a - logsumexp(z)``, whose error is ``dz_a - sum_j p_j dz_j``, at most
``2 max |dz| ~ 2 (0.004 + 0.006) = 0.02``.  Measured on tiny-char: 0.0017.
"""

import gymnasium as gym
import pytest
import torch

from textgym.agents import PPO, NLPO, NLPOConfig, PPOConfig
from textgym.agents.common import fsdp
from textgym.agents.common.precision import autocast, resolve_precision
from textgym.agents.common.updates import policy_forward

BF16_LOGP_TOL = 0.02  # see the module docstring

QUIET = dict(progress_bar=False, tensorboard=False)


def token_count_env(num_envs=8):
    return gym.make_vec("textgym/TokenCount-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="Disabled")


def test_bf16_ppo_update_is_finite_and_close_to_fp32():
    algo = PPO("tiny-char", token_count_env(), PPOConfig(seed=0, n_epochs=2, minibatch_size=4, precision="bf16", **QUIET))
    assert algo.policy.precision == "bf16"
    assert all(p.dtype == torch.float32 for p in algo.policy.parameters())  # fp32 master weights
    batch = algo.collect_rollouts()
    with torch.no_grad():
        out = algo.policy.score(batch.input_ids, batch.attention_mask, batch.mask.shape[1])
        assert out.logits.dtype == torch.float32 and out.values.dtype == torch.float32  # upcast for the loss math
        assert float(out.logits.abs().max()) < 2.0  # the range the tolerance was reasoned for
        lp16 = policy_forward(algo.collector, batch)
        algo.policy.precision = "fp32"
        lp32 = policy_forward(algo.collector, batch)
        algo.policy.precision = "bf16"
    m = lp32.mask
    diff = (lp16.logp - lp32.logp).abs()[m]
    assert 0 < float(diff.max()) < BF16_LOGP_TOL  # bf16 did run (not bit-identical) and stays within the bound
    # the rollout's scoring pass ran under bf16 too: the first minibatch's ratio is 1 up to float noise
    torch.testing.assert_close(batch.logprobs[:, :lp16.t][m], lp16.logp[m], rtol=0, atol=1e-3)
    before = [p.detach().clone() for p in algo.policy.trainable_parameters()]
    metrics = algo.update(batch)
    assert algo.minibatch_log[0]["ratio_max_dev"] < 1e-3
    for key in ("loss/policy", "loss/value", "stats/approx_kl", "stats/grad_norm", "stats/entropy"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert metrics["stats/skipped_steps"] == 0 and metrics["stats/grad_norm"] > 0
    moved = max(float((a - b.detach()).abs().max()) for a, b in zip(before, algo.policy.trainable_parameters()))
    assert moved > 0
    assert all(p.dtype == torch.float32 for p in algo.policy.trainable_parameters())


def test_autocast_is_a_no_op_for_fp32():
    x = torch.randn(3, 4)
    w = torch.randn(4, 2)
    with autocast("cpu", "fp32"):
        assert (x @ w).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert (x @ w).dtype == torch.bfloat16


def test_precision_and_strategy_from_accelerate_env(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    assert resolve_precision(None) == "fp32" and fsdp.resolve_strategy(None) == "ddp"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # accelerate launch --mixed_precision bf16
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # accelerate launch --config_file examples/accelerate/fsdp.yaml
    assert resolve_precision(None) == "bf16" and fsdp.resolve_strategy(None) == "fsdp"
    assert resolve_precision("fp32") == "fp32" and fsdp.resolve_strategy("ddp") == "ddp"  # the config wins
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    with pytest.raises(ValueError, match="ACCELERATE_MIXED_PRECISION='fp16'.*not supported"):
        resolve_precision(None)
    monkeypatch.setenv("FSDP_OFFLOAD_PARAMS", "true")
    with pytest.raises(ValueError, match="fsdp_offload_params"):
        fsdp.resolve_strategy(None)


@pytest.mark.parametrize("field,value,msg", [("precision", "fp16", "precision must be one of"),
                                             ("strategy", "zero3", "strategy must be one of")])
def test_bad_values_fail_in_the_config(field, value, msg):
    with pytest.raises(ValueError, match=msg):
        PPOConfig(**{field: value})


def test_fsdp_rejects_lora_and_nlpo():
    with pytest.raises(ValueError, match="strategy fsdp shards full fine-tuning only"):
        PPO("tiny-char", token_count_env(), PPOConfig(strategy="fsdp", lora=True, **QUIET))
    with pytest.raises(ValueError, match="NLPO does not support strategy fsdp"):
        NLPO("tiny-char", token_count_env(), NLPOConfig(strategy="fsdp", **QUIET))


def test_fsdp_in_one_process_is_plain_training():
    algo = PPO("tiny-char", token_count_env(4), PPOConfig(seed=1, strategy="fsdp", n_epochs=1, **QUIET))
    assert algo.strategy == "fsdp" and not fsdp.is_sharded(algo.policy)
    ref = PPO("tiny-char", token_count_env(4), PPOConfig(seed=1, n_epochs=1, **QUIET))
    algo.learn(iterations=1)
    ref.learn(iterations=1)
    for a, b in zip(algo.policy.trainable_parameters(), ref.policy.trainable_parameters()):
        assert torch.equal(a, b)


def test_cli_rejects_a_bad_precision(capsys):
    from textgym.app.cli import main

    assert main(["train", "examples/configs/synthetic_ppo.yaml", "--set", "algo.precision=fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "precision must be one of" in err[0], err
