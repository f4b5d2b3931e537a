"""What a comparison reports: the per-algorithm table, the learning curves, and the files of its run folder.

:func:`textgym.app.compare.compare` runs the algorithms; this module turns
their evaluation points into

* ``points.csv``: every evaluation (one row per algorithm, seed and evaluation),
* ``table.csv`` / ``table.md``: per algorithm, the final score's mean over seeds
  with a 95% percentile-bootstrap CI (:func:`textgym.app.stats.bootstrap_ci`)
  and its IQM (:func:`textgym.app.stats.iqm`), the KL to the reference, the
  training wall time and the training throughput,
* ``curves.png``: mean score over seeds with CI bands vs generated tokens
  (:func:`textgym.app.plots.plot_learning_curves`),
* ``report.md``: setup, protocol, table, curves and the per-seed final values.

Units: ``tokens`` are generated tokens (the algorithms' ``num_timesteps``);
``wall_time_s`` is the training wall clock (rollouts + updates, evaluations and
checkpoints excluded), in seconds; ``kl_ref`` is nats per episode.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textgym.app.stats import bootstrap_ci, iqm

__all__ = ["RunResult", "ComparisonResult", "POINT_COLUMNS", "TABLE_COLUMNS", "summary_table", "learning_curves",
           "table_markdown", "report_markdown", "write_csv", "write_text"]

#: First columns of ``points.csv`` (further evaluation metrics follow, sorted by name).
POINT_COLUMNS = ("algo", "algorithm", "seed", "target_tokens", "tokens", "wall_time_s", "score_mean", "score_std",
                 "kl_ref", "kl_ref_k3", "length_mean", "terminated_frac", "n_episodes", "eval_time_s")

#: Columns of ``table.csv``.
TABLE_COLUMNS = ("algo", "algorithm", "seeds", "tokens", "score_start", "score_mean", "score_ci_lo", "score_ci_hi",
                 "score_min", "score_max", "score_iqm", "kl_ref", "kl_estimator", "wall_time_s", "tokens_per_s")
#: Fewer seeds than this: no confidence interval (``score_ci_lo`` / ``_hi`` are NaN); tables show min-max instead.
MIN_CI_SEEDS = 3


@dataclass
class RunResult:
    """One ``(algorithm label, seed)`` run of a comparison.

    Attributes:
        label: the algorithm's label in the comparison (``"ppo"``, or e.g. ``"ppo-fast"``).
        algorithm: its registry name (``textgym.agents.algorithms.registry``).
        seed: the seed (algorithm config seed and training env reset seed).
        points: evaluation points in token order (dicts with :data:`POINT_COLUMNS` keys).
        done: the run reached the token budget.
    """

    label: str
    algorithm: str
    seed: int
    points: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    @property
    def final(self) -> dict[str, Any]:
        """The last evaluation point.

        Raises:
            ValueError: the run has no point yet.
        """
        if not self.points:
            raise ValueError(f"run {self.label} seed {self.seed} has no evaluation point yet")
        return self.points[-1]


def _kl_key(points: Sequence[dict[str, Any]]) -> str:
    """``"kl_ref_k3"`` when every point has it (one estimator for all algorithms), else ``"kl_ref"``."""
    return "kl_ref_k3" if points and all(_is_number(p.get("kl_ref_k3")) for p in points) else "kl_ref"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def summary_table(runs: Sequence[RunResult], labels: Sequence[str], *, confidence: float = 0.95,
                  n_resamples: int = 10_000, seed: int = 0) -> list[dict[str, Any]]:
    """One row per label over its finished runs (labels without a finished run are left out).

    Each row (:data:`TABLE_COLUMNS`): ``seeds`` (finished runs), ``tokens`` (mean final
    generated tokens), ``score_start`` (mean score before training), ``score_mean`` /
    ``score_ci_lo`` / ``score_ci_hi`` (mean final score and its percentile-bootstrap CI over
    seeds), ``score_iqm`` (IQM of the final scores over seeds), ``kl_ref`` (mean final KL to
    the reference, nats / episode; ``kl_estimator`` says ``"k3"`` when every algorithm reported
    the k3 estimate, else ``"algorithm's"``), ``wall_time_s`` (mean training seconds) and
    ``tokens_per_s`` (mean over seeds of final tokens / training seconds).

    Args:
        runs: the runs.
        labels: the row order.
        confidence, n_resamples, seed: of :func:`bootstrap_ci`.

    Raises:
        ValueError: a non-finite final score (from :func:`bootstrap_ci`).
    """
    finished = [r for r in runs if r.done and r.points]
    kl_key = _kl_key([r.final for r in finished])
    table = []
    for label in labels:
        rs = [r for r in finished if r.label == label]
        if not rs:
            continue
        scores = [float(r.final["score_mean"]) for r in rs]
        if len(scores) >= MIN_CI_SEEDS:
            lo, hi = bootstrap_ci(scores, confidence=confidence, n_resamples=n_resamples, seed=seed)
        else:  # a bootstrap over 1-2 values is no confidence interval: tables show the range instead
            lo = hi = math.nan
        walls = [float(r.final["wall_time_s"]) for r in rs]
        tokens = [float(r.final["tokens"]) for r in rs]
        table.append({
            "algo": label, "algorithm": rs[0].algorithm, "seeds": len(rs), "tokens": _mean(tokens),
            "score_start": _mean([float(r.points[0]["score_mean"]) for r in rs]),
            "score_mean": _mean(scores), "score_ci_lo": lo, "score_ci_hi": hi, "score_min": min(scores),
            "score_max": max(scores), "score_iqm": iqm(scores),
            "kl_ref": _mean([float(r.final[kl_key]) for r in rs]),
            "kl_estimator": "k3" if kl_key == "kl_ref_k3" else "algorithm's",
            "wall_time_s": _mean(walls),
            "tokens_per_s": _mean([t / max(w, 1e-9) for t, w in zip(tokens, walls)]),
        })
    return table


def learning_curves(runs: Sequence[RunResult], labels: Sequence[str], *, confidence: float = 0.95,
                    n_resamples: int = 10_000, seed: int = 0, metric: str = "score_mean"
                    ) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per label, ``metric`` averaged over seeds at each evaluation point, with a bootstrap CI band.

    Points of different seeds are matched by their ``target_tokens`` (the evaluation
    grid ``0, eval_every, 2 eval_every, ..., budget``); the x value is the mean of their
    actual ``tokens`` (an update always finishes, so runs overshoot a target a little).
    A grid point that only some seeds reached uses those seeds.

    Returns:
        ``{label: [(tokens, mean, ci_lo, ci_hi), ...]}`` sorted by tokens (labels without points left out).
    """
    curves: dict[str, list[tuple[float, float, float, float]]] = {}
    for label in labels:
        by_target: dict[float, list[dict[str, Any]]] = {}
        for r in runs:
            if r.label == label:
                for p in r.points:
                    by_target.setdefault(float(p["target_tokens"]), []).append(p)
        pts = []
        for target in sorted(by_target):
            group = by_target[target]
            ys = [float(p[metric]) for p in group]
            lo, hi = bootstrap_ci(ys, confidence=confidence, n_resamples=n_resamples, seed=seed)
            pts.append((_mean([float(p["tokens"]) for p in group]), _mean(ys), lo, hi))
        if pts:
            curves[label] = pts
    return curves


