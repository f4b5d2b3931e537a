"""A run folder's stage record: ``run_state.json`` (stages done, the RL position, stage results).

:class:`RunState` is the part of :class:`textgym.app.pipeline.Pipeline` that reads and
writes it; :func:`finished_stages` reads it from outside a run.  Resume reads the same
file: finished stages are skipped (see :mod:`textgym.app.pipeline`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from textgym.agents.common import distributed
from textgym.app.run_folder import write_atomic

__all__ = ["STAGES", "FEEDBACK_STAGES", "RunFolderError", "RunResult", "RunState", "finished_stages"]

STAGES = ("sft", "preference", "reward_model", "eval_before", "rl", "eval_after", "report")
#: The stages of a run with a ``feedback`` section (the loop's collection runs after SFT, before the pair stages).
FEEDBACK_STAGES = ("sft", "feedback", *STAGES[1:])


class RunFolderError(RuntimeError):
    """A run folder that cannot be used as asked (exists already, not a run, nothing to evaluate)."""



@dataclass
class RunResult:
    """What :func:`train` / :func:`resume` return.

    Attributes:
        run_dir: the run folder.
        evals: ``{stage: metrics}`` for the stages evaluated (``before``, ``sft``, ``after``).
        iterations: RL iterations done.
        num_timesteps: generated tokens during RL.
        plots: the PNG files written.
    """

    run_dir: Path
    evals: dict[str, dict[str, float]] = field(default_factory=dict)
    iterations: int = 0
    num_timesteps: int = 0
    plots: list[Path] = field(default_factory=list)



class RunState:
    """``run_state.json`` of :attr:`run_dir`: loaded on resume, saved atomically after every change.

    Args:
        run_dir: the run folder (created).
        resume: load the folder's ``run_state.json`` if it exists (else start a fresh record).
    """

    def _init_state(self, run_dir: str | os.PathLike, resume: bool) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.run_dir / "run_state.json"
        names = FEEDBACK_STAGES if getattr(getattr(self, "cfg", None), "feedback", None) is not None else STAGES
        if resume and self.state_path.is_file():
            self.state = json.loads(self.state_path.read_text())
            old = self.state["stages"]  # a folder from before a stage existed: it is pending
            self.state["stages"] = {s: old.get(s, "pending") for s in names}
        else:
            self.state = {"version": 1, "stages": {s: "pending" for s in names}, "rl": {}, "results": {}}

    def _save_state(self, status: str | None = None) -> None:
        if status is not None:
            self.state["status"] = status
        self.state["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_atomic(self.state_path, json.dumps(self.state, indent=2, default=float))

    def _done(self, stage: str) -> bool:
        return self.state["stages"].get(stage) in ("done", "skipped")

    def _mark(self, stage: str, status: str = "done") -> None:
        self.state["stages"][stage] = status
        self._save_state()
        distributed.barrier()  # data-parallel: the other ranks read what this stage wrote only after it


def finished_stages(run_dir: str | os.PathLike) -> list[str]:
    """The stages a run folder finished (``[]`` for a run that failed or was stopped before finishing one)."""
    path = Path(run_dir) / "run_state.json"
    try:
        stages = json.loads(path.read_text())["stages"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [s for s, status in stages.items() if status == "done"]
