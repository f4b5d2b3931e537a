"""Run by the data-parallel tests under ``python -m torch.distributed.run`` (or directly, one process).

``python dist_worker.py ALGOS NUM_ENVS OUT_DIR [ITERATIONS [FAIL]]``: for each of the comma-separated
``ALGOS`` (``ppo``, ``grpo``, ``rloo``, ``nlpo``, ``a2c``, ``reinforce``) builds it on ``tiny-char`` + ``textgym/TokenCount-v0`` with ``NUM_ENVS``
rows per process, trains ``ITERATIONS`` (default 1) iterations with ``run_dir=OUT_DIR/ALGO`` (checkpoint
every 2 iterations) and writes, per rank, ``OUT_DIR/ALGO_rank{r}.pt``: the first iteration's rollout
batch, the flattened gradient of its first optimizer step (after the all-reduce, before the step),
the logged metrics and the rank's seed.  ``FAIL`` = ``raise`` or ``kill``: rank 1 raises / SIGKILLs
itself after iteration 3.
"""

import os
import signal

import sys
from pathlib import Path

import gymnasium as gym
import torch

from textgym.agents import (A2C, GRPO, NLPO, PPO, REINFORCE, RLOO, A2CConfig, GRPOConfig, NLPOConfig, PPOConfig,
                            REINFORCEConfig, RLOOConfig)
from textgym.agents.common import distributed


def build(algo_name: str, num_envs: int, run_dir: str | None):
    env = gym.make_vec("textgym/TokenCount-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                       autoreset_mode="Disabled")
    common = dict(seed=3, learning_rate=1e-3, max_grad_norm=1.0, run_dir=run_dir, tensorboard=False,
                  progress_bar=False, log_samples=2)
    if algo_name == "ppo":
        return PPO("tiny-char", env, PPOConfig(n_epochs=1, kl_coef=0.05, target_kl_ref=1.0, **common))
    if algo_name == "grpo":
        return GRPO("tiny-char", env, GRPOConfig(group_size=4, n_epochs=1, **common))
    if algo_name == "rloo":
        return RLOO("tiny-char", env, RLOOConfig(group_size=4, **common))
    if algo_name == "nlpo":
        return NLPO("tiny-char", env, NLPOConfig(n_epochs=1, **common))
    if algo_name == "a2c":
        return A2C("tiny-char", env, A2CConfig(normalize_advantage=True, **common))
    return REINFORCE("tiny-char", env, REINFORCEConfig(**common))


def capture(algo) -> dict:
    """Record the first rollout batch and the gradient of the first optimizer step."""
    out: dict = {}
    collect, step = algo.collect_rollouts, algo.optimizer.step

    def collect_rollouts():
        b = collect()
        out.setdefault("batch", b)
        return b

    def opt_step(*a, **k):
        if "grad" not in out:
            out["grad"] = torch.cat([p.grad.detach().reshape(-1).clone() for p in algo.policy.trainable_parameters() if p.grad is not None])
        return step(*a, **k)

    algo.collect_rollouts, algo.optimizer.step = collect_rollouts, opt_step
    return out


def first_step_grad(algo, batches) -> tuple[torch.Tensor, dict]:
    """One process's first optimizer-step gradient (flat) updating on ``batches`` (tuples of
    ``RolloutBatch`` fields) concatenated, and the update's metrics: the reference of the
    data-parallel and FSDP gradient tests."""
    from textgym.agents.common.rollout import RolloutBatch

    got = {}
    step = algo.optimizer.step

    def opt_step(*a, **k):
        got.setdefault("g", torch.cat([p.grad.detach().reshape(-1).clone()
                                       for p in algo.policy.trainable_parameters() if p.grad is not None]))
        return step(*a, **k)

    algo.optimizer.step = opt_step
    metrics = algo.update(RolloutBatch.cat([RolloutBatch(*b) for b in batches]))
    return got["g"], metrics


def main() -> None:
    torch.set_num_threads(1)
    names, num_envs, out_dir = sys.argv[1].split(","), int(sys.argv[2]), Path(sys.argv[3])
    iterations = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    fail = sys.argv[5] if len(sys.argv) > 5 else None
    for name in names:
        algo = build(name, num_envs, str(out_dir / name))
        algo.config.save_every = 2
        out = capture(algo)
        metrics = []

        def callback(a, m):
            metrics.append(m)
            if fail and distributed.rank() == 1 and a.iteration == 3:
                if fail == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError("injected failure on rank 1")

        algo.learn(iterations=iterations, callback=callback)
        algo.save(out_dir / name / "checkpoint")
        torch.save({"batch": tuple(out["batch"]), "grad": out["grad"], "metrics": metrics, "seed": algo.seed,
                    "world_size": distributed.world_size(), "iteration": algo.iteration,
                    "num_episodes": algo.num_episodes}, out_dir / f"{name}_rank{distributed.rank()}.pt")
        algo.close()


if __name__ == "__main__":
    main()
