"""CUDA checks of bf16 mixed precision and FSDP (the CPU versions: tests/agents/test_precision.py, test_fsdp.py).

Marked ``gpu`` and skipped without CUDA; the FSDP checks need 2 GPUs (NCCL, one GPU per rank) and
are skipped otherwise, also under the CPU dry-run (``TEXTGYM_TEST_DEVICE=cpu``), where the bf16
check runs on the CPU.  Run on a GPU machine with ``python -m pytest tests/gpu -m gpu``.

* bf16 on the device: a PPO update with ``precision="bf16"`` is finite, its logprobs are within
  the hand-reasoned 0.02 of float32's (see test_precision.py; CUDA's bf16 matmuls accumulate in
  float32 like the CPU's), the first minibatch's ratio is 1, the weights stay float32;
* FSDP over 2 GPUs (``dist_fsdp_worker.py`` with ``TEXTGYM_FSDP_DEVICE=cuda``): the first step's
  gradient equals one process's on the CPU on the same episodes (1e-4: CUDA vs CPU kernels), the
  checkpoint loads in plain transformers, resume keeps weights and AdamW moments; ranks that decode
  different numbers of tokens (bf16 + FSDP) finish.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

DEVICE = os.environ.get("TEXTGYM_TEST_DEVICE", "cuda")
AGENTS = Path(__file__).parents[1] / "agents"

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                       reason="needs a CUDA GPU (TEXTGYM_TEST_DEVICE=cpu dry-runs these checks on the CPU)"),
]

two_gpus = pytest.mark.skipif(not DEVICE.startswith("cuda") or torch.cuda.device_count() < 2,
                              reason="FSDP over NCCL needs 2 GPUs (the CPU/gloo version: tests/agents/test_fsdp.py)")


def test_bf16_ppo_update_on_the_device():
    import gymnasium as gym

    from textgym.agents import PPO, PPOConfig
    from textgym.agents.common.updates import policy_forward

    env = gym.make_vec("textgym/TokenCount-v0", num_envs=8, vectorization_mode="vector_entry_point",
                       autoreset_mode="Disabled")
    algo = PPO("tiny-char", env, PPOConfig(seed=0, n_epochs=2, minibatch_size=4, precision="bf16", device=DEVICE,
                                           progress_bar=False, tensorboard=False))
    batch = algo.collect_rollouts()
    with torch.no_grad():
        lp16 = policy_forward(algo.collector, batch)
        algo.policy.precision = "fp32"
        lp32 = policy_forward(algo.collector, batch)
        algo.policy.precision = "bf16"
    m = lp32.mask
    assert float((lp16.logp - lp32.logp).abs()[m].max()) < 0.02
    assert lp16.logp.dtype == torch.float32 and lp16.processed.dtype == torch.float32
    metrics = algo.update(batch)
    assert algo.minibatch_log[0]["ratio_max_dev"] < 1e-3
    assert metrics["stats/skipped_steps"] == 0
    for key in ("loss/policy", "loss/value", "stats/approx_kl", "stats/grad_norm"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert all(p.dtype == torch.float32 and p.device.type == torch.device(DEVICE).type
               for p in algo.policy.trainable_parameters())


def _torchrun(mode: str, out_dir: Path) -> subprocess.CompletedProcess:
    from textgym.app.launch import free_port

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--max-restarts", "0",
           str(AGENTS / "dist_fsdp_worker.py"), mode, str(out_dir)]
    env = {**os.environ, "TEXTGYM_FSDP_DEVICE": "cuda", "TEXTGYM_DIST_TIMEOUT": "120", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@two_gpus
def test_fsdp_over_nccl_gradient_checkpoint_and_resume(tmp_path):
    res = _torchrun("grad", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    sys.path.insert(0, str(AGENTS))
    from dist_fsdp_worker import PPO, config, env_of
    from dist_worker import first_step_grad

    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert all(r0["sharded"][:-2]) and r0["resumed_sharded"]
    torch.testing.assert_close(r0["grad"], r1["grad"], rtol=0, atol=0)
    algo = PPO("tiny-char", env_of(16), config(device=None))  # one CPU process on both ranks' episodes
    g, _ = first_step_grad(algo, [r0["batch"], r1["batch"]])
    assert float((g - r0["grad"]).abs().max()) < 1e-4
    from transformers import AutoModelForCausalLM

    hf = dict(AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoint" / "policy").named_parameters())
    for n, w in r0["weights"].items():
        assert torch.equal(hf[n].detach(), w), n
        assert torch.equal(r0["resumed_weights"][n], w), n
    assert torch.equal(r0["resumed_exp_avg"], r0["exp_avg"])


@two_gpus
def test_fsdp_bf16_over_nccl_with_different_episode_lengths(tmp_path):
    res = _torchrun("lengths", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"lengths{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["lengths"] == [[2] * 4, [2] * 4] and r1["lengths"] == [[9] * 4, [9] * 4]
    assert all(m["stats/skipped_steps"] == 0 for m in r0["metrics"])
