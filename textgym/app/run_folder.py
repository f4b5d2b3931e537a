"""Run-folder files of the ``textgym train`` pipeline: atomic CSV / JSON Lines I/O, resume bookkeeping, tables.

Everything here is plain file handling that :mod:`textgym.app.pipeline`
needs around the training itself:

* atomic writes (temp file + rename) and readers that drop a line a kill cut short;
* :func:`truncate_run_logs`, which removes what was logged after the checkpoint a
  resumed run continues from, and :func:`purge_tensorboard`, its TensorBoard twin;
* checkpoint helpers (:func:`has_checkpoint`, :func:`checkpoint_counters`,
  :func:`recover_checkpoint`);
* :func:`rng_preserved` and :func:`sigterm_as_interrupt`, the two context managers
  that keep evaluations from shifting training and turn a kill into Ctrl-C;
* :func:`format_table` / :func:`sample_table`, the before/after and sample tables.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["TABLE_METRICS", "EVAL_STAGES", "write_atomic", "read_jsonl", "write_jsonl", "read_csv", "write_csv",
           "append_csv", "truncate_run_logs", "rng_preserved", "sigterm_as_interrupt", "has_checkpoint",
           "checkpoint_counters", "recover_checkpoint", "purge_tensorboard", "format_table", "sample_table"]

#: Metrics shown in the before/after table, in this order (when present).
TABLE_METRICS = ("success_rate", "success_ci95_low", "success_ci95_high", "turns_mean", "score_mean", "score_ci95",
                 "kl_ref", "perplexity", "distinct_1", "distinct_2", "length_mean", "terminated_frac")
EVAL_STAGES = ("before", "sft", "preference", "after")


# ----------------------------------------------------------------------------- small file helpers


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over ``path`` (readers never see half)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines file (``[]`` if missing); a line a kill cut short is dropped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: dropped
                continue
    return rows


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``rows`` as JSON Lines, atomically."""
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """``(header, rows as dicts of strings)`` of a CSV file (``([], [])`` if missing)."""
    if not path.is_file():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        # a row cut by a kill has too few cells (None values) or a stray one (None key): dropped
        rows = [r for r in reader if None not in r and None not in r.values()]
        return list(reader.fieldnames or []), rows


