"""Scaling: time per generated token vs completion length, tokens/s vs batch size; KV cache vs the SB3 path.

Usage::

    python benchmarks/scaling.py --threads 1                                  # tiny-llama
    python benchmarks/scaling.py --model smollm2-135m-instruct --threads 1    # a few minutes
    python benchmarks/scaling.py --quick                                      # lengths 32,128; batches 1,4,16

Three ways to generate the same tokens (same model, prompts of ``P`` tokens,
``T`` sampled tokens per row at temperature 1, no stop token):

* **textgym rollout** - :class:`textgym.agents.RolloutCollector` stepping a
  ``TextGenVectorEnv``: one prefill, then one cached forward per token (its
  post-rollout scoring pass is excluded here; see ``rollout_throughput.py``);
* **model.generate** - transformers' sampler with its KV cache, for reference;
* **SB3 policy path** - :class:`textgym.agents.algorithms.sb3_policy.TextGymLMPolicy`
  called on the whole observation at every env step, as stable-baselines3's
  ``collect_rollouts`` does: no KV cache, each token recomputes the whole
  context, so the cost per token grows with the length.

Table 1: milliseconds per generation step (one token for each of the ``batch``
rows) at completion lengths ``--lengths``: flat for the cached paths.
Table 2: generated tokens per second at batch sizes ``--batches`` (``T = --new-tokens``).
The SB3 path is measured up to ``--sb3-max-length`` tokens and ``--sb3-max-batch`` rows
(it is quadratic; longer runs take minutes on a CPU).
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
import torch
from _common import PhaseTimer, Table, machine_info, quiet, set_threads, sync, synthetic_env

from textgym.agents import LMActorCritic, RolloutCollector, SamplingParams


def time_textgym(policy: LMActorCritic, env, repeats: int) -> float:
    """Best generation time (s) of a full rollout over ``repeats`` runs, the scoring pass excluded."""
    col = RolloutCollector(policy, env, SamplingParams(1.0), seed=0, rescore_policy=False)
    timer = PhaseTimer(lambda: sync(policy.device))
    timer.wrap(col, "score", "scoring")
    best = float("inf")
    for _ in range(repeats):
        timer.reset()
        with timer.phase("generation"):
            col.collect(seed=0)
        best = min(best, timer.totals["generation"])
    timer.restore()
    return best


def time_generate(model, tok, env, new_tokens: int, repeats: int) -> float:
    """Best ``model.generate`` time (s) for the env's prompts, exactly ``new_tokens`` sampled tokens per row."""
    obs, _ = env.reset(seed=0)
    p = env.max_prompt_length
    ids = torch.from_numpy(obs["input_ids"][:, :p]).to(model.device)
    mask = torch.from_numpy(obs["attention_mask"][:, :p]).to(model.device)
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            sync(model.device)
            t0 = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                                 top_p=1.0, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 pad_token_id=tok.pad_token_id)
            sync(model.device)
            best = min(best, time.perf_counter() - t0)
    if out.shape[1] != p + new_tokens:
        raise RuntimeError(f"generate returned {out.shape[1] - p} tokens per row, expected {new_tokens}")
    return best


def make_sb3_policy(policy: LMActorCritic, env):
    """The stable-baselines3 policy around the same :class:`LMActorCritic` (shared weights)."""
    from textgym.agents.algorithms.sb3_policy import TextGymLMPolicy

    return TextGymLMPolicy(env.single_observation_space, env.single_action_space, lambda _: 1e-5,
                           model=policy).to(policy.device)


