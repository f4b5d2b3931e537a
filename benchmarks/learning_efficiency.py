"""Learning efficiency: sentiment reward reached per generated token, textgym PPO vs TRL GRPO at an equal token budget.

Usage::

    python benchmarks/learning_efficiency.py                         # SmolLM2 + LoRA, 4096-token budget each
    python benchmarks/learning_efficiency.py --budget 16384          # a longer (more meaningful) run
    python benchmarks/learning_efficiency.py --model tiny-llama --budget 512 --eval-prompts 8   # plumbing check

Task: ``textgym/IMDB-v0`` (continue a movie-review prefix of 30 words positively),
reward ``--reward``: ``auto`` picks ``"sentiment"`` (textgym's MiniLM classifier,
P(positive)) when it is cached and ``"sentiment-vader"`` (lexicon, no model) otherwise.
Both learners start from the same weights with a LoRA adapter (r = 16, alpha 32,
all linear layers; the reference is the base model with the adapter disabled),
AdamW at the same learning rate, temperature 1, completions of at most
``--new-tokens`` tokens ending at EOS, and stop once they have generated
``--budget`` tokens (counted the same way: completion tokens, EOS included):

* **textgym PPO**: ``--batch`` episodes per rollout, 2 epochs of minibatches of 8,
  adaptive KL penalty (k3, target 4 nats), the settings of ``examples/ppo_imdb_smollm2.py``;
* **TRL GRPO** (1.16): ``--batch`` completions per step (``--batch / 4`` prompts x 4),
  ``beta = 0.04``, one optimizer step per batch.

Before and after training, both policies are evaluated by the same code:
``model.generate`` (temperature 1, seed 0) on the first ``--eval-prompts``
prompts of the test split, scored by the same reward.  Reported: training
reward of the first and of the last quarter of the budget, held-out reward
before/after, and the held-out gain per million generated tokens.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import numpy as np
import torch
from _common import Table, check_trl, export_model, machine_info, quiet, set_threads

LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"}


def resolve_reward(name: str) -> str:
    """``auto`` -> ``"sentiment"`` if textgym's classifier is cached, else ``"sentiment-vader"``."""
    if name != "auto":
        return name
    from textgym.rewards.model import default_sentiment_model_dir

    return "sentiment" if (default_sentiment_model_dir() / "config.json").is_file() else "sentiment-vader"


def trl_reward(reward: Any) -> Any:
    """A TRL reward function (``prompts, completions, **kw -> list[float]``) around a textgym reward."""

    def sentiment_reward(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
        from textgym.reward_api import call_reward

        scores, _ = call_reward(reward, list(prompts), list(completions))
        return [float(s) for s in scores]

    return sentiment_reward


@torch.no_grad()
def evaluate(model: Any, tok: Any, prompts: list[str], reward: Any, new_tokens: int, seed: int = 0) -> float:
    """Mean reward of sampled completions of ``prompts`` (``model.generate``, temperature 1, stop at EOS).

    The same function scores both libraries' models (and the starting model).
    """
    from textgym.reward_api import call_reward

    torch.manual_seed(seed)
    tok.padding_side = "left"
    enc = {k: v.to(model.device) for k, v in tok(prompts, return_tensors="pt", padding=True).items()}
    out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new_tokens,
                         pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:].cpu(), skip_special_tokens=True)
    scores, _ = call_reward(reward, prompts, texts)
    return float(np.mean(scores))


def run_textgym_ppo(args: argparse.Namespace, reward_name: str) -> dict[str, Any]:
    """textgym PPO until ``args.budget`` tokens; returns the curve, wall time and the trained policy."""
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the env ids)
    from textgym.agents import PPO, LMActorCritic, PPOConfig

    from textgym.models import load_tokenizer

    env = gym.make_vec("textgym/IMDB-v0", num_envs=args.batch, vectorization_mode="vector_entry_point",
                       autoreset_mode="Disabled", tokenizer=load_tokenizer(args.model_dir), reward=reward_name,
                       split="train", max_new_tokens=args.new_tokens)
    policy = LMActorCritic.from_pretrained(args.model_dir, lora=dict(LORA), action_size=env.single_action_space.n,
                                           device=args.device)
    cfg = PPOConfig(seed=0, learning_rate=args.lr, kl_coef=0.05, target_kl_ref=4.0, kl_estimator="k3", n_epochs=2,
                    minibatch_size=8, micro_batch_size=4, temperature=1.0, progress_bar=False, tensorboard=False,
                    run_dir=None, log_samples=0)
    algo = PPO(policy, env, cfg)
    curve: list[tuple[int, float]] = []

    def record(a: Any, metrics: dict[str, Any]) -> None:
        curve.append((a.num_timesteps, float(metrics["reward/score"])))
        print(f"  textgym PPO: {a.num_timesteps} tokens, train reward {curve[-1][1]:.3f}", flush=True)

    t0 = time.perf_counter()
    algo.learn(total_timesteps=args.budget, callback=record)
    wall = time.perf_counter() - t0
    return {"curve": curve, "wall": wall, "model": policy.model, "tokens": algo.num_timesteps}


