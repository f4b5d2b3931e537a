"""PPO on textgym/IMDB-v0 with SmolLM2-135M-Instruct: continue movie-review prefixes positively.

Usage::

    python examples/ppo_imdb_smollm2.py                      # LoRA, 10 updates of 16 episodes (CPU: ~minutes)
    python examples/ppo_imdb_smollm2.py --no-lora --lr 1e-6  # full fine-tuning (a frozen reference copy)
    python examples/ppo_imdb_smollm2.py --device cuda --num-envs 64 --iterations 100 --run-dir runs/imdb

The first run converts the bundled GGUF to safetensors (~45 s, cached).  The
reward is the env's default (VADER positive score in [0, 1]); the KL penalty
to the starting model (adaptive, target ``--target-kl`` nats per episode)
keeps the text fluent.  With LoRA the reference is the same weights with the
adapter switched off, so only one copy of the model is in memory.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

from textgym.agents import PPO, LMActorCritic, PPOConfig, sentiment_classifier_path

import textgym  # noqa: F401  (registers the env ids)
from textgym.models import load_tokenizer

MODEL = "smollm2-135m-instruct"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1e-4, help="1e-4 suits LoRA; use ~1e-6 without")
    ap.add_argument("--no-lora", action="store_true", help="full fine-tuning instead of a LoRA adapter")
    ap.add_argument("--adapter", default=None, help="start from this LoRA adapter (it becomes the reference)")
    ap.add_argument("--kl-coef", type=float, default=0.05)
    ap.add_argument("--target-kl", type=float, default=4.0, help="adaptive KL target (nats/episode); 0: fixed")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tok = load_tokenizer(MODEL)  # converts the GGUF on first use
    sentiment_classifier_path()  # the env's "sentiment" reward: trains textgym's classifier once, then cached

    def make(split):
        return gym.make_vec("textgym/IMDB-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                            autoreset_mode="Disabled", tokenizer=tok, split=split, max_new_tokens=args.max_new_tokens)

    env = make("train")
    lora = None if args.no_lora or args.adapter else {"r": 16, "lora_alpha": 32}
    policy = LMActorCritic.from_pretrained(MODEL, lora=lora, adapter=args.adapter, device=args.device,
                                           action_size=env.single_action_space.n)

    config = PPOConfig(seed=args.seed, learning_rate=args.lr, kl_coef=args.kl_coef,
                       target_kl_ref=args.target_kl or None, kl_estimator="k3", n_epochs=2, minibatch_size=8,
                       micro_batch_size=4, temperature=1.0, run_dir=args.run_dir)
    algo = PPO(policy, env, config)
    test_env = make("test")
    print("before:", algo.evaluate(test_env, n_episodes=args.num_envs))
    algo.learn(iterations=args.iterations)
    print("after: ", algo.evaluate(test_env, n_episodes=args.num_envs))
    for p, c in zip(test_env.data.prompts[:3], algo.generate(test_env.data.prompts[:3])):
        print(f"\n{p!r}\n  -> {c!r}")
    if args.run_dir:
        algo.save(f"{args.run_dir}/final")
    algo.close()


if __name__ == "__main__":
    main()
