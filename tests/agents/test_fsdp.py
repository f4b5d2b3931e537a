"""FSDP full fine-tuning (agents/common/fsdp.py): 2 CPU processes (gloo) against one process.

The 2-process runs go through ``python -m torch.distributed.run`` (``dist_fsdp_worker.py``); the
single-process reference runs here on the union of the ranks' batches, as in ``test_distributed.py``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from textgym.app.launch import free_port

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from dist_fsdp_worker import PPO, build_other, config, env_of  # noqa: E402
from dist_worker import first_step_grad  # noqa: E402


def torchrun(mode, out_dir, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--max-restarts", "0",
           str(HERE / "dist_fsdp_worker.py"), mode, str(out_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEXTGYM_DIST_TIMEOUT": "60"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_fsdp_gradient_clipping_checkpoint_and_resume(tmp_path):
    """PPO with the LM and reference sharded over 2 ranks x 8 episodes: the gradient of the first step
    equals one unsharded process's on the same 16 episodes (1e-6), so does the clipped global grad norm;
    the checkpoint is a plain Hugging Face folder with the trained weights; resuming it shards again
    with the same weights and AdamW moments, and one process resumes it too."""
    res = torchrun("grad", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world_size"] == 2
    assert all(r0["sharded"][:-2]) and not any(r0["sharded"][-2:])  # LM sharded, value head (weight, bias) not
    assert r0["ref_sharded"] and r0["resumed_sharded"]
    torch.testing.assert_close(r0["grad"], r1["grad"], rtol=0, atol=0)
    # one process, no FSDP, on both ranks' episodes
    algo = PPO("tiny-char", env_of(16), config())
    g, ref = first_step_grad(algo, [r0["batch"], r1["batch"]])
    assert float(g.abs().max()) > 1e-3  # a real gradient
    assert float((g - r0["grad"]).abs().max()) < 1e-6
    m0 = r0["metrics"][0]
    assert ref["stats/grad_norm"] > 1.0  # max_grad_norm=1 clipped it
    assert abs(m0["stats/grad_norm"] - ref["stats/grad_norm"]) < 1e-5
    assert m0["train/episodes"] == 16
    # the clipped step: the FSDP weights equal one process's (AdamW's first step ~ lr * sign(g))
    for n, p in algo.policy.lm.named_parameters():
        assert float((p.detach() - r0["weights"][n]).abs().max()) < 1e-4, n
    # the checkpoint: a plain transformers folder with the gathered weights
    from transformers import AutoModelForCausalLM

    hf = dict(AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoint" / "policy").named_parameters())
    for n, w in r0["weights"].items():
        assert torch.equal(hf[n].detach(), w), n
    for n, w in r0["weights"].items():  # resumed with FSDP: same weights and optimizer moments
        assert torch.equal(r0["resumed_weights"][n], w), n
    assert torch.equal(r0["resumed_exp_avg"], r0["exp_avg"]) and float(r0["exp_avg"].abs().max()) > 0
    assert r0["resumed_iteration"] == 1
    one = PPO.load(tmp_path / "checkpoint", env_of(8), run_dir=None)  # the same checkpoint in one process
    q = one.policy.lm.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(one.optimizer.state[q]["exp_avg"], r0["exp_avg"])
    one.learn(iterations=1)
    assert one.iteration == 2


@pytest.mark.slow  # ~40 s
def test_fsdp_gradient_equals_one_process_for_grpo_and_reinforce(tmp_path):
    """GRPO (groups of 4 within each rank, micro-batches of 4 rows: several backward passes, each a
    reduce-scatter) and REINFORCE (one step, generation-time logprobs) with FSDP: the first step's gradient equals one process's on both ranks' episodes."""
    res = torchrun("others", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("grpo", "reinforce"):
        r0, r1 = (torch.load(tmp_path / f"{name}_rank{r}.pt", weights_only=False) for r in (0, 1))
        torch.testing.assert_close(r0["grad"], r1["grad"], rtol=0, atol=0)
        algo = build_other(name, None)
        ref, metrics = first_step_grad(algo, [r0["batch"], r1["batch"]])
        assert float(ref.abs().max()) > 1e-4, name
        assert float((ref - r0["grad"]).abs().max()) < 1e-6, name
        assert abs(metrics["reward/score"] - r0["metrics"][0]["reward/score"]) < 1e-6


@pytest.mark.slow  # ~35 s on a busy 2-core machine
def test_fsdp_ranks_with_different_episode_lengths_do_not_hang(tmp_path):
    """Rank 0 decodes 2 tokens, rank 1 decodes 9 (bf16 + FSDP): 2 iterations, evaluate and generate finish,
    because the rollouts run on gathered weights (without it the collectives mismatch and the job fails)."""
    res = torchrun("lengths", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"lengths{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["lengths"] == [[2] * 4, [2] * 4] and r1["lengths"] == [[9] * 4, [9] * 4]
    for m in r0["metrics"] + r1["metrics"]:
        assert m["stats/episode_length"] == 5.5  # the global mean of 2 and 9
        assert m["stats/skipped_steps"] == 0 and torch.isfinite(torch.tensor(m["loss/total"]))
    assert len(r0["texts"]) == 1 and len(r1["texts"]) == 2
    assert r0["eval"]["n_episodes"] == 4 == r1["eval"]["n_episodes"]


@pytest.mark.slow  # ~40 s
def test_accelerate_launch_with_the_fsdp_bf16_config_runs_the_pipeline(tmp_path):
    """``accelerate launch --config_file examples/accelerate/fsdp_bf16.yaml -m textgym train``: the run
    records strategy fsdp and precision bf16, evaluates during and after training (rank 0 on gathered
    weights) and leaves a checkpoint that plain transformers loads."""
    root = Path(__file__).parents[2]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(root / "examples" / "accelerate" / "fsdp_bf16.yaml"), "--main_process_port", str(free_port()),
           "-m", "textgym", "train", str(root / "examples" / "configs" / "synthetic_ppo.yaml"),
           "--runs-dir", str(tmp_path), "--set", "train.iterations=4", "--set", "train.save_every=2",
           "--set", "eval.every=2", "--set", "eval.n_episodes=8"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "TEXTGYM_DIST_TIMEOUT": "120"})
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    run = tmp_path / "synthetic-ppo"
    resolved = json.loads((run / "config.json").read_text())
    assert (resolved["strategy"], resolved["precision"], resolved["num_processes"]) == ("fsdp", "bf16", 2)
    assert [r.split(",")[1] for r in (run / "eval.csv").read_text().splitlines()[1:]] == ["before", "train", "after"]
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(run / "checkpoint" / "policy")
    assert all(torch.isfinite(p).all() for p in hf.parameters())
