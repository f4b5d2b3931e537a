"""scripts/time_demo.py: the per-stage table of a stamped ``make demo`` log (the published profile's numbers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("time_demo", ROOT / "scripts" / "time_demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


LOG = """\
     0.0 python3 -m venv .venv
    50.5 .venv/bin/textgym train examples/configs/imdb_smollm2.yaml --overwrite
    90.0 textgym: training the sentiment classifier once (MiniLM ...)
   200.0 [sft] fine-tuning smollm2-135m-instruct ...
   207.5 [sft] min_reward 0.8: kept 134 of 800 rows
   320.0 [sft] done in 117 s
   320.2 [eval before] 64 episodes of textgym/IMDB-v0 ...
   350.2 [bias before] CrowS-Pairs / BOLD probes ...
   375.0 [eval sft] 64 episodes of textgym/IMDB-v0 ...
   420.0 [bias sft] CrowS-Pairs / BOLD probes ...
   450.0 [rl] ppo from runs/imdb-smollm2/sft: iterations 0/8
   620.0 [eval after] 64 episodes of textgym/IMDB-v0 ...
   660.0 [bias after] CrowS-Pairs / BOLD probes ...
   683.0 [bias after] done in 21 s
TOTAL 690.0 s rev=abc1234 exit=0
"""


def test_stage_table_cuts_the_log_at_the_pipeline_lines(tmp_path):
    log = tmp_path / "demo.log"
    log.write_text(LOG)
    rows = dict(_module().stage_table(log))
    assert rows["install (venv, torch, textgym, model wheels)"] == pytest.approx(50.5)
    assert rows["start-up, SmolLM2 GGUF -> safetensors"] == pytest.approx(39.5)
    assert rows["SFT (20 steps of 8)"] == pytest.approx(112.7)  # to the "[eval before]" line
    assert rows["evaluation: before"] == pytest.approx(30.0)
    assert rows["PPO (8 iterations)"] == pytest.approx(170.0)
    assert rows["report and plots"] == pytest.approx(7.0)
    assert rows["total"] == 690.0
    stages = [v for k, v in rows.items() if k != "total"]
    assert sum(stages) == pytest.approx(690.0)


def test_an_unfinished_log_says_so(tmp_path):
    log = tmp_path / "demo.log"
    log.write_text(LOG.replace("TOTAL 690.0 s rev=abc1234 exit=0\n", ""))
    with pytest.raises(SystemExit, match="did not finish"):
        _module().stage_table(log)