def time_sb3(sb3_policy, env, new_tokens: int, repeats: int) -> float:
    """Best time (s) to generate ``new_tokens`` tokens per row calling the SB3 policy on every observation."""
    dev = sb3_policy.device
    best = float("inf")
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        obs, _ = env.reset(seed=0)
        with torch.no_grad():
            for _ in range(new_tokens):  # no stop token: every row runs exactly new_tokens steps
                obs_t = {k: torch.as_tensor(v, device=dev) for k, v in obs.items()}
                actions, _, _ = sb3_policy(obs_t)  # SB3's collect_rollouts: policy(obs) -> actions, values, logp
                obs, _, _, _, _ = env.step(actions.cpu().numpy())
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-llama", help="tiny-llama (default), smollm2-135m-instruct or a path")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--prompt-length", type=int, default=32, help="P")
    ap.add_argument("--batch", type=int, default=4, help="rows for table 1")
    ap.add_argument("--lengths", default="32,128,512", help="completion lengths for table 1")
    ap.add_argument("--new-tokens", type=int, default=32, help="T for table 2")
    ap.add_argument("--batches", default="1,4,16,64", help="batch sizes for table 2")
    ap.add_argument("--sb3-max-length", type=int, default=128, help="longest completion timed on the SB3 path")
    ap.add_argument("--sb3-max-batch", type=int, default=64, help="largest batch timed on the SB3 path")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per cell (best kept), after one warm-up")
    ap.add_argument("--quick", action="store_true", help="lengths 32,128 and batches 1,4,16")
    ap.add_argument("--out-dir", default=None, help="where to write the tables (default benchmarks/results)")
    args = ap.parse_args(argv)
    if args.quick:
        args.lengths, args.batches = "32,128", "1,4,16"
    quiet()
    threads = set_threads(args.threads)
    policy = LMActorCritic.from_pretrained(args.model, device=args.device)
    model, tok = policy.lm, policy.tokenizer
    p, v = args.prompt_length, policy.action_size
    header = (f"model={args.model} device={args.device} P={p} threads={threads} sampling: temperature 1, no stop token\n"
              f"machine: {machine_info()}")
    print(header, flush=True)

    warm = synthetic_env(tok, 2, p, 4, v)  # warm-up: first calls allocate and pick kernels
    time_textgym(policy, warm, 1)
    time_generate(model, tok, warm, 4, 1)
    sb3 = make_sb3_policy(policy, warm)
    time_sb3(sb3, warm, 4, 1)

    # 1. time per token vs completion length (batch fixed)
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", args.model.rstrip("/").split("/")[-1])
    t1 = Table(f"scaling_length-{tag}", ["completion length", "textgym ms/step", "generate ms/step", "SB3 path ms/step",
                                  "SB3 / textgym"])
    for length in (int(x) for x in args.lengths.split(",")):
        env = synthetic_env(tok, args.batch, p, length, v)
        g = time_textgym(policy, env, args.repeats)
        h = time_generate(model, tok, env, length, args.repeats)
        s = time_sb3(sb3, env, length, args.repeats) if length <= args.sb3_max_length else float("nan")
        t1.add(length, 1000 * g / length, 1000 * h / length, 1000 * s / length, s / g)
        print(f"  length {length}: textgym {g:.2f} s, generate {h:.2f} s, SB3 {s:.2f} s", flush=True)
    t1.emit(f"### Time per generation step vs completion length (batch {args.batch})\n\n{header}",
            out_dir=args.out_dir,
            notes=f"One step = one token for each of the {args.batch} rows. SB3 path measured up to "
                  f"{args.sb3_max_length} tokens (`-` beyond).")

    # 2. tokens/s vs batch size (length fixed)
    t = args.new_tokens
    t2 = Table(f"scaling_batch-{tag}", ["batch", "textgym tokens/s", "generate tokens/s", "SB3 path tokens/s",
                                 "textgym / generate", "textgym / SB3"], {"textgym tokens/s": 1,
                                                                          "generate tokens/s": 1,
                                                                          "SB3 path tokens/s": 1})
    for b in (int(x) for x in args.batches.split(",")):
        env = synthetic_env(tok, b, p, t, v)
        g = time_textgym(policy, env, args.repeats)
        h = time_generate(model, tok, env, t, args.repeats)
        s = time_sb3(sb3, env, t, args.repeats) if b <= args.sb3_max_batch else float("nan")
        n = b * t
        t2.add(b, n / g, n / h, n / s, h / g, s / g)
        print(f"  batch {b}: textgym {g:.2f} s, generate {h:.2f} s, SB3 {s:.2f} s", flush=True)
    t2.emit(f"### Generated tokens per second vs batch size (T = {t})\n\n{header}", out_dir=args.out_dir,
            notes="Ratios > 1 mean textgym is faster.")
    if not np.isfinite(t1.rows[0][3]):
        print("note: the SB3 path was not measured at any length (raise --sb3-max-length)")


if __name__ == "__main__":
    main()
