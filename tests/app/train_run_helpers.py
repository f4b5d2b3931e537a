"""Shared by the pipeline tests: the small PPO run config on TokenCount with tiny models, and running it."""

from __future__ import annotations

from pathlib import Path

import yaml

from textgym.app.cli import main


def tiny_ppo_config(**sections) -> dict:
    """One PPO iteration of tiny-char on TokenCount (2 envs), 2 eval episodes, no plots; ``sections`` are added."""
    return {
        "seed": 0,
        "model": "tiny-char",
        "env": {"id": "textgym/TokenCount-v0", "num_envs": 2},
        **sections,
        "algorithm": "ppo",
        "algo": {"learning_rate": 0.001, "n_epochs": 1, "log_samples": 2, "progress_bar": False},
        "train": {"iterations": 1, "save_every": None},
        "eval": {"n_episodes": 2, "num_samples": 2},
        "plots": False,
    }


def run_train(tmp_path: Path, raw: dict, name: str) -> tuple[int, Path]:
    """``textgym train`` on ``raw`` written as ``<tmp_path>/<name>.yaml``: the exit code and the run folder."""
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return main(["train", str(cfg), "--runs-dir", str(tmp_path / "runs")]), tmp_path / "runs" / name
