"""A small metrics logger: CSV + TensorBoard files in a run folder, and a tqdm progress bar.

``Logger(run_dir)`` writes ``run_dir/metrics.csv`` (one row per ``log`` call,
a ``step`` column first; new metric names add columns and rewrite the file,
which stays small) and TensorBoard event files in ``run_dir/tb``.  Strings
(e.g. ``stats/kl_ref_estimator``) go to the CSV and to TensorBoard as text.
``run_dir=None`` keeps metrics in memory only (``logger.history``).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["Logger"]

#: Metrics shown in the progress bar's postfix when present.
PROGRESS_KEYS = ("reward/score", "stats/kl_ref", "stats/kl_coef", "loss/value")


class Logger:
    """CSV + TensorBoard + tqdm.

    Args:
        run_dir: folder for ``metrics.csv`` and ``tb/`` (created), or ``None``.
        tensorboard: write TensorBoard events (needs the ``tensorboard`` package).
        progress: show a tqdm bar (see :meth:`start_progress`).
        resume: append to an existing ``metrics.csv`` instead of starting a new one.
    """

    def __init__(self, run_dir: str | os.PathLike | None = None, *, tensorboard: bool = True, progress: bool = True,
                 resume: bool = False):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.history: list[dict[str, Any]] = []
        self._fields: list[str] = ["step"]
        self._tb = None
        self._bar = None
        self.progress = progress
        self.progress_offset = 0  # work done before this learn() call (a resumed run): the bar starts there
        self.skipped_steps = 0  # optimizer steps skipped on a non-finite loss or gradient (shown in the bar)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            csv_path = self.run_dir / "metrics.csv"
            if resume and csv_path.is_file():
                with open(csv_path, newline="") as f:
                    self.history = [dict(row) for row in csv.DictReader(f)]
                    self._fields = list(self.history[0]) if self.history else ["step"]
            elif csv_path.exists():
                csv_path.unlink()
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tb"))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` at ``step`` (numbers as scalars, strings as text)."""
        row = {"step": step, **metrics}
        self.history.append(row)
        skipped = metrics.get("stats/skipped_steps")
        self.skipped_steps += int(skipped) if isinstance(skipped, (int, float)) and math.isfinite(skipped) else 0
        if self.run_dir is not None:
            self._write_csv(row)
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, str):
                    self._tb.add_text(k, v, step)
                elif v is not None and isinstance(v, (int, float)) and math.isfinite(float(v)):
                    self._tb.add_scalar(k, float(v), step)
            self._tb.flush()
        if self._bar is not None:
            shown = {k.split("/")[-1]: f"{float(metrics[k]):.3g}" for k in PROGRESS_KEYS
                     if isinstance(metrics.get(k), (int, float))}
            if self.skipped_steps:  # loud: a skipped optimizer step is never silent
                shown["SKIPPED_STEPS"] = str(self.skipped_steps)
            self._bar.set_postfix(shown, refresh=False)

    def _write_csv(self, row: dict[str, Any]) -> None:
        path = self.run_dir / "metrics.csv"
        new = [k for k in row if k not in self._fields]
        if new or not path.exists():
            self._fields += new
            with open(path, "w", newline="") as f:  # rewrite with the wider header
                w = csv.DictWriter(f, fieldnames=self._fields)
                w.writeheader()
                w.writerows(self.history)
        else:
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._fields).writerow(row)

    def start_progress(self, total: int, unit: str, initial: int = 0) -> None:
        """Open the progress bar (no-op when ``progress=False``)."""
        if self.progress:
            from tqdm.auto import tqdm

            self.close_progress()
            off = self.progress_offset
            self._bar = tqdm(total=total + off, unit=unit, initial=initial + off, dynamic_ncols=True)

    def advance(self, n: int) -> None:
        """Move the progress bar by ``n``."""
        if self._bar is not None:
            self._bar.update(n)

    def close_progress(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        """Close the bar and the TensorBoard writer."""
        self.close_progress()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
