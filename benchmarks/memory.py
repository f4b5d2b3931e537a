"""Memory: peak RSS of one PPO iteration (LoRA vs full fine-tuning) against the model alone doing inference.

Usage::

    python benchmarks/memory.py                          # SmolLM2-135M-Instruct, batch 8, T = 32 (about 2 minutes)
    python benchmarks/memory.py --model tiny-llama       # quick check

Each case runs in a fresh Python process (``benchmarks/memory.py --case NAME``)
and reports its own peak resident set size, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(KiB on Linux), so no case inherits another's allocations:

* ``baseline``: the imports (torch, transformers, textgym) and the env, no model - the fixed cost of a process;
* ``inference`` (c): the model alone, ``model.generate`` of the same batch (``--batch`` prompts, exactly
  ``--new-tokens`` sampled tokens) under ``torch.no_grad``;
* ``ppo-lora`` (a): one PPO iteration (rollout with the KV cache + scoring pass + ``n_epochs`` update epochs)
  with a LoRA adapter (r = 16, all linear layers) and PPO's defaults otherwise (``micro_batch_size="auto"``:
  as many episodes per forward/backward as fit ``micro_batch_memory_mb``); the reference model is the same
  weights with the adapter disabled, so no second copy;
* ``ppo-lora-whole`` (a''): (a) with ``micro_batch_size=None``: the whole batch in one forward/backward (the
  default before ``"auto"``);
* ``ppo-full`` (b): the same iteration with full fine-tuning: a frozen deep copy of the model as reference, AdamW
  moments for every weight;
* ``ppo-lora-micro`` (a'): (a) with ``micro_batch_size=1``: the update runs one episode per forward/backward and
  accumulates gradients (the same gradient), so only one episode's activations are held for the backward pass.

Ratios are each case's peak RSS over the inference case's (target for (a): <= 1.3).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "baseline": "imports + env, no model",
    "inference": "(c) model.generate, no grad",
    "ppo-lora": "(a) PPO iteration, LoRA r=16, reference = adapter disabled, defaults (micro_batch_size='auto')",
    "ppo-lora-whole": "(a'') as (a), micro_batch_size=None (whole batch per forward/backward)",
    "ppo-full": "(b) PPO iteration, full fine-tuning + frozen reference copy",
    "ppo-lora-micro": "(a') as (a), micro_batch_size=1 (gradient accumulation)",
}


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def run_case(args: argparse.Namespace) -> dict:
    """Run one case in this process; returns ``{"case", "peak_rss_mib", "seconds", ...}``."""
    import numpy as np
    import torch
    from _common import imdb_prompts, lexicon_reward, quiet, set_threads

    from textgym import TextGenVectorEnv
    from textgym.models import load_tokenizer
    from textgym.reward_api import FunctionReward

    quiet()
    set_threads(args.threads)
    torch.manual_seed(0)
    tok = load_tokenizer(args.model)
    reward = FunctionReward(lambda p, c, **kw: np.asarray(lexicon_reward(p, c), np.float32), batched=True,
                            name="lexicon")

    def make_env(vocab: int):
        return TextGenVectorEnv(tok, [{"prompt": p} for p in imdb_prompts(args.batch)], reward, num_envs=args.batch,
                                max_prompt_length=args.prompt_length, max_new_tokens=args.new_tokens,
                                stop_token_ids=[], shuffle=False, vocab_size=vocab, autoreset_mode="Disabled",
                                info_completions=False)

    t0 = time.perf_counter()
    info: dict = {}
    if args.case == "baseline":
        make_env(len(tok)).reset(seed=0)
    elif args.case == "inference":
        from textgym.models import load

        model, _ = load(args.model)
        env = make_env(model.get_output_embeddings().weight.shape[0])
        obs, _ = env.reset(seed=0)
        p = args.prompt_length
        with torch.no_grad():
            out = model.generate(input_ids=torch.from_numpy(obs["input_ids"][:, :p]),
                                 attention_mask=torch.from_numpy(obs["attention_mask"][:, :p]), do_sample=True,
                                 temperature=1.0, top_k=0, max_new_tokens=args.new_tokens,
                                 min_new_tokens=args.new_tokens, pad_token_id=tok.pad_token_id)
        info["generated"] = int(out.shape[0] * (out.shape[1] - p))
    else:
        from textgym.agents import PPO, PPOConfig
        from textgym.agents.common.policy import LMActorCritic

        policy = LMActorCritic.from_pretrained(args.model, lora=True if args.case.startswith("ppo-lora") else None)
        env = make_env(policy.action_size)
        micro = {"ppo-lora-micro": {"micro_batch_size": 1}, "ppo-lora-whole": {"micro_batch_size": None}}.get(
            args.case, {"micro_batch_size": args.micro_batch} if args.micro_batch else {})  # else the default
        cfg = PPOConfig(learning_rate=1e-5, n_epochs=args.epochs, progress_bar=False, tensorboard=False,
                        run_dir=None, log_samples=0, **micro)
        algo = PPO(policy, env, cfg)
        metrics = algo.train_step()
        info["generated"] = int(metrics["train/timesteps"])
        info["trainable_params"] = sum(p.numel() for p in policy.trainable_parameters())
        info["has_ref_copy"] = policy.ref_model is not None
        info["micro_batch_size"] = algo.micro_batch_size
    return {"case": args.case, "peak_rss_mib": peak_rss_mib(), "seconds": time.perf_counter() - t0, **info}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="textgym model name or local folder")
    ap.add_argument("--batch", type=int, default=8, help="episodes (prompts) per iteration / generate call")
    ap.add_argument("--prompt-length", type=int, default=64, help="P")
    ap.add_argument("--new-tokens", type=int, default=32, help="T (exact: no stop token)")
    ap.add_argument("--epochs", type=int, default=4, help="PPO epochs over the batch")
    ap.add_argument("--micro-batch", type=int, default=None,
                    help="PPO episodes per forward/backward in (a) and (b) (default: PPO's, micro_batch_size='auto')")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)  # child mode: run one case, print JSON
    ap.add_argument("--out-dir", default=None, help="where to write the table (default benchmarks/results)")
    args = ap.parse_args(argv)
    if args.case is not None:
        print("RESULT " + json.dumps(run_case(args)), flush=True)
        return
    from _common import Table, machine_info

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    header = (f"### Peak RSS of one PPO iteration vs inference ({args.model}, fp32, CPU)\n\n"
              f"batch {args.batch}, P = {args.prompt_length}, T = {args.new_tokens} (exact), PPO {args.epochs} epochs, "
              f"micro-batch {args.micro_batch or 'auto (PPO default)'} in (a) and (b); each case in a fresh process\n"
              f"machine: {machine_info()}")
    print(header, flush=True)
    forwarded = ["--model", args.model, "--batch", str(args.batch), "--prompt-length", str(args.prompt_length),
                 "--new-tokens", str(args.new_tokens), "--epochs", str(args.epochs), "--threads", str(args.threads)]
    if args.micro_batch:
        forwarded += ["--micro-batch", str(args.micro_batch)]
    results = {}
    for case in cases:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--case", case, *forwarded],
                              capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(f"case {case!r} failed (exit code {proc.returncode}); its output is above")
        results[case] = json.loads(lines[-1][len("RESULT "):])
        print(f"  {case}: {results[case]['peak_rss_mib']:.0f} MiB in {results[case]['seconds']:.1f} s", flush=True)

    ref = results.get("inference", {}).get("peak_rss_mib", float("nan"))
    base = results.get("baseline", {}).get("peak_rss_mib", float("nan"))
    table = Table("memory", ["case", "what runs", "peak RSS MiB", "ratio vs inference", "above baseline MiB",
                             "ratio vs inference, above baseline"], {"peak RSS MiB": 0, "above baseline MiB": 0})
    for case, r in results.items():
        m = r["peak_rss_mib"]
        table.add(case, CASES[case], m, m / ref, m - base, (m - base) / (ref - base))
    notes = []
    if "ppo-lora" in results and "inference" in results:
        ratio = results["ppo-lora"]["peak_rss_mib"] / ref
        notes.append(f"Target (a) <= 1.3x inference: {'met' if ratio <= 1.3 else 'MISSED'} ({ratio:.2f}x).")
    if "ppo-lora-micro" in results and "inference" in results:
        ratio = results["ppo-lora-micro"]["peak_rss_mib"] / ref
        notes.append(f"With micro_batch_size=1 (a'): {ratio:.2f}x ({'met' if ratio <= 1.3 else 'missed'}).")
    for case in ("ppo-lora", "ppo-lora-whole", "ppo-full", "ppo-lora-micro"):
        if case in results:
            notes.append(f"{case}: {results[case]['trainable_params']:,} trainable parameters, "
                         f"reference copy: {results[case]['has_ref_copy']}, micro-batch "
                         f"{results[case]['micro_batch_size'] or 'whole batch'}, {results[case]['seconds']:.0f} s.")
    table.emit(header, out_dir=args.out_dir, notes="\n".join(notes))


if __name__ == "__main__":
    main()
