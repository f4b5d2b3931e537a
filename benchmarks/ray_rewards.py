"""Ray reward workers: code-sandbox programs scored per second in-process vs on 1 and 2 Ray actors.

Scores MBPP's reference solutions (bundled data, 3 tests each; every one passes) with the
code-execution reward (bubblewrap sandbox), one sandbox at a time per scorer
(``CodeExecutionReward(workers=1)``): in this process, then through
:class:`textgym.rewards.RayRewardWorkers` on 1 and on 2 Ray actors (one CPU each),
plus the in-process reward with 2 sandbox threads for comparison.  Every row must
return the same scores.  Ray runs on this machine (``ray.init(num_cpus=2)``, no dashboard,
usage statistics off).  Prints one table.

    python benchmarks/ray_rewards.py            # batch 32, best of 3
    python benchmarks/ray_rewards.py --quick    # batch 16, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
from _common import Table, machine_info  # noqa: E402

import textgym.rewards as R  # noqa: E402
from textgym.reward_api import call_reward  # noqa: E402
from textgym.rewards.ray_workers import ensure_ray  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batch 16, 1 timed repeat")
    parser.add_argument("--batch", type=int, default=32, help="programs per batch (default 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-dir", default=None, help="where to write the table (default benchmarks/results)")
    args = parser.parse_args(argv)
    n, repeats = (16, 1) if args.quick else (args.batch, args.repeats)

    from textgym.envs.datasets import load

    mbpp = load("mbpp", "test").to_list()[:n]
    prompts, programs = [""] * n, [r["code"] for r in mbpp]
    columns = {"test_list": [r["test_list"] for r in mbpp], "test_setup_code": [r["test_setup_code"] for r in mbpp]}

    ray = ensure_ray(num_cpus=2)
    scorers = [("in-process, 1 sandbox at a time", R.CodeExecutionReward(timeout=10.0, workers=1)),
               ("in-process, 2 sandbox threads", R.CodeExecutionReward(timeout=10.0, workers=2))]
    for actors in (1, 2):
        scorers.append((f"Ray, {actors} actor{'s' if actors > 1 else ''} x 1 sandbox",
                        R.RayRewardWorkers(R.CodeExecutionReward(timeout=10.0, workers=1), actors=actors)))
    rows, reference = [], None
    for label, reward in scorers:
        call_reward(reward, prompts[:2], programs[:2], columns={k: v[:2] for k, v in columns.items()})  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scores, _ = call_reward(reward, prompts, programs, columns=columns)
            times.append(time.perf_counter() - start)
        if reference is None:
            reference = scores
        assert np.array_equal(scores, reference) and (scores == 1.0).all(), (label, scores)  # same verdicts
        best = min(times)
        rows.append((label, n, n / best, best * 1000))
        if isinstance(reward, R.RayRewardWorkers):
            reward.close()
    ray.shutdown()
    base = rows[0][2]
    table = Table("ray_rewards", ["scorer", "batch", "programs/s", "ms/batch", "vs in-process"],
                  {"programs/s": 1, "ms/batch": 0})
    for row in rows:
        table.add(*row, row[2] / base)
    table.emit(f"Code-sandbox reward on Ray actors (MBPP references, best of {repeats})\n"
               f"machine: {machine_info()}", out_dir=args.out_dir)


if __name__ == "__main__":
    main()
