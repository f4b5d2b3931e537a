"""Run by the FSDP / bf16 tests under ``python -m torch.distributed.run`` (2 CPU processes, gloo).

``python dist_fsdp_worker.py MODE OUT_DIR``:

* ``grad``: PPO (``tiny-char`` on ``textgym/TokenCount-v0``, 8 rows per rank, ``strategy="fsdp"``)
  trains one iteration; each rank writes ``OUT_DIR/rank{r}.pt`` with its rollout batch, the full
  (gathered) gradient of the first optimizer step (in ``trainable_parameters()`` order, after the
  reduce-scatter and before clipping), the grad norm, the parameters' sharding, and saves
  ``OUT_DIR/checkpoint`` (every rank calls ``save``; rank 0 writes).  Then it resumes the checkpoint
  with FSDP (``PPO.load``) and records the resumed full weights and the optimizer's ``exp_avg``.
* ``others``: GRPO and REINFORCE with FSDP, one iteration each: ``OUT_DIR/{grpo,reinforce}_rank{r}.pt``
  with the rollout batch, the first step's full gradient and the metrics.
* ``lengths``: the ranks generate at most 2 (rank 0) and 9 (rank 1) tokens, so their rollouts take
  different numbers of decoding steps; 2 iterations, ``evaluate`` and ``generate`` must not hang.
  Writes ``OUT_DIR/lengths{r}.pt`` with the episode lengths and metrics.
"""

import os
import sys
from pathlib import Path

import gymnasium as gym
import torch

from textgym.agents import PPO, PPOConfig
from textgym.agents.common import distributed, fsdp

#: ``TEXTGYM_FSDP_DEVICE=cuda``: the GPU variant (NCCL, one GPU per rank; tests/gpu/test_fsdp_bf16_cuda.py)
DEVICE = os.environ.get("TEXTGYM_FSDP_DEVICE") or None


def env_of(num_envs: int = 8, **kw):
    return gym.make_vec("textgym/TokenCount-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="Disabled", **kw)


def config(**kw) -> PPOConfig:
    base = dict(device=DEVICE, seed=3, learning_rate=1e-3, max_grad_norm=1.0, n_epochs=1, kl_coef=0.05, target_kl_ref=1.0,
                tensorboard=False, progress_bar=False, log_samples=0)
    return PPOConfig(**{**base, **kw})


def full_grads(algo) -> torch.Tensor:
    """The flat gradient over ``trainable_parameters()`` (shards gathered: a collective)."""
    return torch.cat([(g.full_tensor() if fsdp.is_sharded_param(g) else g).detach().reshape(-1).cpu()
                      for g in (p.grad for p in algo.policy.trainable_parameters()) if g is not None])


def full_weights(algo) -> dict[str, torch.Tensor]:
    return {n: (p.full_tensor() if fsdp.is_sharded_param(p) else p).detach().cpu().clone()
            for n, p in algo.policy.lm.named_parameters()}


def capture(algo) -> dict:
    """Record the first rollout batch and the full gradient of the first optimizer step."""
    got: dict = {}
    collect, step = algo.collect_rollouts, algo.optimizer.step

    def collect_rollouts():
        b = collect()
        got.setdefault("batch", tuple(x.cpu() if torch.is_tensor(x) else x for x in b))
        return b

    def opt_step(*a, **k):
        if "grad" not in got:
            got["grad"] = full_grads(algo)
        return step(*a, **k)

    algo.collect_rollouts, algo.optimizer.step = collect_rollouts, opt_step
    return got


def build_other(name: str, strategy: str | None):
    """GRPO (groups of 4 within each rank, micro-batches of 4 rows) or REINFORCE (one step per rollout, no rescoring)."""
    from textgym.agents import GRPO, REINFORCE, GRPOConfig, REINFORCEConfig

    common = dict(device=DEVICE, seed=3, learning_rate=1e-3, max_grad_norm=1.0, tensorboard=False,
                  progress_bar=False, log_samples=0, strategy=strategy)
    if name == "grpo":
        return GRPO("tiny-char", env_of(), GRPOConfig(group_size=4, n_epochs=1, micro_batch_size=4, **common))
    return REINFORCE("tiny-char", env_of(), REINFORCEConfig(**common))


def others_mode(out_dir: Path) -> None:
    for name in ("grpo", "reinforce"):
        algo = build_other(name, "fsdp")
        got = capture(algo)
        metrics: list = []
        algo.learn(iterations=1, callback=lambda a, m: metrics.append(m))
        torch.save({"batch": got["batch"], "grad": got["grad"], "metrics": metrics},
                   out_dir / f"{name}_rank{distributed.rank()}.pt")


def grad_mode(out_dir: Path) -> None:
    algo = PPO("tiny-char", env_of(), config(strategy="fsdp", run_dir=str(out_dir / "run")))
    got = capture(algo)
    metrics: list = []
    algo.learn(iterations=1, callback=lambda a, m: metrics.append(m))
    sharded = [fsdp.is_sharded_param(p) for p in algo.policy.trainable_parameters()]
    ref_sharded = all(fsdp.is_sharded_param(p) for p in algo.policy.ref_model.parameters())
    weights = full_weights(algo)
    algo.save(out_dir / "checkpoint")
    opt = algo.optimizer.state[algo.policy.lm.model.layers[0].self_attn.q_proj.weight]["exp_avg"].full_tensor().cpu()
    distributed.barrier()
    resumed = PPO.load(out_dir / "checkpoint", env_of(), run_dir=None)
    r_opt = resumed.optimizer.state[resumed.policy.lm.model.layers[0].self_attn.q_proj.weight]
    torch.save({"batch": got["batch"], "grad": got["grad"], "sharded": sharded, "ref_sharded": ref_sharded,
                "weights": weights, "exp_avg": opt, "metrics": metrics,
                "resumed_weights": full_weights(resumed), "resumed_exp_avg": r_opt["exp_avg"].full_tensor().cpu(),
                "resumed_iteration": resumed.iteration, "resumed_sharded": fsdp.is_sharded(resumed.policy),
                "world_size": distributed.world_size()},
               out_dir / f"rank{distributed.rank()}.pt")


def lengths_mode(out_dir: Path) -> None:
    r = distributed.rank()
    env = env_of(4, max_count=1 if r == 0 else 7, max_new_tokens=2 if r == 0 else 9)
    algo = PPO("tiny-char", env, config(strategy="fsdp", precision="bf16", temperature=1.5))
    lengths, metrics = [], []
    collect = algo.collect_rollouts

    def collect_rollouts():
        b = collect()
        lengths.append(b.lengths.tolist())
        return b

    algo.collect_rollouts = collect_rollouts
    algo.learn(iterations=2, callback=lambda a, m: metrics.append(m))
    ev = algo.evaluate(env_of(4, max_count=1 if r == 0 else 7, max_new_tokens=2 if r == 0 else 9), n_episodes=4)
    texts = algo.generate(["count:1="] if r == 0 else ["count:7=", "count:6="], max_new_tokens=2 if r == 0 else 9)
    torch.save({"lengths": lengths, "metrics": metrics, "eval": ev, "texts": texts},
               out_dir / f"lengths{r}.pt")


def main() -> None:
    torch.set_num_threads(1)
    distributed.init()  # the rank is needed before the algorithm joins the group
    mode, out_dir = sys.argv[1], Path(sys.argv[2])
    {"grad": grad_mode, "lengths": lengths_mode, "others": others_mode}[mode](out_dir)


if __name__ == "__main__":
    main()
