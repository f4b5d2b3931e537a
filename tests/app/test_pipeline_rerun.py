"""A failed run never blocks a rerun under the same name (issue 14, part 4)."""

from __future__ import annotations

import json

import pytest
import yaml

from textgym.app.cli import main

CFG = {"seed": 0, "model": "tiny-char", "env": {"id": "textgym/TokenCount-v0", "num_envs": 2},
       "algo": {"n_epochs": 1, "minibatch_size": 2, "log_samples": 1, "progress_bar": False},
       "train": {"iterations": 1, "save_every": 1}, "eval": {"n_episodes": 2, "before": True}, "plots": False}


def test_a_run_that_failed_before_finishing_a_stage_can_be_rerun_under_its_name(tmp_path, monkeypatch, capsys):
    from textgym.app.pipeline import Pipeline

    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump(CFG))
    args = ["train", str(cfg), "--runs-dir", str(tmp_path / "runs")]

    def crash(self):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Pipeline, "stage_eval_before", crash)
    with pytest.raises(RuntimeError, match="out of memory"):
        main(args)
    run = tmp_path / "runs" / "r"
    state = json.loads((run / "run_state.json").read_text())
    assert state["status"] == "failed" and "done" not in state["stages"].values()
    monkeypatch.undo()

    assert main(args) == 0  # the same command again: the folder of the failed attempt is started over
    assert "finished no stage; starting it over" in capsys.readouterr().out
    assert json.loads((run / "run_state.json").read_text())["status"] == "done"

    assert main(args) == 2  # a folder with finished stages is never cleared silently
    assert "exists already" in capsys.readouterr().err
