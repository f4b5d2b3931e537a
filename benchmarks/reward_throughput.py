"""Reward throughput: completions scored per second for each built-in reward.

Scores batches of 64 synthetic completions (about 20 words, one or two
references each) with every built-in metric, rule and lexicon reward, with
tiny randomly initialised model rewards (CPU), and runs the code-execution
sandbox (bubblewrap, one sandbox per program, parallel workers) on a toy
program and on MBPP's reference solutions with their 3 tests each: its
``completions/s`` is programs per second.  Prints one table.  Runs offline.

    python benchmarks/reward_throughput.py            # full run (a few minutes on 2 cores)
    python benchmarks/reward_throughput.py --quick    # fewer repeats, smaller sandbox batch
    python benchmarks/reward_throughput.py --sandbox-only   # only the code-execution rows
"""

from __future__ import annotations

import argparse
import os
import random
import time

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from _common import Table, machine_info  # noqa: E402

import textgym.rewards as R  # noqa: E402
from textgym.reward_api import call_reward  # noqa: E402

WORDS = ("the a cat dog sat ran on under mat park quickly slowly big small red blue house car tree river "
         "saw found gave took happy sad old new good bad movie plot actor scene").split()


def synthetic_batch(n: int, seed: int = 0):
    rng = random.Random(seed)
    completions, references = [], []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(12, 28))]
        completions.append(" ".join(words))
        ref = list(words)
        for _ in range(len(ref) // 4):
            ref[rng.randrange(len(ref))] = rng.choice(WORDS)
        references.append([" ".join(ref)] + ([" ".join(reversed(ref))] if rng.random() < 0.5 else []))
    return ["Write a sentence:"] * n, completions, references


def tiny_models():
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForSequenceClassification
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "</s>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>")
    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=128, num_labels=2))
    llama = LlamaForSequenceClassification(LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128,
                                                       num_hidden_layers=2, num_attention_heads=2,
                                                       num_key_value_heads=2, num_labels=1, pad_token_id=0))
    return [("classifier (tiny BERT)", R.ClassifierReward(bert, hf)),
            ("reward-model (tiny Llama)", R.RewardModelReward(llama, hf))]


def mbpp_references(n: int) -> list[dict]:
    """The first ``n`` problems of MBPP's test split (bundled data), with their reference solutions."""
    from textgym.envs.datasets import load

    return load("mbpp", "test").to_list()[:n]


def measure(reward, prompts, completions, references, columns=None, repeats=3):
    call_reward(reward, prompts[:2], completions[:2], references=references[:2],
                columns={k: v[:2] for k, v in (columns or {}).items()} or None)  # warm-up (lazy loads)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scores, _ = call_reward(reward, prompts, completions, references=references, columns=columns)
        times.append(time.perf_counter() - start)
        assert scores.shape == (len(completions),) and np.isfinite(scores).all()
    best = min(times)
    return len(completions) / best, best * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 timed repeat, 16-sample sandbox batch")
    parser.add_argument("--batch", type=int, default=64, help="completions per batch (default 64)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="sandbox worker processes")
    parser.add_argument("--no-models", action="store_true", help="skip the tiny model rewards (no torch import)")
    parser.add_argument("--sandbox-only", action="store_true", help="only the code-execution sandbox rows")
    parser.add_argument("--out-dir", default=None, help="where to write the table (default benchmarks/results)")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 3
    prompts, completions, references = synthetic_batch(args.batch)
    concepts = [["cat", "dog", "run"]] * args.batch

    rows = []
    rewards = [] if args.sandbox_only else [(name, R.make(name)) for name in
               ["bleu", "sacrebleu", "chrf", "rouge1", "rouge2", "rougeL", "meteor", "exact-match", "token-f1"]]
    rewards += [] if args.sandbox_only else [
        ("sentiment-vader", R.make("sentiment-vader")),
        ("length", R.make("length", target=20)),
        ("repetition", R.make("repetition")),
        ("regex", R.make("regex", pattern=r"\bcat\b")),
        ("constant", R.make("constant")),
    ]
    for name, reward in rewards:
        rows.append((name, args.batch, *measure(reward, prompts, completions, references, repeats=repeats)))
    if not args.sandbox_only:
        rows.append(("keyword-coverage", args.batch, *measure(R.make("keyword-coverage"), prompts, completions,
                                                              references, {"concepts": concepts}, repeats)))
    if not args.no_models and not args.sandbox_only:
        for name, reward in tiny_models():
            rows.append((name, args.batch, *measure(reward, prompts, completions, references, repeats=repeats)))

    n_code = 16 if args.quick else args.batch
    code = ["def add(a, b):\n    return a + b\n" if i % 2 == 0 else "def add(a, b):\n    return a - b\n"
            for i in range(n_code)]
    for workers in sorted({1, args.workers}):  # a 1-worker row too: the parallel speed-up is the ratio of the rows
        sandbox = R.CodeExecutionReward(timeout=10.0, workers=workers)
        rows.append((f"code-exec ({workers} workers)", n_code,
                     *measure(sandbox, ["# add\n"] * n_code, code, [[""]] * n_code,
                              {"test_list": [["assert add(1, 2) == 3", "assert add(0, 0) == 0"]] * n_code}, repeats)))
    mbpp = mbpp_references(n_code)
    rows.append((f"code-exec, MBPP references ({args.workers} workers)", n_code,
                 *measure(sandbox, [""] * n_code, [r["code"] for r in mbpp], [[""]] * n_code,
                          {"test_list": [r["test_list"] for r in mbpp],
                           "test_setup_code": [r["test_setup_code"] for r in mbpp]}, repeats)))
    assert sandbox.last_reasons == ["passed 3/3"] * n_code, sandbox.last_reasons

    name = "reward_throughput-sandbox" if args.sandbox_only else "reward_throughput"
    table = Table(name, ["reward", "batch", "completions/s", "ms/batch"], {"completions/s": 0, "ms/batch": 1})
    for row in rows:
        table.add(*row)
    table.emit(f"Reward throughput ({'quick' if args.quick else 'full'} run, CPU, best of {repeats})\n"
               f"machine: {machine_info()}", out_dir=args.out_dir)


if __name__ == "__main__":
    main()