def run_trl_grpo(args: argparse.Namespace, reward: Any, prompts: list[str]) -> dict[str, Any]:
    """TRL GRPO (LoRA) until ``args.budget`` generated tokens; returns the curve, wall time and the model."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    cfg = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="textgym-bench-trl-"), per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1, num_generations=4, max_completion_length=args.new_tokens, max_steps=10_000,
        learning_rate=args.lr, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch", lr_scheduler_type="constant", warmup_steps=0, temperature=1.0,
        top_k=0, top_p=1.0, num_iterations=1, beta=0.04, seed=0, disable_dropout=True, bf16=False, fp16=False,
        use_cpu=args.device == "cpu", report_to="none", logging_steps=1, save_strategy="no", disable_tqdm=True,
        model_init_kwargs={"dtype": torch.float32}, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=args.model_dir, reward_funcs=trl_reward(reward), args=cfg,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                          peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA))
    tokens: list[int] = []
    generate = trainer._generate

    def counted_generate(*a: Any, **kw: Any) -> Any:
        out = generate(*a, **kw)
        tokens.append(sum(len(ids) for ids in out[1]))
        return out

    trainer._generate = counted_generate
    curve: list[tuple[int, float]] = []

    class Budget(TrainerCallback):
        """Records the training reward per step and stops at the token budget."""

        def on_log(self, a: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if logs and "reward" in logs:
                curve.append((sum(tokens), float(logs["reward"])))
                print(f"  TRL GRPO: {curve[-1][0]} tokens, train reward {curve[-1][1]:.3f}", flush=True)

        def on_step_end(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            if sum(tokens) >= args.budget:
                control.should_training_stop = True

    trainer.add_callback(Budget())
    trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    model = trainer.model
    model.eval()
    return {"curve": curve, "wall": wall, "model": model, "tokens": sum(tokens)}


def curve_means(curve: list[tuple[int, float]], budget: int) -> tuple[float, float]:
    """Mean training reward of the steps in the first and in the last quarter of the budget (by tokens)."""
    first = [r for t, r in curve if t <= budget / 4] or [curve[0][1]]
    last = [r for t, r in curve if t > 3 * budget / 4] or [curve[-1][1]]
    return statistics.fmean(first), statistics.fmean(last)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="textgym model name or local folder")
    ap.add_argument("--budget", type=int, default=4096, help="generated tokens per learner")
    ap.add_argument("--batch", type=int, default=16, help="completions per rollout / step (multiple of 4)")
    ap.add_argument("--new-tokens", type=int, default=24, help="max completion length")
    ap.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (LoRA)")
    ap.add_argument("--reward", default="auto", help="auto, sentiment or sentiment-vader")
    ap.add_argument("--eval-prompts", type=int, default=32, help="test-split prompts in the held-out evaluation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (TRL uses the GPU when not cpu)")
    ap.add_argument("--out-dir", default=None, help="where to write the table (default benchmarks/results)")
    args = ap.parse_args(argv)
    if args.batch % 4:
        ap.error("--batch must be a multiple of 4 (GRPO groups of 4)")
    quiet()
    trl = check_trl()
    threads = set_threads(args.threads)
    import textgym.rewards as rewards
    from textgym.envs.sentiment import imdb_samples
    from textgym.models import load

    reward_name = resolve_reward(args.reward)
    reward = rewards.make(reward_name)
    args.model_dir = export_model(args.model)
    train_prompts = [s["prompt"] for s in imdb_samples("train", 30)]
    eval_prompts = [s["prompt"] for s in imdb_samples("test", 30)][: args.eval_prompts]
    header = (f"### Learning efficiency on textgym/IMDB-v0: textgym PPO vs TRL {trl.__version__} GRPO "
              f"({args.model} + LoRA r=16)\n\n"
              f"reward {reward_name}; budget {args.budget:,} generated tokens each; {args.batch} completions of "
              f"<= {args.new_tokens} tokens per update; lr {args.lr:g}; held-out: {len(eval_prompts)} test prompts\n"
              f"machine: {machine_info()}")
    print(header, flush=True)

    base, tok = load(args.model_dir, device=args.device)
    before = evaluate(base, tok, eval_prompts, reward, args.new_tokens)
    print(f"  held-out reward of the starting model: {before:.3f}", flush=True)
    del base

    torch.manual_seed(0)
    tg = run_textgym_ppo(args, reward_name)
    tg["after"] = evaluate(tg.pop("model"), tok, eval_prompts, reward, args.new_tokens)
    torch.manual_seed(0)
    tr = run_trl_grpo(args, reward, train_prompts)
    tr["after"] = evaluate(tr.pop("model"), tok, eval_prompts, reward, args.new_tokens)

    table = Table("learning_efficiency", ["learner", "tokens", "updates", "wall s", "train reward first 25%",
                                          "train reward last 25%", "held-out before", "held-out after",
                                          "gain per M tokens"],
                  {"wall s": 0, "train reward first 25%": 3, "train reward last 25%": 3, "held-out before": 3,
                   "held-out after": 3, "gain per M tokens": 1})
    for name, r in (("textgym PPO", tg), (f"TRL {trl.__version__} GRPO", tr)):
        first, last = curve_means(r["curve"], args.budget)
        gain = (r["after"] - before) / (r["tokens"] / 1e6)
        table.add(name, r["tokens"], len(r["curve"]), r["wall"], first, last, before, r["after"], gain)
    notes = ("Rewards in [0, 1]. Gain per M tokens = (held-out after - before) / (tokens / 1e6). "
             f"With {len(eval_prompts)} held-out prompts the standard error of a held-out mean is about "
             f"{0.3 / np.sqrt(len(eval_prompts)):.2f}, so differences below ~2x that are noise.\n\n"
             "Curves (tokens: train reward): textgym PPO " + ", ".join(f"{t}: {r:.3f}" for t, r in tg["curve"])
             + "; TRL GRPO " + ", ".join(f"{t}: {r:.3f}" for t, r in tr["curve"]))
    table.emit(header, out_dir=args.out_dir, notes=notes)


if __name__ == "__main__":
    main()
