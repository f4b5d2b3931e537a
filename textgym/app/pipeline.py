"""The ``textgym train`` pipeline: SFT -> feedback -> preference -> reward model -> evaluation before -> RL ->
evaluation after -> report.

A :class:`textgym.app.config.RunConfig` describes the run; :func:`train` runs it
in ``<runs_dir>/<name>/`` and :func:`resume` continues an interrupted one.
The run folder::

    config.yaml          the resolved config (every default filled); --resume reads it
    run_state.json       which stages are done, the RL position, the stage results
    sft/                 the SFT model (a Hugging Face folder), sft_metrics.csv its loss curve
                         (feedback: the project is a file of its own, ``feedback.project``, kept outside)
    preference/          the DPO / IPO / KTO model (from sft/ if any; RL starts from it), preference_metrics.csv
    reward_model/        the reward model (reward_model_metrics.csv: its loss / accuracy curve); with
                         reward_model.use_as_reward it scores the training and eval envs
    metrics.csv, tb/     RL metrics per iteration (CSV + TensorBoard; tb/eval: the evaluations)
    samples.jsonl        training samples per iteration (prompt, completion, score, reward components;
                         a conversation env's samples add messages, turns, solved)
    checkpoint/          the RL checkpoint (every train.save_every iterations and at the end; atomic,
                         complete when its MANIFEST.json matches: textgym.agents.common.checkpoint)
    eval.csv             every evaluation: iteration, stage (before / sft / preference / train / after), metrics
    eval.json            {stage: metrics} for before, sft, preference and after
    samples_eval.jsonl   evaluation samples per stage (prompt, completion, score; conversations as above)
    summary.md           before/after table and sample table
    plots/*.png          training curves, evaluation curves, before/after bars

Stages run in order (``STAGES``; with a ``feedback`` section ``FEEDBACK_STAGES``, where the loop's
collection, :mod:`textgym.app.pipeline_feedback`, follows SFT) and each is marked done in ``run_state.json``
(``skipped``: not in the config; ``algorithm: none`` skips ``rl`` and ``eval_after``);
:func:`resume` skips finished stages and continues RL from ``checkpoint/``
with ``Algo.load`` (exact: RNGs and data position are restored), truncating
``metrics.csv`` / ``samples.jsonl`` / ``eval.csv`` rows written after that
checkpoint, so an interrupt (Ctrl-C, SIGTERM, a kill) loses at most the work
since the last checkpoint.  SFT, preference and reward-model training are one stage each:
an interrupted one restarts (their model folders are written atomically).
Evaluations save and restore the global RNG states, so where they happen does
not change training.  The file handling lives in :mod:`textgym.app.run_folder`.

:func:`train` and :func:`resume` hold the run folder's lock (:mod:`textgym.app.run_lock`,
``<runs_dir>/.<name>.lock``) while they work; :func:`train` runs the pre-flight check
(:mod:`textgym.app.preflight`) before it creates the folder, and starts over a folder whose
earlier attempt finished no stage.

The code, one concept per module: :mod:`textgym.app.run_state` (``run_state.json``),
:mod:`textgym.app.run_envs` (the env builder), :mod:`textgym.app.run_models` (which model),
:mod:`textgym.app.pipeline_supervised` (SFT, reward model), :mod:`textgym.app.pipeline_eval`
(evaluations), :mod:`textgym.app.pipeline_rl` (RL), :mod:`textgym.app.pipeline_report` (report),
:mod:`textgym.app.eval_target` (``textgym eval``); this module joins them and holds the entry points.
Each cell of ``textgym compare`` is a :class:`Pipeline` too (:mod:`textgym.app.compare_cell`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgym.agents.common import distributed
from textgym.app.config import NO_RL, ConfigError, RunConfig, dump_config, load_config
from textgym.app.eval_target import evaluate_target
from textgym.app.pipeline_eval import PipelineEval
from textgym.app.pipeline_feedback import FeedbackStage, WaitingForFeedback
from textgym.app.pipeline_report import ReportStage, skipped_steps_line
from textgym.app.pipeline_rl import RLStage
from textgym.app.pipeline_supervised import SupervisedStages, preference_rows
from textgym.app.run_envs import ComponentRecorder, make_vec_env, run_reward
from textgym.app.run_folder import format_table, recover_checkpoint, sigterm_as_interrupt
from textgym.app.run_models import actor_critic, load_trained_policy, policy_for_eval, resolve_model
from textgym.app.run_state import STAGES, RunFolderError, RunResult, RunState, finished_stages

__all__ = ["STAGES", "RunResult", "Pipeline", "train", "resume", "evaluate_target", "resolve_model",
           "make_vec_env", "load_trained_policy", "actor_critic", "ComponentRecorder", "RunFolderError",
           "format_table", "preference_rows", "run_reward", "finished_stages", "skipped_steps_line"]

_policy_for_eval = policy_for_eval  # the old private name (textgym.app.bias_report imports it)


# ----------------------------------------------------------------------------- the pipeline


class Pipeline(RunState, SupervisedStages, FeedbackStage, PipelineEval, RLStage, ReportStage):
    """Runs the stages of a :class:`RunConfig` in a run folder (see the module docstring).

    Args:
        config: the validated config.
        run_dir: the run folder (created).
        resume: continue a run whose ``run_state.json`` exists (else start fresh).

    Attributes:
        state: the ``run_state.json`` content.
        algo: the RL algorithm once built.
    """

    def __init__(self, config: RunConfig, run_dir: str | os.PathLike, *, resume: bool = False):
        self.cfg = config
        self._init_state(run_dir, resume)
        self.algo: Any = None
        self._tokenizer: Any = None
        self._eval_env: Any = None
        self._ppl_texts: list[str] | None = None
        self._recorder: ComponentRecorder | None = None
        self._tb: Any = None
        self._env_reward: Any = None
        self._trackers: Any = None  # W&B / MLflow runs (textgym.app.trackers), started by run()
        self._stop: Any = None  # the RL stage's textgym.app.graceful.GracefulStop


    def _write_config(self) -> None:
        dump_config(self.cfg, self.run_dir / "config.yaml")

    @staticmethod
    def _say(msg: str) -> None:
        from textgym.app.output import say

        say(msg)  # stage lines; silent with -q

    # ------------------------------------------------------------------ shared pieces
    @property
    def base_model(self) -> str:
        """The starting model, resolved (a run folder -> its model folder)."""
        return resolve_model(self.cfg.model)

    @property
    def has_rl(self) -> bool:
        """The config has an RL stage (``algorithm`` is not ``none``)."""
        return self.cfg.algorithm != NO_RL

    @property
    def env_reward(self) -> Any:
        """The reward of the training and eval envs instead of their own (:func:`run_reward`; loaded once)."""
        if self._env_reward is None:
            self._env_reward = run_reward(self.cfg, self.run_dir)
        return self._env_reward

    @property
    def sft_or_base_model(self) -> str:
        """The SFT model if the SFT stage ran, else :attr:`base_model` (where the preference stage starts)."""
        return str(self.run_dir / "sft") if self.cfg.sft is not None else self.base_model

    @property
    def rl_start_model(self) -> str:
        """The model RL starts from: the preference stage's model, else the SFT model, else :attr:`base_model`."""
        return str(self.run_dir / "preference") if self.cfg.preference is not None else self.sft_or_base_model

    def make_env(self, env_id: str, num_envs: int, kwargs: Any, tokenizer: Any, reward: Any = None) -> Any:
        """Every env of the run, built by :func:`make_vec_env` (looked up here at call time)."""
        return make_vec_env(env_id, num_envs, kwargs, tokenizer, reward)

    def resume_hint(self) -> str:
        """The command that continues this run (printed when it is interrupted)."""
        return f"textgym train --resume {self.run_dir}"


    # ------------------------------------------------------------------ stages
    def run(self) -> RunResult:
        """Run (or finish) every stage; returns the :class:`RunResult`.

        Raises:
            KeyboardInterrupt: Ctrl-C or SIGTERM; the folder stays resumable
                (``textgym train --resume <run_dir>``).
            WaitingForFeedback: the ``feedback`` stage needs people's judgments first (resumable too).
        """
        self._write_config()
        stages = self.state["stages"]
        self.state["num_processes"] = distributed.world_size()
        if self.cfg.sft is None:
            stages["sft"] = "skipped"
        if self.cfg.reward_model is None:
            stages["reward_model"] = "skipped"
        if self.cfg.preference is None:
            stages["preference"] = "skipped"
        if not self.has_rl:
            stages["rl"] = stages["eval_after"] = "skipped"
        self._save_state("running")
        try:
            self._start_trackers()
            with sigterm_as_interrupt():
                if self.cfg.sft is not None and not self._done("sft"):
                    self.stage_sft()
                if self.cfg.feedback is not None and not self._done("feedback"):
                    self.stage_feedback()
                if self.cfg.preference is not None and not self._done("preference"):
                    self.stage_preference()
                if self.cfg.reward_model is not None and not self._done("reward_model"):
                    self.stage_reward_model()
                if not self._done("eval_before"):
                    self.stage_eval_before()
                if self.has_rl:
                    if not self._done("rl") or not self._rl_reached_target():
                        self.stage_rl()
                    if not self._done("eval_after"):
                        self.stage_eval_after()
                result = self.stage_report()
        except KeyboardInterrupt:
            self._save_state("interrupted")
            print(f"\ninterrupted; resume with: {self.resume_hint()}", flush=True)
            raise
        except WaitingForFeedback:
            self._save_state("waiting")  # for people's judgments: the message says how to resume
            raise
        except BaseException:
            self._save_state("failed")
            raise
        finally:
            self._close()
        self._save_state("done")
        return result

    def _start_trackers(self) -> None:
        from textgym.app.config import config_to_dict
        from textgym.app.trackers import start_trackers

        self._trackers = start_trackers(self.cfg.report_to, self.run_dir, str(self.cfg.name),
                                        config_to_dict(self.cfg), self.state)
        self._save_state()  # the tracker run ids, so a resume continues them

    def _close(self) -> None:
        if self._trackers is not None:
            self._trackers.close()
            self._trackers = None
        if self.algo is not None:
            self.algo.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None


