"""A tiny model learns a synthetic task with token-level PPO, in about a minute on a laptop CPU.

Usage::

    python examples/ppo_synthetic.py                          # textgym/TokenCount-v0, 80 updates
    python examples/ppo_synthetic.py --env textgym/Reverse-v0 --iterations 200
    python examples/ppo_synthetic.py --run-dir runs/tokencount   # CSV + TensorBoard + samples + checkpoint

The policy is the ``tiny-char`` preset (a 2-layer Llama on a character
tokenizer, random init); the task's reward is 1.0 for the optimal answer.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch

from textgym.agents import PPO, PPOConfig

import textgym  # noqa: F401  (registers the env ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="textgym/TokenCount-v0")
    ap.add_argument("--model", default="tiny-char")
    ap.add_argument("--num-envs", type=int, default=64, help="episodes per rollout")
    ap.add_argument("--iterations", type=int, default=80)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--kl-coef", type=float, default=0.0, help="the tiny model starts random: no need to stay close")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for tiny models)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    def make(split):
        return gym.make_vec(args.env, num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                            autoreset_mode="Disabled", split=split)

    config = PPOConfig(seed=args.seed, learning_rate=args.lr, kl_coef=args.kl_coef, minibatch_size=16, n_epochs=2,
                       run_dir=args.run_dir, save_every=20 if args.run_dir else None)
    algo = PPO(args.model, make("train"), config)
    test_env = make("test")
    print("before:", algo.evaluate(test_env, n_episodes=args.num_envs))
    algo.learn(iterations=args.iterations)
    print("after: ", algo.evaluate(test_env, n_episodes=args.num_envs))
    prompts = [test_env.data.prompts[i] for i in range(min(4, len(test_env.data)))]
    for p, c in zip(prompts, algo.generate(prompts, greedy=True)):
        print(f"{p!r} -> {c!r}")
    if args.run_dir:
        algo.save(f"{args.run_dir}/final")
    algo.close()


if __name__ == "__main__":
    main()
