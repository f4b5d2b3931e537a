"""Time ``make demo`` as a new user meets it, stage by stage.

Maintainer tool (not part of the package).  It clones the repository's committed
``HEAD`` (or ``--rev``) into a temporary folder, points ``$TEXTGYM_CACHE`` at an
empty folder (so the GGUF conversion and the sentiment classifier run as on a
first use), runs ``make demo`` there, stamps every output line with the seconds
since the start into a log, and prints the per-stage table
(``docs/flagship/profile.md`` holds the published ones)::

    python scripts/time_demo.py                 # fresh clone of HEAD; log in ./demo_timing.log
    python scripts/time_demo.py --parse LOG     # only the table of an earlier log

Run it with nothing else on the machine: the point is the time a new user waits.
The stages are cut at the lines the pipeline prints (``[sft] ...``, ``[eval before] ...``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: (stage, regex of the line that starts it); a stage ends where the next one starts.
STAGES = [
    ("install (venv, torch, textgym, model wheels)", r"^"),
    ("start-up, SmolLM2 GGUF -> safetensors", r"textgym train "),
    ("sentiment classifier: training + accuracy checks", r"training the sentiment classifier"),
    ("SFT data (score 800 continuations)", r"\[sft\] fine-tuning"),
    ("SFT (20 steps of 8)", r"\[sft\] min_reward"),
    ("evaluation: before", r"\[eval before\] \d+ episodes"),
    ("bias probes: before", r"\[bias before\] CrowS"),
    ("evaluation: after SFT", r"\[eval sft\] \d+ episodes"),
    ("bias probes: after SFT", r"\[bias sft\] CrowS"),
    ("PPO (8 iterations)", r"\[rl\] \w+ from"),
    ("evaluation: after PPO", r"\[eval after\] \d+ episodes"),
    ("bias probes: after PPO", r"\[bias after\] CrowS"),
    ("report and plots", r"\[bias after\] done"),
]


def stage_table(log: Path) -> list[tuple[str, float]]:
    """``(stage, seconds)`` rows (and ``("total", s)``) of a log written by :func:`run`."""
    text = log.read_text(errors="replace")
    stamped = []
    for line in text.splitlines():
        m = re.match(r"\s*([0-9.]+) (.*)", line)
        if m:
            stamped.append((float(m.group(1)), m.group(2)))
    total = re.search(r"^TOTAL ([0-9.]+)", text, re.M)
    if total is None:
        raise SystemExit(f"{log}: no TOTAL line (the run did not finish); rerun it")
    starts = []
    for name, pattern in STAGES:
        hit = next((t for t, text in stamped if re.search(pattern, text)), None)
        if hit is None:
            raise SystemExit(f"{log}: no line for stage {name!r} ({pattern}); was this a `make demo` log?")
        starts.append(0.0 if pattern == "^" else hit)
    ends = starts[1:] + [float(total.group(1))]
    return [(name, e - s) for (name, _), s, e in zip(STAGES, starts, ends)] + [("total", float(total.group(1)))]


def run(rev: str, log: Path) -> None:
    """Clone ``rev`` into a temporary folder and run ``make demo`` there with an empty cache, stamping lines."""
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="textgym-demo-") as tmp:
        clone, cache = Path(tmp) / "textgym", Path(tmp) / "cache"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        subprocess.run(["git", "checkout", "-q", rev], cwd=clone, check=True)
        env = dict(os.environ, TEXTGYM_CACHE=str(cache))
        env.pop("VIRTUAL_ENV", None)
        start = time.perf_counter()
        with open(log, "w") as out:
            proc = subprocess.Popen(["make", "demo"], cwd=clone, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace")
            for line in proc.stdout:
                out.write(f"{time.perf_counter() - start:8.1f} {line.rstrip()}\n")
            rc = proc.wait()
            elapsed = time.perf_counter() - start
            sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                                 text=True).stdout.strip()
            out.write(f"TOTAL {elapsed:.1f} s rev={sha} exit={rc}\n")
    if rc != 0:
        raise SystemExit(f"make demo failed (exit {rc}); see {log}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="HEAD", help="commit to clone (default: HEAD)")
    ap.add_argument("--log", type=Path, default=Path("demo_timing.log"), help="the stamped output")
    ap.add_argument("--parse", type=Path, metavar="LOG", help="only print the table of an earlier log")
    args = ap.parse_args(argv)
    if args.parse is None:
        run(args.rev, args.log)
    for name, seconds in stage_table(args.parse or args.log):
        print(f"| {name} | {seconds:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