# ---------------------------------------------------------------------------------------------- files
def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file beside it, then rename)."""
    return _atomic(Path(path), lambda f: f.write(text))


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write ``rows`` as CSV: ``columns`` first, then any other keys (sorted); atomic."""
    extra = sorted({k for r in rows for k in r} - set(columns))
    names = [c for c in columns if any(c in r for r in rows) or not rows] + extra

    def write(f):
        w = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    return _atomic(Path(path), write)


def _atomic(path: Path, write: Callable[[Any], Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# ---------------------------------------------------------------------------------------------- markdown
def _f(x: Any, digits: int = 3) -> str:
    """A number for reading: ``12,345`` / ``123.4`` / ``0.123``; never ``1.23e+03`` (tiny values: ``1.2e-05``)."""
    if not _is_number(x):
        return "n/a"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1e-3 or a == 0:
        return f"{x:.{digits}g}"
    return f"{x:.1e}"


def _interval(r: dict[str, Any]) -> str:
    if r["seeds"] < MIN_CI_SEEDS:
        return f"{_f(r['score_min'])}–{_f(r['score_max'])} †"
    return f"{_f(r['score_ci_lo'])}, {_f(r['score_ci_hi'])}"


def _name(row: dict[str, Any]) -> str:
    return row["algo"] if row["algo"] == row["algorithm"] else f"{row['algo']} ({row['algorithm']})"


def table_markdown(table: Sequence[dict[str, Any]], confidence: float = 0.95) -> str:
    """The summary table as a Markdown table (empty-table note when no run finished)."""
    if not table:
        return "_no finished run yet_\n"
    pct = f"{confidence * 100:g}%"
    est = "k3" if all(r["kl_estimator"] == "k3" for r in table) else "per algorithm"
    lines = [f"| algorithm | seeds | final score: mean [{pct} CI] | IQM | start score | KL to ref ({est}, nats) "
             "| tokens | train time (s) | tokens/s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        lines.append(f"| {_name(r)} | {r['seeds']} | {_f(r['score_mean'])} [{_interval(r)}] "
                     f"| {_f(r['score_iqm'])} | {_f(r['score_start'])} | {_f(r['kl_ref'])} "
                     f"| {r['tokens']:,.0f} | {_f(r['wall_time_s'])} | {_f(r['tokens_per_s'])} |")
    if any(r["seeds"] < MIN_CI_SEEDS for r in table):
        lines += ["", f"† fewer than {MIN_CI_SEEDS} seeds: the range (min–max) of the final scores, not a confidence "
                      "interval."]
    return "\n".join(lines) + "\n"


def settings_markdown(settings: dict[str, dict[str, Any]]) -> str:
    """Every effective hyperparameter, one column per algorithm label (``-``: the algorithm has no such field)."""
    labels = list(settings)
    keys = list(dict.fromkeys(k for conf in settings.values() for k in conf))

    def cell(v: Any) -> str:
        return "-" if v is _MISSING else f"`{v}`"

    lines = ["| setting | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(cell(settings[lab].get(k, _MISSING)) for lab in labels) + " |")
    return "\n".join(lines) + "\n"


_MISSING = object()


def report_markdown(*, title: str, setup: Sequence[tuple[str, str]], protocol: str, table: Sequence[dict[str, Any]],
                    runs: Sequence[RunResult], curves_png: str | None, config_yaml: str,
                    confidence: float = 0.95, settings: dict[str, dict[str, Any]] | None = None) -> str:
    """``report.md``: setup, protocol, table, curve image link, per-seed finals, the full config.

    Args:
        title: the first heading.
        setup: ``(name, value)`` lines of the setup section.
        protocol: the protocol paragraph (Markdown).
        table: :func:`summary_table` rows.
        runs: every run (unfinished ones are listed as such).
        curves_png: file name of the curves image (relative to the report), or ``None``.
        config_yaml: the resolved config, as YAML.
        confidence: the CI level shown in the table header.
        settings: ``{label: {setting: value}}``, every effective hyperparameter (section "Settings").
    """
    out = [f"# {title}", "", "## Setup", ""]
    out += [f"- **{k}**: {v}" for k, v in setup]
    if settings:
        out += ["", "## Settings (every effective hyperparameter)", "", settings_markdown(settings).rstrip()]
    out += ["", "## Protocol", "", protocol.strip(), "", "## Results", "", table_markdown(table, confidence).rstrip()]
    if curves_png:
        out += ["", f"![learning curves: mean score over seeds, {confidence * 100:g}% CI bands]({curves_png})"]
    out += ["", "## Final values per seed", "",
            "| algorithm | seed | tokens | score | KL to ref (nats) | train time (s) | status |",
            "|---|---:|---:|---:|---:|---:|---|"]
    kl_key = _kl_key([r.final for r in runs if r.points])
    for r in runs:
        if not r.points:
            out.append(f"| {r.label} | {r.seed} | 0 | n/a | n/a | n/a | not started |")
            continue
        p = r.final
        out.append(f"| {r.label} | {r.seed} | {int(p['tokens']):,} | {_f(p['score_mean'])} | {_f(p.get(kl_key))} "
                   f"| {_f(p['wall_time_s'])} | {'done' if r.done else 'unfinished'} |")
    out += ["", "## Config", "", "```yaml", config_yaml.rstrip(), "```", ""]
    return "\n".join(out)


@dataclass
class ComparisonResult:
    """What :func:`textgym.compare` returns (everything is also in ``out_dir``).

    Attributes:
        config: the resolved :class:`textgym.app.compare.CompareConfig`.
        out_dir: the run folder.
        runs: every ``(label, seed)`` run with its evaluation points.
        table: :func:`summary_table` rows (the content of ``table.csv``).
        curves: :func:`learning_curves` (what ``curves.png`` shows).
        files: ``{"points", "table_csv", "table_md", "curves", "report", "config"}`` -> path.
    """

    config: Any
    out_dir: Path
    runs: list[RunResult]
    table: list[dict[str, Any]]
    curves: dict[str, list[tuple[float, float, float, float]]]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def points(self) -> list[dict[str, Any]]:
        """Every evaluation point (the rows of ``points.csv``), by label, seed, tokens."""
        return [p for r in self.runs for p in r.points]

    def final_scores(self) -> dict[str, list[float]]:
        """``{label: [final score of each finished seed, in seed order]}``."""
        out: dict[str, list[float]] = {}
        for r in self.runs:
            if r.done and r.points:
                out.setdefault(r.label, []).append(float(r.final["score_mean"]))
        return out

    def to_markdown(self) -> str:
        """The summary table as Markdown (what ``table.md`` holds)."""
        return table_markdown(self.table, getattr(self.config, "confidence", 0.95))

    def __str__(self) -> str:
        return self.to_markdown()
