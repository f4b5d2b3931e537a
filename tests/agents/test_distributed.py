"""Data-parallel training (agents/common/distributed.py): 2 CPU processes (gloo) against one process.

The 2-process runs go through ``python -m torch.distributed.run`` (``dist_worker.py``), rendezvousing
over TCP on 127.0.0.1; the single-process reference runs here on the union of the ranks' batches.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from textgym.agents.common import distributed
from textgym.app.launch import free_port

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from dist_worker import build, first_step_grad  # noqa: E402


def torchrun(args, out_dir, nproc=2, timeout=600):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--max-restarts", "0",
           str(HERE / "dist_worker.py"), *args[:2], str(out_dir), *args[2:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEXTGYM_DIST_TIMEOUT": "60"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_rank_seed_distinct_and_reproducible():
    assert distributed.rank_seed(7, 0) == 7  # one process: unchanged
    seeds = [distributed.rank_seed(7, r) for r in range(4)]
    assert len(set(seeds)) == 4
    assert seeds == [distributed.rank_seed(7, r) for r in range(4)]
    assert distributed.rank_seed(8, 1) != distributed.rank_seed(7, 1)
    assert distributed.rank() == 0 and distributed.world_size() == 1 and not distributed.enabled()


def test_one_process_helpers_are_the_local_computation():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    m = torch.tensor([[True, True, True], [True, False, False]])
    # mean 2.5, unbiased var 5/3 over the 4 real entries
    expected = torch.tensor([[-1.5, -0.5, 0.5], [1.5, 0.0, 0.0]]) / (5 / 3 + 1e-8) ** 0.5
    torch.testing.assert_close(distributed.masked_whiten(x, m), expected)
    assert distributed.reduce_metrics({"a": 1.5, "s": "k1"}) == {"a": 1.5, "s": "k1"}
    assert float(distributed.all_sum(3.0)) == 3.0


def single_process_grad(name, batches, num_envs):
    """The first optimizer step's gradient of one process updating on ``batches`` concatenated."""
    return first_step_grad(build(name, num_envs, None), batches)