def write_csv(path: Path, fields: list[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a CSV file with header ``fields`` (other keys of the rows ignored), atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def append_csv(path: Path, row: Mapping[str, Any]) -> None:
    """Append ``row``; new columns rewrite the file with the wider header."""
    fields, rows = read_csv(path)
    if not fields or any(k not in fields for k in row):
        fields = fields + [k for k in row if k not in fields]
        write_csv(path, fields, [*rows, row])
    else:
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=fields, extrasaction="ignore").writerow(row)


def truncate_run_logs(run_dir: Path, iteration: int) -> None:
    """Drop what was logged after RL ``iteration``: ``metrics.csv`` rows (``step > iteration``),
    ``samples.jsonl`` lines, and ``eval.csv`` rows of the ``train`` / ``after`` stages."""
    fields, rows = read_csv(run_dir / "metrics.csv")
    if fields:
        write_csv(run_dir / "metrics.csv", fields, [r for r in rows if float(r["step"]) <= iteration])
    samples = run_dir / "samples.jsonl"
    if samples.is_file():
        write_jsonl(samples, [r for r in read_jsonl(samples) if int(r.get("iteration", 0)) <= iteration])
    fields, rows = read_csv(run_dir / "eval.csv")
    if fields:
        keep = [r for r in rows if r.get("stage") in ("before", "sft")
                or (r.get("stage") == "train" and float(r["iteration"]) <= iteration)]
        write_csv(run_dir / "eval.csv", fields, keep)


@contextlib.contextmanager
def rng_preserved() -> Iterator[None]:
    """Restore the global Python / NumPy / torch RNG states on exit (evaluations never shift training)."""
    from textgym.agents.common.checkpoint import rng_state, set_rng_state

    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into ``KeyboardInterrupt`` (main thread only), so a kill stops like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def has_checkpoint(path: Path) -> bool:
    """``path`` holds an algorithm checkpoint (textgym's ``trainer_state.pt`` or the SB3 adapters' ``.json``)."""
    return (path / "trainer_state.pt").is_file() or (path / "trainer_state.json").is_file()


def checkpoint_counters(path: Path) -> dict[str, Any]:
    """The counters of an algorithm checkpoint (``iteration``, ...), the ``.pt`` file read memory-mapped."""
    if (path / "trainer_state.json").is_file():
        return dict(json.loads((path / "trainer_state.json").read_text())["counters"])
    import torch

    state = torch.load(path / "trainer_state.pt", weights_only=False, mmap=True, map_location="cpu")
    return dict(state["counters"])


def recover_checkpoint(ckpt: Path) -> bool:
    """Make ``ckpt`` the newest complete checkpoint and delete what kills left beside it.

    A checkpoint is complete when its ``MANIFEST.json`` (written last) matches its files
    (:func:`textgym.agents.common.checkpoint.recover_directory`): a folder half written
    (``.checkpoint.tmp-*``) or half deleted (``.checkpoint.old-*``) is never picked, and
    every such leftover is removed.  A ``checkpoint/`` from before manifests existed is
    kept when it is the only one.  The caller must hold the run folder's lock.

    Returns:
        ``ckpt`` holds a checkpoint now.

    Raises:
        textgym.agents.common.checkpoint.CheckpointError: ``ckpt`` is damaged and nothing complete is left.
    """
    from textgym.agents.common.checkpoint import recover_directory

    return recover_directory(ckpt, legacy_ok=has_checkpoint) is not None and has_checkpoint(ckpt)


def purge_tensorboard(run_dir: Path, iteration: int) -> None:
    """Make TensorBoard drop the events logged after ``iteration`` (before the resumed run logs again).

    A writer opened with ``purge_step`` writes a session-start event; TensorBoard then discards
    earlier-written events of steps ``>= purge_step`` in that folder.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is a dependency
        return
    for folder in (run_dir / "tb", run_dir / "tb" / "eval"):
        if folder.is_dir():
            SummaryWriter(str(folder), purge_step=iteration + 1).close()


# ----------------------------------------------------------------------------- tables and reports


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def format_table(evals: Mapping[str, Mapping[str, float]], metrics: Sequence[str] = TABLE_METRICS,
                 markdown: bool = False) -> str:
    """A metrics x stages table with a ``change`` column (last stage minus the first).

    Args:
        evals: ``{stage: {metric: value}}`` (stages in display order).
        metrics: rows, shown when any stage has them.
        markdown: a Markdown table instead of aligned plain text.
    """
    stages = [s for s in evals if evals[s]]
    rows = [m for m in metrics if any(m in evals[s] for s in stages)]
    header = ["metric", *stages] + (["change"] if len(stages) > 1 else [])
    body = []
    for m in rows:
        vals = [evals[s].get(m) for s in stages]
        line = [m, *(_fmt(v) for v in vals)]
        if len(stages) > 1:
            a, b = vals[0], vals[-1]
            line.append(f"{b - a:+.4g}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "-")
        body.append(line)
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        return "\n".join(out + ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def fmt_row(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt_row(header), "  ".join("-" * w for w in widths), *(fmt_row(r) for r in body)])


def _md_cell(text: Any, limit: int = 160) -> str:
    s = str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|").strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def sample_table(samples: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """A Markdown table: one row per evaluation prompt, the completion (and score) of each stage.

    Args:
        samples: ``{stage: [{"prompt", "completion", "score"}, ...]}``; the stages' lists follow
            the same prompts (evaluations are seeded), so row ``i`` compares stages on prompt ``i``.
    """
    stages = [s for s in EVAL_STAGES if samples.get(s)]
    if not stages:
        return "(no evaluation samples)"
    n = min(len(samples[s]) for s in stages)
    head = ["prompt"] + [f"{s} (score)" for s in stages]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for i in range(n):
        cells = [_md_cell(samples[stages[0]][i]["prompt"], 100)]
        cells += [f"{_md_cell(samples[s][i]['completion'])} ({float(samples[s][i]['score']):.3f})" for s in stages]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
