"""Rollout speed: textgym's RolloutCollector vs ``model.generate``, and time per token vs completion length.

Usage::

    python benchmarks/rollout_throughput.py                                 # tiny-llama, CPU
    python benchmarks/rollout_throughput.py --model smollm2-135m-instruct   # first load converts a GGUF (~45 s)
    python benchmarks/rollout_throughput.py --device cuda --batch 64

Both sides use the same model, batch, prompt length ``P``, completion length
``T`` (no stop token, so every row generates exactly ``T`` tokens) and
sampling settings.  The textgym rollout steps a ``TextGenVectorEnv`` with each
sampled token (constant reward) and records logprobs and values; its scoring
pass, which ``generate`` has no counterpart of, is timed separately: the
reference model's logprobs (needed for the KL penalty) and, by default, the
policy's logprobs/values recomputed on the update's code path.

Table 1: generated tokens per second (``batch * T / seconds``, best of
``--repeats``) and the ratio textgym / generate (target >= 0.9 for
generation).  Table 2: milliseconds per generated token (per step of the
whole batch) at completion lengths 32, 128, 512: about flat thanks to the KV
cache (an uncached loop would grow linearly).
"""

from __future__ import annotations

import argparse
import re

import torch
from _common import Table, machine_info, parse_bench_args, time_scoring, timed_runs
from _common import synthetic_env as make_env

from textgym.agents import LMActorCritic, RolloutCollector, SamplingParams


def time_textgym(policy, env, sp, repeats: int, rescore: bool = True) -> tuple[float, float]:
    """Best (generation seconds, scoring seconds) over ``repeats`` rollouts."""
    col = RolloutCollector(policy, env, sp, seed=0, rescore_policy=rescore)
    spent = time_scoring(col)
    best = (float("inf"), float("inf"))
    for total, _ in timed_runs(lambda: col.collect(seed=0), repeats, policy.device):
        best = min(best, (total - spent["score"], spent["score"]))
    return best


def time_generate(model, tok, env, sp, t: int, repeats: int) -> float:
    obs, _ = env.reset(seed=0)
    p = env.max_prompt_length
    dev = model.device
    ids = torch.from_numpy(obs["input_ids"][:, :p]).to(dev)
    mask = torch.from_numpy(obs["attention_mask"][:, :p]).to(dev)
    kw = dict(do_sample=True, temperature=sp.temperature, top_k=sp.top_k or 0, top_p=sp.top_p,
              max_new_tokens=t, min_new_tokens=t, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        runs = list(timed_runs(lambda: model.generate(input_ids=ids, attention_mask=mask, **kw), repeats, dev))
    out = runs[-1][1]
    assert out.shape[1] == p + t, out.shape
    return min(seconds for seconds, _ in runs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-llama",
                    help="tiny-llama (default), tiny-gpt2, smollm2-135m-instruct or a model path")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--prompt-length", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64, help="T for table 1")
    ap.add_argument("--lengths", default="32,128,512", help="completion lengths for table 2 ('' to skip it)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=0)
    ap.add_argument("--top-p", type=float, default=1.0)
    args = parse_bench_args(ap, argv, repeats=3, out="tables")

    policy = LMActorCritic.from_pretrained(args.model, device=args.device)
    model, tok = policy.lm, policy.tokenizer
    sp = SamplingParams(args.temperature, args.top_k or None, args.top_p)
    b, p, t = args.batch, args.prompt_length, args.new_tokens
    header = (f"model={args.model} device={args.device} batch={b} P={p} T={t} temperature={sp.temperature} "
              f"top_k={sp.top_k} top_p={sp.top_p} threads={torch.get_num_threads()}\nmachine: {machine_info()}")
    print(header, flush=True)
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", args.model.rstrip("/").split("/")[-1])

    env = make_env(tok, b, p, t, policy.action_size)
    gen_s, score_s = time_textgym(policy, env, sp, args.repeats)
    gen2_s, ref_s = time_textgym(policy, env, sp, args.repeats, rescore=False)
    hf_s = time_generate(model, tok, env, sp, t, args.repeats)
    n_tok = b * t
    rows = [("model.generate", hf_s),
            ("textgym rollout: generation", min(gen_s, gen2_s)),
            ("  + reference pass (rescore_policy=False)", gen2_s + ref_s),
            ("  + policy & reference pass (default)", gen_s + score_s)]
    t1 = Table(f"rollout_throughput-{tag}", ["method", "tokens/s", "ratio vs generate"], {"tokens/s": 0})
    for name, sec in rows:
        t1.add(name, n_tok / sec, hf_s / sec)
    t1.emit(f"### Rollout vs model.generate ({args.model})\n\n{header}", out_dir=args.out_dir,
            notes="Target: ratio >= 0.9. Best of the repeats after one warm-up rollout.")

    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    if lengths:
        t2 = Table(f"rollout_length-{tag}", ["completion length", "ms per token step (textgym)",
                                              "ms per token step (generate)"])
        for length in lengths:
            env = make_env(tok, b, p, length, policy.action_size)
            g, _ = time_textgym(policy, env, sp, 1)
            h = time_generate(model, tok, env, sp, length, 1)
            t2.add(length, 1000 * g / length, 1000 * h / length)
        t2.emit(f"### Time per token step vs completion length ({args.model}, batch {b})", out_dir=args.out_dir)


if __name__ == "__main__":
    main()