def test_two_ranks_gradient_equals_one_process_on_the_union(tmp_path):
    """PPO (GAE, global whitening, adaptive KL) and GRPO (groups of 4 within each rank): 2 ranks x 8
    episodes give the gradient of one process on the same 16 episodes; seeds differ per rank;
    metrics are global; rank 0 alone writes."""
    res = torchrun(["ppo,grpo", "8"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("ppo", "grpo"):
        r0, r1 = (torch.load(tmp_path / f"{name}_rank{r}.pt", weights_only=False) for r in (0, 1))
        assert r0["world_size"] == 2 and r0["seed"] == 3 and r1["seed"] == distributed.rank_seed(3, 1)
        assert not torch.equal(r0["batch"][0], r1["batch"][0]) or not torch.equal(r0["batch"][1], r1["batch"][1])
        torch.testing.assert_close(r0["grad"], r1["grad"], rtol=0, atol=0)  # identical on every rank
        ref, ref_metrics = single_process_grad(name, [r0["batch"], r1["batch"]], 16)
        assert float(ref.abs().max()) > 1e-3  # a real gradient
        assert float((ref - r0["grad"]).abs().max()) < 1e-6
        m0, m1 = r0["metrics"][0], r1["metrics"][0]
        assert m0["train/episodes"] == 16 == r0["num_episodes"]
        for key in ("reward/score", "reward/score_std", "stats/kl_ref", "stats/grad_norm", "loss/policy"):
            assert m0[key] == m1[key]
            assert m0[key] == pytest.approx(ref_metrics[key], abs=1e-5), key
        run = tmp_path / name
        state = torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=False)
        assert state["world_size"] == 2 and len(state["rank_states"]) == 2
        rows = (run / "metrics.csv").read_text().splitlines()
        assert len(rows) == 2  # header + one iteration, written once
        assert '"num_processes": 2' in (run / "config.json").read_text()


@pytest.mark.slow
def test_two_ranks_gradient_equals_one_process_for_the_other_algorithms(tmp_path):
    """RLOO, NLPO, A2C (whitened advantages), REINFORCE share the learn loop: the same equality."""
    names = ["rloo", "nlpo", "a2c", "reinforce"]
    res = torchrun([",".join(names), "8"], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in names:
        r0, r1 = (torch.load(tmp_path / f"{name}_rank{r}.pt", weights_only=False) for r in (0, 1))
        ref, ref_metrics = single_process_grad(name, [r0["batch"], r1["batch"]], 16)
        assert float(ref.abs().max()) > 1e-4, name
        assert float((ref - r0["grad"]).abs().max()) < 1e-6, name
        assert r0["metrics"][0]["reward/score"] == pytest.approx(ref_metrics["reward/score"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_failed_rank_stops_the_job_and_resume_continues(tmp_path, how):
    """Rank 1 fails after iteration 3 of 6: the job exits non-zero naming rank 1, the iteration-2
    checkpoint is complete, and one process resumes it (rank 0's streams)."""
    t0 = time.monotonic()
    res = torchrun(["ppo", "8", "6", how], tmp_path, timeout=300)
    assert res.returncode != 0
    assert "rank: 1" in res.stderr or "rank 1" in res.stderr, res.stderr[-3000:]
    assert time.monotonic() - t0 < 240
    ckpt = tmp_path / "ppo" / "checkpoint"
    assert not [p for p in ckpt.parent.iterdir() if p.name.startswith(".checkpoint.tmp")]
    algo = type(build("ppo", 8, None)).load(ckpt, build("ppo", 8, None).env, run_dir=None)
    assert algo.iteration == 2 and algo.num_episodes == 32
    algo.learn(iterations=1)
    assert algo.iteration == 3 and algo.num_episodes == 40


@pytest.mark.slow
def test_cli_nproc_2_runs_the_pipeline(tmp_path):
    """``textgym train CONFIG --nproc 2``: one run folder, the number of processes in the summary."""
    cfg = Path(__file__).parents[2] / "examples" / "configs" / "synthetic_ppo.yaml"
    cmd = [sys.executable, "-m", "textgym", "train", str(cfg), "--nproc", "2", "--runs-dir", str(tmp_path),
           "--set", "train.iterations=2", "--set", "eval.n_episodes=4", "--set", "eval.every=0"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TEXTGYM_DIST_TIMEOUT": "120"})
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "synthetic-ppo"
    assert "2 processes" in (run / "summary.md").read_text()
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    assert res.stderr.count("[rl] ppo from") + res.stdout.count("[rl] ppo from") == 1


def test_cli_nproc_rejects_bad_values(capsys):
    from textgym.app.cli import main

    assert main(["train", "examples/configs/synthetic_ppo.yaml", "--nproc", "0"]) == 2
    assert "--nproc must be an integer >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_sft_two_ranks_gradient_equals_one_process(tmp_path):
    """SFT (LoRA, token-mean loss): 2 ranks x 1 micro-batch of 2 rows give the gradient of one process
    accumulating the same 2 micro-batches (lora_dropout 0: dropout masks depend on the partition)."""
    one = tmp_path / "one"
    one.mkdir()
    res = subprocess.run([sys.executable, str(HERE / "dist_sft_worker.py"), "2", str(one)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--max-restarts", "0",
           str(HERE / "dist_sft_worker.py"), "1", str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "TEXTGYM_DIST_TIMEOUT": "60"})
    assert res.returncode == 0, res.stderr[-3000:]
    ref = torch.load(one / "sft_rank0.pt")
    r0, r1 = torch.load(tmp_path / "sft_rank0.pt"), torch.load(tmp_path / "sft_rank1.pt")
    assert r0["world_size"] == 2 and torch.equal(r0["grad"], r1["grad"])
    assert float(ref["grad"].abs().max()) > 1e-3
    assert float((ref["grad"] - r0["grad"]).abs().max()) < 1e-6
    assert r0["metrics"]["loss"] == pytest.approx(ref["metrics"]["loss"], rel=1e-6)
    assert r0["metrics"]["tokens"] == ref["metrics"]["tokens"]
