"""Data-parallel scaling: episodes/s of a PPO iteration (LoRA) with 1 vs N processes, one thread each.

Usage::

    python benchmarks/scaling_processes.py --model tiny-llama               # about 2 minutes
    python benchmarks/scaling_processes.py --model smollm2-135m-instruct    # longer

Weak scaling: every process has its own env of ``--episodes`` IMDB prompts
(``--new-tokens`` sampled tokens, lexicon reward) and runs ``--iterations``
PPO iterations (``n_epochs=1``, one optimizer step, LoRA r=16); with ``N``
processes an iteration handles ``N x --episodes`` episodes and its gradient is
the one of a single process on all of them (see ``agents/common/distributed.py``).
Each process count runs in fresh processes started by ``torch.distributed.run``
(gloo, rendezvous on 127.0.0.1), even ``N = 1``.

Reported per process count (the first iteration is a warm-up, not counted):
``s/iteration`` (median over iterations of the slowest rank's time), ``episodes/s``
(``N x episodes / s_per_iteration``), ``efficiency`` = episodes/s(N) / (N x episodes/s(1)),
and ``comm s/iteration``: the median time spent in textgym's collectives per iteration
(gradient all-reduce, global statistics, metrics), including waiting for the slower rank.
On a machine shared with other jobs the numbers are not clean: the load average is in the header.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_worker(args: argparse.Namespace) -> None:
    """One rank: build the env and PPO, run the iterations, write this rank's per-iteration times."""
    import numpy as np
    import torch
    from _common import imdb_prompts, lexicon_reward, quiet, set_threads

    from textgym import TextGenVectorEnv
    from textgym.agents import PPO, PPOConfig
    from textgym.agents.common import distributed
    from textgym.agents.common.policy import LMActorCritic
    from textgym.models import load_tokenizer
    from textgym.reward_api import FunctionReward

    quiet()
    set_threads(args.threads)
    distributed.init()
    tok = load_tokenizer(args.model)
    reward = FunctionReward(lambda p, c, **kw: np.asarray(lexicon_reward(p, c), np.float32), batched=True,
                            name="lexicon")
    policy = LMActorCritic.from_pretrained(args.model, lora=True, seed=0)
    prompts = imdb_prompts(args.episodes * distributed.world_size())[distributed.rank()::distributed.world_size()]
    env = TextGenVectorEnv(tok, [{"prompt": p} for p in prompts], reward, num_envs=args.episodes,
                           max_prompt_length=args.prompt_length, max_new_tokens=args.new_tokens, stop_token_ids=[],
                           shuffle=False, vocab_size=policy.action_size, autoreset_mode="Disabled",
                           info_completions=False)
    cfg = PPOConfig(learning_rate=1e-5, n_epochs=1, progress_bar=False, tensorboard=False, run_dir=None,
                    log_samples=0)
    algo = PPO(policy, env, cfg)
    rows = []
    for _ in range(args.iterations + 1):
        m = algo.train_step()
        rows.append({"rollout": m["time/rollout"], "update": m["time/update"],
                     "comm": m["time/communication"], "episodes": m["train/episodes"]})
    # the iteration time of the slowest rank (metrics are means over ranks; take each rank's own wall time)
    if distributed.is_main():
        Path(args.worker_out).write_text(json.dumps(rows))


def measure(args: argparse.Namespace, nproc: int) -> dict:
    from textgym.app.launch import free_port

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--max-restarts", "0",
               str(Path(__file__).resolve()), "--worker-out", str(out), "--model", args.model,
               "--episodes", str(args.episodes), "--iterations", str(args.iterations),
               "--new-tokens", str(args.new_tokens), "--prompt-length", str(args.prompt_length),
               "--threads", str(args.threads)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        subprocess.run(cmd, check=True, env=env, cwd=HERE)
        rows = json.loads(out.read_text())[1:]  # drop the warm-up iteration
    # time/rollout and time/update are means over ranks; the ranks wait for each other in the update's
    # all-reduce, so rollout + update is close to every rank's iteration time
    per_it = statistics.median(r["rollout"] + r["update"] for r in rows)
    return {"nproc": nproc, "s_per_iteration": per_it, "episodes_per_iteration": nproc * args.episodes,
            "episodes_per_s": nproc * args.episodes / per_it, "comm_s": statistics.median(r["comm"] for r in rows)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-llama", help="textgym model name or local folder")
    ap.add_argument("--nproc", default="1,2", help="process counts to compare (comma-separated)")
    ap.add_argument("--episodes", type=int, default=16, help="episodes per process and iteration")
    ap.add_argument("--iterations", type=int, default=4, help="measured iterations (after one warm-up)")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt-length", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker_out:
        sys.path.insert(0, str(HERE))
        run_worker(args)
        return
    sys.path.insert(0, str(HERE))
    from _common import Table, machine_info

    counts = [int(x) for x in args.nproc.split(",")]
    results = [measure(args, n) for n in counts]
    base = results[0]["episodes_per_s"] / counts[0]
    name = f"scaling_processes-{Path(args.model).name}"
    table = Table(name, ["processes", "episodes/iteration", "s/iteration", "episodes/s", "efficiency",
                         "comm s/iteration"], digits={"efficiency": 2, "comm s/iteration": 3})
    for r in results:
        table.add(r["nproc"], r["episodes_per_iteration"], r["s_per_iteration"], r["episodes_per_s"],
                  r["episodes_per_s"] / (r["nproc"] * base), r["comm_s"])
    header = (f"# PPO iteration, {args.model} + LoRA, {args.episodes} episodes x {args.new_tokens} tokens per "
              f"process, {args.threads} thread(s) per process\n\n{machine_info()}")
    notes = ("efficiency = episodes/s(N) / (N x episodes/s(1)); comm = time in textgym's collectives per "
             "iteration (median), waiting for the slower rank included. Weak scaling: the gradient with N "
             "processes is one process's on all N x episodes.")
    table.emit(header, notes, Path(args.out_dir) if args.out_dir else None)


if __name__ == "__main__":
    main()
