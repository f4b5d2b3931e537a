"""The ``textgym`` command line.

Commands:

* ``textgym list`` - registered envs (with task, data, reward) and rewards.
* ``textgym rollout --env ID --model NAME [--episodes N]`` - let a model
  generate on real prompts by stepping the env token by token, printing
  prompt, completion and reward for each episode.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

__all__ = ["main", "rollout_episode"]


def rollout_episode(model: Any, env: Any, *, seed: int | None = None, temperature: float = 1.0, top_k: int = 0) -> dict[str, Any]:
    """Run one episode of ``env`` with ``model`` choosing each action.

    Each step feeds the observation (``input_ids``/``attention_mask``, ``(1, P+T)``)
    to the model with position ids ``cumsum(mask) - 1`` and samples the next
    token from the logits at the last real position (greedy if ``temperature == 0``).
    The whole context is recomputed each step (no KV cache): this is the plain
    Gymnasium loop, meant for demos and checks, not for training throughput.

    Returns:
        dict with ``prompt``, ``completion``, ``reward`` (episode return),
        ``terminated``, ``truncated`` and ``tokens`` (number of steps).
    """
    import numpy as np
    import torch

    obs, info = env.reset(seed=seed)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    vocab = env.action_space.n
    total, steps = 0.0, 0
    while True:
        ids = torch.as_tensor(obs["input_ids"])[None]
        mask = torch.as_tensor(obs["attention_mask"])[None]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[0]
        last = int(np.flatnonzero(obs["attention_mask"])[-1])
        scores = logits[last, :vocab].float()
        if temperature <= 0:
            action = int(scores.argmax())
        else:
            scores = scores / temperature
            if top_k > 0:
                kth = torch.topk(scores, top_k).values[-1]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            action = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=gen))
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        steps += 1
        if terminated or truncated:
            return {
                "prompt": info["prompt"],
                "completion": info["completion"],
                "reward": total,
                "terminated": terminated,
                "truncated": truncated,
                "tokens": steps,
            }


def _cmd_list(args: argparse.Namespace) -> int:
    import textgym
    from textgym.reward_api import list_rewards

    print("Environments (gym.make(id, **overrides)):")
    for spec in textgym.list_envs(details=True):
        print(f"  {spec.id}\n      task: {spec.task}\n      data: {spec.data}\n      reward: {spec.reward}; license: {spec.license}")
    print("\nRewards (textgym.rewards.make(name) or reward=name):")
    print("  " + ", ".join(list_rewards()))
    return 0


def _cmd_rollout(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the ids)
    from textgym.models import load

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    print(f"loading {args.model} ...", flush=True)
    model, tok = load(args.model)
    print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    kwargs: dict[str, Any] = {"tokenizer": tok, "max_new_tokens": args.max_new_tokens, "split": args.split}
    if args.reward:
        kwargs["reward"] = args.reward
    if args.chat:
        kwargs["prompt_format"] = "chat"
    env = gym.make(args.env, **kwargs)
    rewards = []
    for ep in range(args.episodes):
        t = time.perf_counter()
        out = rollout_episode(model, env, seed=args.seed + ep, temperature=args.temperature, top_k=args.top_k)
        rewards.append(out["reward"])
        end = "EOS" if out["terminated"] else f"{out['tokens']} tokens (truncated)"
        print(f"\n--- episode {ep + 1}/{args.episodes}  ({time.perf_counter() - t:.1f} s, ended by {end})")
        print(f"prompt:     {out['prompt']}")
        print(f"completion: {out['completion'].strip()}")
        print(f"reward:     {out['reward']:.3f}")
    print(f"\nmean reward over {len(rewards)} episodes: {sum(rewards) / len(rewards):.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``textgym`` command."""
    parser = argparse.ArgumentParser(prog="textgym", description="Gymnasium environments and RL agents for text generation.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list registered envs and rewards")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("rollout", help="let a model generate on an env's prompts, step by step")
    p.add_argument("--env", default="textgym/IMDB-v0", help="registered env id (see `textgym list`)")
    p.add_argument("--model", default="smollm2-135m-instruct", help="model alias, tiny preset or local path")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--split", default="validation")
    p.add_argument("--reward", default=None, help="reward name (default: the env's)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chat", action="store_true", help="format prompts with the model's chat template")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; use 1 on a machine busy with other jobs)")
    p.set_defaults(func=_cmd_rollout)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``textgym`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
