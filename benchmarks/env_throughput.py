"""Token-steps per second of TextGenEnv and TextGenVectorEnv, with a constant reward and no model.

Usage::

    python benchmarks/env_throughput.py            # 1, 16, 64, 256 envs
    python benchmarks/env_throughput.py --quick    # fewer steps

Actions are random token ids (with EOS 2% of the time, so episodes end both
ways); the table gives token-steps per second (one token appended to one
episode = one token-step), best of ``--repeats`` runs.  The vector env runs
twice: with the finished completions decoded to text (``info_completions=True``,
what a text reward needs) and without any decoding (``info_completions=False``
with the constant reward, whose ``needs_text`` is ``False``).
Target (issue 2): >= 1,000,000 token-steps/s for the vector env at 256 envs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import Table, machine_info

from textgym import TextGenEnv, TextGenVectorEnv
from textgym.envs.sentiment import imdb_samples
from textgym.rewards import ConstantReward
from textgym.tokenizers import gpt2_bpe_tokenizer

constant_reward = ConstantReward(1.0)


def actions(rng: np.random.Generator, vocab: int, eos: int, shape) -> np.ndarray:
    a = rng.integers(0, vocab, size=shape)
    a[rng.random(shape) < 0.02] = eos
    return a


def bench_single(tok, samples, steps: int, kw) -> float:
    env = TextGenEnv(tok, samples, constant_reward, decode_every_step=False, **kw)
    rng = np.random.default_rng(0)
    acts = actions(rng, len(tok), tok.eos_token_id, steps)
    env.reset(seed=0)
    start = time.perf_counter()
    for a in acts:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - start)


def bench_vector(tok, samples, n: int, steps: int, kw, text: bool) -> float:
    venv = TextGenVectorEnv(tok, samples, constant_reward, n, info_completions=text, **kw)
    rng = np.random.default_rng(0)
    acts = actions(rng, len(tok), tok.eos_token_id, (steps, n))
    venv.reset(seed=0)
    start = time.perf_counter()
    for a in acts:
        venv.step(a)
    return steps * n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--out-dir", default=None, help="where to write the table (default benchmarks/results)")
    args = parser.parse_args(argv)
    tok = gpt2_bpe_tokenizer()
    samples = imdb_samples("train")
    kw = dict(max_prompt_length=64, max_new_tokens=args.max_new_tokens)
    steps = 500 if args.quick else 2000
    single = max(bench_single(tok, samples, steps * 4, kw) for _ in range(args.repeats))
    rows = [("TextGenEnv", 1, single, single)]
    for n in (1, 16, 64, 256):
        k = steps if n < 256 else steps // 2
        text = max(bench_vector(tok, samples, n, k, kw, True) for _ in range(args.repeats))
        bare = max(bench_vector(tok, samples, n, k, kw, False) for _ in range(args.repeats))
        rows.append(("TextGenVectorEnv", n, text, bare))
    table = Table("env_throughput", ["env", "num_envs", "token-steps/s, text decoded", "token-steps/s, no decoding"],
                  {"token-steps/s, text decoded": 0, "token-steps/s, no decoding": 0})
    for name, n, text, bare in rows:
        table.add(name, n, text, bare if name != "TextGenEnv" else float("nan"))
    _, _, text, bare = rows[-1]
    notes = "\n".join(f"vector env at 256 envs, {label}: {rate:,.0f} token-steps/s (target >= 1,000,000: "
                      f"{'met' if rate >= 1e6 else 'MISSED'})" for label, rate in (("text decoded", text),
                                                                                  ("no decoding", bare)))
    table.emit(f"env throughput: GPT-2 BPE tokenizer, IMDB prompts (P=64), T={args.max_new_tokens}, constant "
               f"reward\nmachine: {machine_info()}", notes, out_dir=args.out_dir)


if __name__ == "__main__":
    main()
