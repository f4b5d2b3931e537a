"""PNG plots of a run folder and of algorithm comparisons (matplotlib, Agg, no display needed).

* :func:`plot_run` turns a run folder's ``metrics.csv`` (written by
  :class:`textgym.agents.common.logger.Logger`), ``eval.csv`` and ``eval.json``
  (written by the pipeline) into ``plots/training.png``, ``plots/eval.png``
  and ``plots/before_after.png``.
* :func:`plot_learning_curves` draws mean curves with shaded confidence bands,
  one per algorithm, for the comparison harness.

Figures are built with :class:`matplotlib.figure.Figure` directly (never
``pyplot``), so no GUI backend is touched and no global figure state leaks;
every PNG is written to a temporary file and renamed into place, so a reader
never sees a half-written image.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_run", "plot_learning_curves", "read_csv_columns", "rolling_mean", "TRAINING_PANELS",
           "EVAL_PANELS", "BEFORE_AFTER_METRICS"]

#: ``metrics.csv`` columns plotted in ``training.png``, one panel each: (column, title).
TRAINING_PANELS = (("reward/score", "reward/score"), ("stats/kl_ref", "KL to reference (nats / episode)"),
                   ("loss/policy", "loss/policy"), ("stats/entropy", "stats/entropy (nats / token)"))

#: ``eval.csv`` panels in ``eval.png``: (title, columns on that panel).
EVAL_PANELS = (("score (mean, 95% CI)", ("score_mean",)), ("KL to reference (nats / episode)", ("kl_ref",)),
               ("perplexity on held-out text", ("perplexity",)), ("diversity", ("distinct_1", "distinct_2")))

#: ``eval.json`` metrics compared in ``before_after.png``, in this order when present (then every
#: ``bias/...`` metric of the bias probes, with its ``_lo`` / ``_hi`` CI).
BEFORE_AFTER_METRICS = ("score_mean", "kl_ref", "perplexity", "distinct_1", "distinct_2", "length_mean")

#: Stage order on the before/after chart; other stages follow in file order.
STAGE_ORDER = ("before", "sft", "preference", "after")
#: Stages evaluated before RL: their ``kl_ref`` is to their own reference (``sft``: the starting model).
PRE_RL_STAGES = ("before", "sft", "preference")
#: ``eval.csv`` columns measured against a reference model.
KL_COLUMNS = ("kl_ref",)

#: Columns tried, in order, as the x axis of ``metrics.csv`` / ``eval.csv``.
X_COLUMNS = ("iteration", "step")


# ---------------------------------------------------------------------------------------------- helpers
def _to_float(value: Any) -> float:
    """A CSV/JSON cell as a float; ``nan`` for blanks and non-numbers (e.g. estimator names)."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_csv_columns(path: str | os.PathLike) -> dict[str, list[Any]]:
    """A CSV file as ``{column: [cell, ...]}`` (cells as strings; short rows padded with ``""``).

    Raises:
        FileNotFoundError: no such file.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(k for k in row if k is not None))
    return {k: [("" if row.get(k) is None else row[k]) for row in rows] for k in names}


def _numeric(columns: dict[str, list[Any]], name: str) -> list[float]:
    return [_to_float(v) for v in columns.get(name, [])]


def _finite_xy(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    pairs = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    return [a for a, _ in pairs], [b for _, b in pairs]


def rolling_mean(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start): ``len(values)`` floats.

    Raises:
        ValueError: ``window < 1``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _x_axis(columns: dict[str, list[Any]], n: int) -> tuple[list[float], str]:
    for name in X_COLUMNS:
        if name in columns:
            return _numeric(columns, name), name
    return [float(i + 1) for i in range(n)], "row"


def _save_atomic(fig: Any, path: Path) -> Path:
    """Render ``fig`` as PNG to a temp file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _figure(n_panels: int, ncols: int = 2, panel_size: tuple[float, float] = (5.0, 3.2)) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    ncols = min(ncols, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


# ---------------------------------------------------------------------------------------------- run plots
def _plot_training(metrics_csv: Path, out: Path) -> Path | None:
    cols = read_csv_columns(metrics_csv)
    n = len(next(iter(cols.values()), []))
    x, xname = _x_axis(cols, n)
    panels = []
    for name, title in TRAINING_PANELS:
        px, py = _finite_xy(x, _numeric(cols, name))
        if px:
            panels.append((name, title, px, py))
    if not panels:
        return None
    fig, axes = _figure(len(panels))
    for ax, (name, title, px, py) in zip(axes, panels):
        ax.plot(px, py, marker="." if len(px) < 50 else None, lw=1, alpha=0.6 if name == "reward/score" else 1.0,
                label=name)
        if name == "reward/score":
            window = max(2, min(20, len(py) // 5))
            if len(py) > window:
                ax.plot(px, rolling_mean(py, window), lw=2, label=f"rolling mean ({window})")
            ax.legend(loc="best", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(xname)
        ax.grid(alpha=0.3)
    fig.suptitle(f"training: {metrics_csv.parent.name}")
    return _save_atomic(fig, out)


def stage_ordered_points(x: Sequence[float], y: Sequence[float], stages: Sequence[str]
                         ) -> list[tuple[float, float, str, int]]:
    """The finite ``(x, y, stage, row)`` points of an eval curve in drawing order.

    Ordered by iteration, then by stage at equal iterations (``before`` before
    ``sft`` at iteration 0, ``after`` last), then by row, so the line runs
    through the pipeline's stages in the order they happened, whatever the values.
    """
    def rank(stage: str) -> int:
        return {"before": 0, "sft": 1, "preference": 1.5, "after": 3}.get(stage, 2)

    pts = [(a, b, s, i) for i, (a, b, s) in enumerate(zip(x, y, stages)) if math.isfinite(a) and math.isfinite(b)]
    return sorted(pts, key=lambda p: (p[0], rank(p[2]), p[3]))


def _plot_eval(eval_csv: Path, out: Path) -> Path | None:
    cols = read_csv_columns(eval_csv)
    n = len(next(iter(cols.values()), []))
    x, xname = _x_axis(cols, n)
    stages = list(cols.get("stage", [""] * n))
    panels = [(title, names) for title, names in EVAL_PANELS
              if any(_finite_xy(x, _numeric(cols, c))[0] for c in names)]
    if not panels:
        return None
    fig, axes = _figure(len(panels))
    for ax, (title, names) in zip(axes, panels):
        for c in names:
            ys = _numeric(cols, c)
            pts = stage_ordered_points(x, ys, stages)
            if c in KL_COLUMNS:  # `sft` is measured against the starting model, RL stages against
                # RL's reference: separate markers, not one line through different references
                pre = [p for p in pts if p[2] in PRE_RL_STAGES]
                pts = [p for p in pts if p[2] not in PRE_RL_STAGES]
                if pre:
                    ax.plot([p[0] for p in pre], [p[1] for p in pre], marker="s", ms=5, ls="none",
                            color="gray", label=f"{c} ({', '.join(sorted({p[2] for p in pre}))}: own reference)")
                    for a, b, st, _ in pre:
                        ax.annotate(st, (a, b), textcoords="offset points", xytext=(3, 4), fontsize=7)
                if not pts:
                    continue
            line = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, lw=1.5, label=c)[0]
            if c == "score_mean" and "score_ci95" in cols:
                ci = _numeric(cols, "score_ci95")
                band = [(p[0], p[1] - ci[p[3]], p[1] + ci[p[3]]) for p in pts if math.isfinite(ci[p[3]])]
                if band:
                    ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                                    color=line.get_color(), alpha=0.2, label="95% CI")
            for a, b, s, _ in pts:  # name the non-training stages (before, sft, after) at their points
                if s in STAGE_ORDER:
                    ax.annotate(s, (a, b), textcoords="offset points", xytext=(3, 4), fontsize=7)
        if len(names) > 1 or (names[0] == "score_mean" and "score_ci95" in cols) or names[0] in KL_COLUMNS:
            ax.legend(loc="best", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(xname)
        ax.margins(x=0.1)  # room for the stage labels
        ax.grid(alpha=0.3)
    fig.suptitle(f"evaluation: {eval_csv.parent.name}")
    return _save_atomic(fig, out)


def _plot_before_after(eval_json: Path, out: Path) -> Path | None:
    data = json.loads(eval_json.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{eval_json} must hold a JSON object {{stage: {{metric: value}}}}, "
                         f"got {type(data).__name__}")
    stages = [s for s in STAGE_ORDER if isinstance(data.get(s), dict)]
    stages += [s for s, v in data.items() if s not in stages and isinstance(v, dict)]
    bias = sorted({m for s in stages for m in data[s] if m.startswith("bias/") and not m.endswith(("_lo", "_hi"))})
    metrics = [m for m in (*BEFORE_AFTER_METRICS, *bias)
               if any(math.isfinite(_to_float(data[s].get(m))) for s in stages)]
    if not stages or not metrics:
        return None
    fig, axes = _figure(len(metrics), ncols=3, panel_size=(3.6, 3.0))
    colors = [f"C{i}" for i in range(len(stages))]
    for ax, m in zip(axes, metrics):
        vals = [_to_float(data[s].get(m)) for s in stages]
        err = None
        if m == "score_mean":
            err = [_to_float(data[s].get("score_ci95")) for s in stages]
            err = [e if math.isfinite(e) else 0.0 for e in err]
        elif m.startswith("bias/"):  # asymmetric bootstrap CIs: bias/... with _lo / _hi
            lo = [v - _to_float(data[s].get(m + "_lo")) for s, v in zip(stages, vals)]
            hi = [_to_float(data[s].get(m + "_hi")) - v for s, v in zip(stages, vals)]
            err = [[e if math.isfinite(e) else 0.0 for e in lo], [e if math.isfinite(e) else 0.0 for e in hi]]
        heights = [v if math.isfinite(v) else 0.0 for v in vals]
        bars = ax.bar(range(len(stages)), heights, color=colors, yerr=err, capsize=4 if err else 0)
        for j, (bar, v) in enumerate(zip(bars, vals)):
            up = (err[1][j] if isinstance(err[0], list) else err[j]) if err else 0.0
            top = bar.get_height() + up  # above the error bar
            ax.annotate("n/a" if not math.isfinite(v) else f"{v:.3g}", (bar.get_x() + bar.get_width() / 2, top),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.margins(y=0.12)
        ax.set_xticks(range(len(stages)), stages)
        ax.set_title(m + (" (95% CI)" if err else ""))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"before / after: {eval_json.parent.name}")
    return _save_atomic(fig, out)


def plot_run(run_dir: str | os.PathLike) -> list[Path]:
    """Write the PNG plots of a run folder into ``run_dir/plots/`` and return their paths.

    * ``training.png`` from ``metrics.csv``: ``reward/score`` (with a trailing
      rolling mean), ``stats/kl_ref``, ``loss/policy`` and ``stats/entropy``
      against ``iteration`` (or the logger's ``step`` column);
    * ``eval.png`` from ``eval.csv`` (columns ``iteration``, ``stage`` and
      :func:`~textgym.agents.common.evaluation.evaluate_policy` metric names):
      ``score_mean`` with its ``score_ci95`` band, ``kl_ref``, ``perplexity``,
      ``distinct_1`` / ``distinct_2``; points of stages other than training
      (``before``, ``sft``, ``after``) are labelled;
    * ``before_after.png`` from ``eval.json`` (``{"before": {...}, "after": {...},
      "sft": {...}?}``): one bar panel per metric of :data:`BEFORE_AFTER_METRICS`.

    Missing files, missing columns and blank or non-numeric cells are skipped;
    a plot with nothing to show is not written.

    Args:
        run_dir: the run folder.

    Returns:
        The written PNG paths (possibly empty).

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder.
        ValueError: ``eval.json`` does not hold a JSON object (also ``json.JSONDecodeError``).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder at {run_dir}")
    out_dir = run_dir / "plots"
    written = []
    for src, name, fn in (("metrics.csv", "training.png", _plot_training), ("eval.csv", "eval.png", _plot_eval),
                          ("eval.json", "before_after.png", _plot_before_after)):
        if (run_dir / src).is_file():
            path = fn(run_dir / src, out_dir / name)
            if path is not None:
                written.append(path)
    return written


# ---------------------------------------------------------------------------------------------- comparisons
def plot_learning_curves(curves: dict[str, list[tuple[float, float, float, float]]], path: str | os.PathLike, *,
                         xlabel: str, ylabel: str, title: str) -> Path:
    """Mean curves with shaded bands (e.g. 95% CIs over seeds), one per algorithm, as a PNG.

    Args:
        curves: ``{label: [(x, y_mean, y_lo, y_hi), ...]}``; points are sorted by ``x``;
            points with a non-finite ``x`` or mean are skipped, points with a non-finite
            ``y_lo`` / ``y_hi`` are left out of the band (it spans the other points).
        path: the PNG to write (parent folders are created; written atomically).
        xlabel, ylabel, title: axis labels and title.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: no curves, a curve with no point, or a point that is not a 4-tuple of numbers.
    """
    if not curves:
        raise ValueError("plot_learning_curves needs at least one curve ({label: [(x, mean, lo, hi), ...]})")
    checked = {}
    for label, points in curves.items():
        pts = []
        for p in points:
            if len(p) != 4:
                raise ValueError(f"curve {label!r}: each point must be (x, y_mean, y_lo, y_hi), got {p!r}")
            pts.append(tuple(_to_float(v) for v in p))
        if not pts:
            raise ValueError(f"curve {label!r} has no point")
        checked[label] = sorted(pts)
    fig, (ax,) = _figure(1, ncols=1, panel_size=(6.4, 4.2))
    for i, (label, pts) in enumerate(checked.items()):
        color = f"C{i % 10}"
        line = [(x, m) for x, m, _, _ in pts if math.isfinite(x) and math.isfinite(m)]
        ax.plot([a for a, _ in line], [b for _, b in line], color=color, lw=2, marker="o" if len(line) < 30 else None,
                ms=3, label=label)
        band = [(x, lo, hi) for x, m, lo, hi in pts if all(map(math.isfinite, (x, m, lo, hi)))]
        if band:
            ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=color,
                            alpha=0.2, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    return _save_atomic(fig, Path(path))