# ----------------------------------------------------------------------------- entry points


def train(config: RunConfig, runs_dir: str | os.PathLike = "runs", *, overwrite: bool = False) -> RunResult:
    """Run ``config`` in ``<runs_dir>/<config.name>/`` from the start.

    Before the run folder is created, :func:`textgym.app.preflight.preflight` checks the
    model's tokenizer, the envs and their rewards, and the run folder's lock is taken
    (:class:`textgym.app.run_lock.RunLock`, held until this returns).  A folder of an
    earlier attempt that finished no stage is reused (cleared first): a failed run never
    blocks a rerun under the same name.

    Args:
        config: a validated :class:`RunConfig` (:func:`textgym.app.config.load_config`).
        runs_dir: parent folder of run folders.
        overwrite: delete an existing run folder of the same name first.

    Raises:
        ConfigError: the pre-flight check failed (nothing was created).
        RunFolderError: the run folder exists already with a finished stage, or is not a run
            folder (resume it, rename, or overwrite).
        textgym.app.run_lock.RunLockError: another process uses the run folder.
        KeyboardInterrupt: interrupted; the folder is resumable.
    """
    from textgym.app.preflight import preflight
    from textgym.app.run_lock import RunLock

    run_dir = Path(runs_dir) / str(config.name)
    distributed.init()  # under torchrun / accelerate launch / --nproc: data-parallel, rank 0 writes
    if not distributed.is_main():  # the other ranks train and read the folder; rank 0 checks, locks and writes it
        distributed.barrier()
        return _pipeline_class()(config, run_dir).run()
    preflight(config)
    with RunLock(run_dir):
        if run_dir.exists() and any(run_dir.iterdir()):
            is_run = (run_dir / "config.yaml").is_file()
            if overwrite:
                shutil.rmtree(run_dir)
            elif is_run and not finished_stages(run_dir):
                print(f"[run] {run_dir} holds an attempt that finished no stage; starting it over", flush=True)
                shutil.rmtree(run_dir)
            else:
                what = "exists already" if is_run else "exists and is not a textgym run folder"
                raise RunFolderError(f"run folder {run_dir} {what}; continue it with `textgym train --resume "
                                     f"{run_dir}`, pick another --name, or pass --overwrite")
        distributed.barrier()
        return Pipeline(config, run_dir).run()


