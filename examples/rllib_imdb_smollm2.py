"""RLlib's own PPO on textgym/IMDB-v0 with SmolLM2-135M-Instruct (LoRA): continue movie-review prefixes positively.

Usage (needs the ``ray`` extra: ``pip install 'textgym[ray]'``)::

    python examples/rllib_imdb_smollm2.py                        # 10 iterations on this machine (CPU: slow)
    python examples/rllib_imdb_smollm2.py --iterations 1 --batch 32 --num-envs 4   # a smoke run
    python examples/rllib_imdb_smollm2.py --env-runners 2 --gpus 1 --iterations 100  # runners + a GPU learner

The env, its reward (the env's default sentiment classifier, trained once and
cached) and the LM are textgym's; the training loop is RLlib's (new API stack:
env runners sample with :class:`textgym.integrations.rllib.TextGymRLModule`, a
learner updates it, the LoRA adapter and value head are synced back each
iteration).  RLlib's PPO has no KL penalty to the starting model, so keep the
learning rate and the number of iterations modest, or the text drifts.  RLlib
recomputes the whole context for every generated token (no KV cache between
env steps; see the README's "Ray and RLlib"), so textgym's own PPO
(``examples/ppo_imdb_smollm2.py``) is much faster on one machine.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import gymnasium as gym  # noqa: E402
import ray  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402

from textgym.agents import sentiment_classifier_path  # noqa: E402
from textgym.agents.common.evaluation import evaluate_policy  # noqa: E402
from textgym.integrations.rllib import register_envs, rl_module_spec  # noqa: E402
from textgym.models import load_tokenizer  # noqa: E402

MODEL = "smollm2-135m-instruct"
ENV_ID = "textgym/IMDB-v0"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--num-envs", type=int, default=8, help="episodes stepped together per env runner")
    ap.add_argument("--batch", type=int, default=256, help="env steps (tokens) per PPO iteration")
    ap.add_argument("--minibatch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--env-runners", type=int, default=0, help="0: sample in this process")
    ap.add_argument("--gpus", type=float, default=0, help="GPUs for the learner")
    ap.add_argument("--eval-episodes", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None, help="write the trained policy (textgym's policy folder) here")
    args = ap.parse_args()

    load_tokenizer(MODEL)  # converts the bundled GGUF to safetensors on first use (cached)
    sentiment_classifier_path()  # the env's default reward: textgym's classifier, trained once, then cached
    ray.init(include_dashboard=False, log_to_driver=False)
    register_envs([ENV_ID])
    env_config = {"tokenizer": MODEL, "max_new_tokens": args.max_new_tokens}
    config = (PPOConfig()
              .environment(ENV_ID, env_config=env_config)
              .env_runners(num_env_runners=args.env_runners, num_envs_per_env_runner=args.num_envs,
                           gym_env_vectorize_mode="vector_entry_point")
              .learners(num_learners=0, num_gpus_per_learner=args.gpus)
              .training(train_batch_size_per_learner=args.batch, minibatch_size=args.minibatch,
                        num_epochs=args.epochs, lr=args.lr, gamma=1.0, lambda_=0.95, grad_clip=1.0)
              .rl_module(rl_module_spec=rl_module_spec(MODEL, lora={"r": 16, "lora_alpha": 32}))
              .debugging(seed=args.seed))
    algo = config.build_algo()
    synced = sum(a.nbytes for a in algo.get_module().get_state().values())
    print(f"weights synced to the env runners per iteration: {synced / 2**20:.2f} MiB (LoRA adapter + value head)")

    def held_out(label: str) -> None:
        env = gym.make_vec(ENV_ID, num_envs=min(args.eval_episodes, 16), vectorization_mode="vector_entry_point",
                           autoreset_mode="Disabled", split="test", **env_config)
        m = evaluate_policy(algo.get_module().policy, env, n_episodes=args.eval_episodes, seed=1234).metrics
        print(f"{label}: score {m['score_mean']:.3f} +- {m['score_ci95']:.3f}, KL to start {m['kl_ref']:.3f}")

    held_out("before")
    for i in range(args.iterations):
        res = algo.train()
        runners = res["env_runners"]
        print(f"iteration {i + 1}: episode return {runners.get('episode_return_mean', float('nan')):.3f}, "
              f"env steps {runners.get('num_env_steps_sampled_lifetime')}")
    held_out("after")
    if args.save:
        algo.get_module().policy.save(args.save)
    algo.stop()
    ray.shutdown()


if __name__ == "__main__":
    main()
