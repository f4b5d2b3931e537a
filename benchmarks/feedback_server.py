"""Feedback web app: judgments per second with concurrent simulated annotators, and submit latency.

A real server (``textgym feedback serve`` in a subprocess: uvicorn, one process, SQLite in
WAL mode with ``synchronous=FULL``, so every acknowledged judgment is on disk) on 127.0.0.1;
``--annotators`` simulated annotators (threads, one HTTP client each) judge the whole queue
through the JSON API (``GET /api/next``, ``POST /api/judgments`` with ratings, ranking and vote),
all at once.  The rater is free (text length), so the table measures the server.

    python benchmarks/feedback_server.py                 # 8 annotators, 500 judgments
    python benchmarks/feedback_server.py --annotators 16 --items 250
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import Table, machine_info


def length_rater(prompts, completions):
    return np.array([len(c) for c in completions], dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--items", type=int, default=125, help="items (K = 2 completions each)")
    parser.add_argument("--per-item", type=int, default=4, help="judgments per item (items x per-item = judgments)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-dir", default=None, help="where to write the table (default benchmarks/results)")
    args = parser.parse_args(argv)

    from textgym.app.feedback.db import Project
    from textgym.app.feedback.serve import free_port, start_server_process
    from textgym.app.feedback.simulate import run_simulation

    table = Table("feedback_server", ["annotators", "judgments", "seconds", "judgments/s", "p50 submit ms",
                                      "p95 submit ms", "retries"])
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bench.db"
            p = Project(db, create=True, judgments_per_item=args.per_item)
            p.add_items([{"prompt": f"prompt {i}", "completions": [f"answer {i}", f"a longer answer {i}"]}
                         for i in range(args.items)])
            tokens = {f"a{i}": p.add_annotator(f"a{i}") for i in range(args.annotators)}
            p.close()
            port = free_port()
            proc = start_server_process(db, port)
            try:
                res = run_simulation(f"http://127.0.0.1:{port}", tokens, length_rater, noise=0.3, seed=r)
            finally:
                proc.kill()
                proc.wait()
            if res.errors:
                raise SystemExit(f"errors: {res.errors[:3]}")
            lat = np.array(res.latencies) * 1000
            table.add(args.annotators, len(res.acks), res.seconds, res.judgments_per_second,
                      float(np.percentile(lat, 50)), float(np.percentile(lat, 95)), res.retries)
    table.emit(f"## Feedback server: {args.annotators} concurrent simulated annotators, {args.repeats} runs\n\n"
               f"machine: {machine_info()}",
               "One uvicorn worker; each judgment is committed (WAL, synchronous=FULL) before its 201. "
               "Submit latency: POST /api/judgments as the client sees it.", out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