def _pipeline_class() -> type[Pipeline]:
    """:class:`Pipeline` on rank 0 (the writer), :class:`~textgym.app.worker_pipeline.WorkerPipeline` on the others."""
    if distributed.is_main():
        return Pipeline
    from textgym.app.worker_pipeline import WorkerPipeline

    return WorkerPipeline


#: Keys ``--set`` may change on resume (the rest would make the resumed run a different run).
RESUME_KEYS = ("train.", "eval.every", "eval.num_samples")


def resume(run_dir: str | os.PathLike, overrides: Sequence[str] = ()) -> RunResult:
    """Continue the run in ``run_dir``: finished stages are skipped, RL continues from ``checkpoint/``.

    Args:
        run_dir: a folder written by :func:`train`.
        overrides: ``--set`` items; only ``train.*`` (e.g. more iterations), ``eval.every``
            and ``eval.num_samples`` may change.  Raising ``train.iterations`` of a finished
            run trains further and evaluates again.

    Raises:
        RunFolderError: not a run folder.
        ConfigError: an override of another key.
    """
    from textgym.app.run_lock import RunLock

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "run_state.json").is_file():
        raise RunFolderError(f"{run_dir} is not a textgym run folder (config.yaml / run_state.json missing)")
    for item in overrides:
        key = item.partition("=")[0].strip()
        if not key.startswith(RESUME_KEYS):
            raise ConfigError(f"cannot change {key!r} when resuming (only train.*, eval.every, eval.num_samples); "
                              "start a new run instead", key)
    cfg = load_config(run_dir / "config.yaml", overrides)
    distributed.init()
    if not distributed.is_main():  # rank 0 locks the folder and recovers the checkpoint first
        distributed.barrier()
        return _resume_pipeline(cfg, run_dir)
    with RunLock(run_dir):
        from textgym.agents.common.checkpoint import CheckpointError

        try:  # a save interrupted mid-rename: the last complete checkpoint back before any rank reads it
            recover_checkpoint(run_dir / "checkpoint")
        except CheckpointError as exc:
            raise RunFolderError(str(exc)) from None
        distributed.barrier()
        return _resume_pipeline(cfg, run_dir)


def _resume_pipeline(cfg: RunConfig, run_dir: Path) -> RunResult:
    pipe = _pipeline_class()(cfg, run_dir, resume=True)
    if not pipe._rl_reached_target():  # more training asked for: evaluate and report again afterwards
        for stage in ("rl", "eval_after", "report"):
            if pipe.state["stages"].get(stage) == "done":
                pipe.state["stages"][stage] = "pending"
    elif all(pipe._done(stage) for stage in STAGES):
        pipe._say(f"{run_dir} already finished every stage; nothing to resume (raise train.iterations with "
                  "--set to train further). Its summary:")
    return pipe.run()
