"""Run plots and learning curves: valid PNGs of the expected size, missing data skipped, atomic writes."""

from __future__ import annotations

import csv
import json
import math
import struct

import pytest

from textgym.agents.common.logger import Logger
from textgym.app.plots import plot_learning_curves, plot_run, read_csv_columns, rolling_mean, stage_ordered_points

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DPI = 110  # plots.py renders at 110 dpi: a 5 x 3.2 in panel is 550 x 352 px


def png_size(path):
    """(width, height) from the PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def write_metrics(run, n=30, columns=("reward/score", "stats/kl_ref", "loss/policy", "stats/entropy")):
    """metrics.csv as the real Logger writes it (step column, a text column, a column that appears late)."""
    log = Logger(run, tensorboard=False, progress=False)
    for i in range(1, n + 1):
        row = {"reward/score": 0.4 + 0.01 * i + 0.05 * math.sin(i), "stats/kl_ref": 0.02 * i,
               "loss/policy": -0.01 * math.cos(i), "stats/entropy": 3.0 - 0.02 * i, "stats/kl_ref_estimator": "k1"}
        row = {k: v for k, v in row.items() if k in columns or k == "stats/kl_ref_estimator"}
        if i > n // 2 and "stats/kl_ref" in columns:
            row["stats/kl_coef"] = 0.05  # a column added mid-run: blank cells before
        log.log(i, row)
    log.close()


def write_eval(run):
    fields = ["iteration", "stage", "score_mean", "score_ci95", "kl_ref", "perplexity", "distinct_1", "distinct_2"]
    rows = [[0, "before", 0.45, 0.04, 0.0, 30.0, 0.5, 0.8], [10, "train", 0.52, 0.05, 1.2, 31.0, 0.48, 0.78],
            [20, "train", 0.58, 0.04, 2.1, 32.5, 0.46, 0.77], [30, "after", 0.63, 0.04, 2.8, 33.0, 0.45, 0.76]]
    with open(run / "eval.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        w.writerows(rows)
    before = dict(zip(fields[2:], rows[0][2:]))
    after = dict(zip(fields[2:], rows[-1][2:]))
    (run / "eval.json").write_text(json.dumps({"before": before, "after": after,
                                               "sft": {**before, "score_mean": 0.5, "note": "text is skipped"}}))


def test_plot_run_writes_three_valid_pngs(tmp_path):
    run = tmp_path / "run"
    write_metrics(run)
    write_eval(run)
    paths = plot_run(run)
    assert [p.name for p in paths] == ["training.png", "eval.png", "before_after.png"]
    assert all(p.parent == run / "plots" for p in paths)
    sizes = {p.name: png_size(p) for p in paths}
    assert sizes["training.png"] == (2 * 550, 2 * 352)  # 4 panels in a 2 x 2 grid
    assert sizes["eval.png"] == (2 * 550, 2 * 352)  # score+CI, KL, perplexity, distinct
    assert sizes["before_after.png"] == (3 * 396, 2 * 330)  # 5 metrics (no length_mean), 3 per row, 3.6 x 3.0 in each
    for p in paths:
        assert p.stat().st_size > 20_000  # real content, not an empty canvas
    assert sorted(x.name for x in (run / "plots").iterdir()) == sorted(sizes)  # no temp files left


def test_plot_run_skips_missing_columns_and_files(tmp_path):
    run = tmp_path / "run"
    write_metrics(run, n=5, columns=("reward/score",))
    paths = plot_run(run)
    assert [p.name for p in paths] == ["training.png"]
    assert png_size(paths[0]) == (550, 352)  # one panel
    (run / "eval.csv").write_text("iteration,stage,score_mean\n0,before,0.4\n5,after,0.5\n")
    (run / "eval.json").write_text(json.dumps({"before": {"perplexity": 20.0}, "after": {"perplexity": None}}))
    paths = plot_run(run)
    assert [p.name for p in paths] == ["training.png", "eval.png", "before_after.png"]
    assert png_size(run / "plots" / "eval.png") == (550, 352)
    assert png_size(run / "plots" / "before_after.png") == (396, 330)


def test_plot_run_writes_nothing_without_plottable_data(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert plot_run(run) == []
    (run / "metrics.csv").write_text("step,time/rollout\n1,0.5\n")
    (run / "eval.json").write_text(json.dumps({"before": {"n_episodes": 4}}))
    assert plot_run(run) == [] and not (run / "plots").exists()
    with pytest.raises(FileNotFoundError, match="no run folder"):
        plot_run(tmp_path / "missing")
    (run / "eval.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        plot_run(run)


def test_rolling_mean_and_csv_reading_by_hand(tmp_path):
    assert rolling_mean([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert rolling_mean([3.0, 6.0, 9.0], 5) == [3.0, 4.5, 6.0]
    with pytest.raises(ValueError):
        rolling_mean([1.0], 0)
    path = tmp_path / "m.csv"
    path.write_text("step,a\n1,0.5\n2\n")
    assert read_csv_columns(path) == {"step": ["1", "2"], "a": ["0.5", ""]}


def test_plot_learning_curves_two_algorithms(tmp_path):
    curves = {"ppo": [(0, 0.40, 0.35, 0.45), (1000, 0.55, 0.50, 0.60), (2000, 0.62, 0.58, 0.66)],
              "grpo": [(2000, 0.58, 0.50, 0.66), (0, 0.40, 0.36, 0.44), (1000, 0.50, float("nan"), float("nan")),
                       (1500, float("nan"), 0.4, 0.6)]}  # unsorted; NaN band / mean points are left out
    out = plot_learning_curves(curves, tmp_path / "cmp" / "curves.png", xlabel="generated tokens",
                               ylabel="score", title="IMDB")
    assert out == tmp_path / "cmp" / "curves.png"
    assert png_size(out) == (704, 462)  # 6.4 x 4.2 in
    assert out.stat().st_size > 15_000
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]
    with pytest.raises(ValueError, match="at least one curve"):
        plot_learning_curves({}, tmp_path / "x.png", xlabel="x", ylabel="y", title="t")
    with pytest.raises(ValueError, match=r"\(x, y_mean, y_lo, y_hi\)"):
        plot_learning_curves({"a": [(0, 1)]}, tmp_path / "x.png", xlabel="x", ylabel="y", title="t")
    with pytest.raises(ValueError, match="no point"):
        plot_learning_curves({"a": []}, tmp_path / "x.png", xlabel="x", ylabel="y", title="t")


def test_eval_curve_runs_through_the_stages_in_pipeline_order():
    # perplexity of a flagship run: before 82, sft 65 (both at iteration 0), a periodic eval at 4, after 66 at 8;
    # sorting by value would draw sft -> before -> after, hiding the SFT drop
    x = [0.0, 0.0, 8.0, 4.0, 6.0]
    y = [82.0, 65.0, 66.0, 70.0, float("nan")]
    stages = ["before", "sft", "after", "", ""]
    pts = stage_ordered_points(x, y, stages)
    assert [(p[2], p[1]) for p in pts] == [("before", 82.0), ("sft", 65.0), ("", 70.0), ("after", 66.0)]
    assert [p[3] for p in pts] == [0, 1, 3, 2]  # rows of the CSV, the NaN row (4) left out
