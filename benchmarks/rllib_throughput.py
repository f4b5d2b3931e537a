"""RLlib's PPO vs textgym's PPO: generated tokens per second on the same tiny model and env.

Both train ``tiny-char`` (textgym's 2-layer Llama, vocabulary 57) on ``textgym/TokenCount-v0``
(prompt slots P = 10, up to T = max_count + 2 = 10 generated tokens by default) with 64 episodes stepped together, about
600 tokens per iteration, 2 epochs of minibatches of about 128 tokens, one torch thread:

* **RLlib**: RLlib 2.60's own PPO (new API stack) with
  :class:`textgym.integrations.rllib.TextGymRLModule`, one local env runner holding the 64
  envs as textgym's ``TextGenVectorEnv`` (``gym_env_vectorize_mode="vector_entry_point"``),
  at least 640 env steps per iteration.  Every env step is one module call on the whole
  observation: no KV cache between steps.
* **textgym**: :class:`textgym.agents.PPO`, 64 envs, one episode each per iteration; the
  rollout keeps the KV cache (one incremental forward per token).

Rows: tokens/s of whole iterations (sampling + update; RLlib's also includes its weight sync
and metrics) and of the sampling phase alone, after one warm-up iteration.  Prints one table.

    python benchmarks/rllib_throughput.py               # 5 timed iterations each, T = 10
    python benchmarks/rllib_throughput.py --max-count 62 --iterations 3   # T = 64: the missing KV cache shows
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import gymnasium as gym  # noqa: E402
from _common import Table, machine_info, quiet, set_threads  # noqa: E402

ENV_ID = "textgym/TokenCount-v0"


def textgym_ppo(num_envs: int, iterations: int, max_count: int) -> tuple[float, float, int]:
    """``(iteration tokens/s, rollout tokens/s, tokens)`` of textgym's PPO."""
    from textgym.agents import PPO, PPOConfig

    env = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", autoreset_mode="Disabled",
                       max_count=max_count)
    algo = PPO("tiny-char", env, PPOConfig(learning_rate=2e-3, kl_coef=0.0, minibatch_size=14, n_epochs=2,
                                           progress_bar=False, tensorboard=False))
    algo.train_step()  # warm-up
    tokens = rollout_s = 0.0
    start, before = time.perf_counter(), algo.num_timesteps
    for _ in range(iterations):
        rollout_s += algo.train_step()["time/rollout"]
    total_s = time.perf_counter() - start
    tokens = algo.num_timesteps - before
    return tokens / total_s, tokens / rollout_s, int(tokens)


def rllib_ppo(num_envs: int, iterations: int, max_count: int) -> tuple[float, float, int]:
    """``(iteration tokens/s, sampling tokens/s, tokens)`` of RLlib's PPO with the textgym RLModule."""
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig

    from textgym.integrations.rllib import register_envs, rl_module_spec

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_envs([ENV_ID])
    batch = num_envs * (max_count + 2)  # one budget's worth of steps per env
    config = (PPOConfig()
              .environment(ENV_ID, env_config={"max_count": max_count})
              .env_runners(num_env_runners=0, num_envs_per_env_runner=num_envs,
                           gym_env_vectorize_mode="vector_entry_point")
              .training(train_batch_size_per_learner=batch, minibatch_size=128, num_epochs=2, lr=2e-3, gamma=1.0,
                        lambda_=0.95)
              .rl_module(rl_module_spec=rl_module_spec("tiny-char"))
              .debugging(seed=0))
    algo = config.build_algo()
    before = algo.train()["env_runners"]["num_env_steps_sampled_lifetime"]  # warm-up
    runner = algo.env_runner
    start = time.perf_counter()
    for _ in range(iterations):
        after = algo.train()["env_runners"]["num_env_steps_sampled_lifetime"]
    total_s = time.perf_counter() - start
    tokens = after - before  # RLlib samples whole vector steps: a little more than the train batch
    t0 = time.perf_counter()  # the sampling phase alone: the same env runner, same batch
    n_sample = 0
    for _ in range(iterations):
        n_sample += sum(len(e) for e in runner.sample(num_timesteps=batch, explore=True))
    sample_s = time.perf_counter() - t0
    algo.stop()
    ray.shutdown()
    return tokens / total_s, n_sample / sample_s, int(tokens)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations each (after one warm-up)")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--max-count", type=int, default=8,
                        help="TokenCount's largest count: token budget T = max_count + 2 (longer contexts)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out-dir", default=None, help="where to write the table (default benchmarks/results)")
    args = parser.parse_args(argv)
    quiet()
    set_threads(args.threads)
    rows = [("textgym PPO (KV cache)", *textgym_ppo(args.num_envs, args.iterations, args.max_count)),
            ("RLlib PPO + TextGymRLModule (no KV cache)", *rllib_ppo(args.num_envs, args.iterations, args.max_count))]
    base_it, base_roll = rows[0][1], rows[0][2]
    suffix = "" if args.max_count == 8 else f"-max_count{args.max_count}"
    table = Table(f"rllib_throughput{suffix}", ["trainer", "iteration tokens/s", "sampling tokens/s", "tokens timed",
                                       "iteration vs textgym", "sampling vs textgym"], {"iteration tokens/s": 0,
                                                                                       "sampling tokens/s": 0})
    for name, it, roll, tokens in rows:
        table.add(name, it, roll, tokens, it / base_it, roll / base_roll)
    table.emit(f"PPO tokens/s, tiny-char on {ENV_ID} (max_count {args.max_count}: T = {args.max_count + 2}), "
               f"{args.num_envs} envs, {args.iterations} timed iterations\n"
               f"machine: {machine_info()}", out_dir=args.out_dir)


if __name__ == "__main__":
    main()
