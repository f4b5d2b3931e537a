"""The pipeline's RL stage: build or resume the algorithm from ``checkpoint/``, train, checkpoint, log."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textgym.app.run_envs import ComponentRecorder
from textgym.app.run_folder import (
    checkpoint_counters,
    has_checkpoint,
    purge_tensorboard,
    read_csv,
    read_jsonl,
    recover_checkpoint,
    truncate_run_logs,
    write_jsonl,
)
from textgym.app.run_models import actor_critic
from textgym.app.run_state import RunFolderError

__all__ = ["RLStage"]


class RLStage:
    """Mixin of :class:`textgym.app.pipeline.Pipeline`: the ``rl`` stage (see the pipeline's docstring for resume)."""

    def _rl_target(self) -> tuple[str, int]:
        t = self.cfg.train
        return ("iterations", t.iterations) if t.iterations is not None else ("timesteps", t.total_timesteps)

    def _eval_missing(self, iteration: int) -> bool:
        """Whether the run was interrupted before the in-training evaluation at ``iteration`` was recorded."""
        every = self.cfg.eval.every
        fields, rows = read_csv(self.run_dir / "eval.csv")
        return bool(every) and iteration % every == 0 and not any(
            r.get("stage") == "train" and float(r["iteration"]) == iteration for r in rows)

    def _rl_reached_target(self) -> bool:
        """RL finished for the configured length (a longer ``train`` on resume means it did not); no RL: True."""
        if not self.has_rl:
            return True
        return self._done("rl") and self.state["rl"].get("done_target") == list(self._rl_target())

    def _build_algo(self, env: Any) -> Any:
        from textgym.agents.algorithms import registry

        cfg, run_dir = self.cfg, self.run_dir
        algo_cls = registry.get_algorithm(cfg.algorithm)
        ckpt = run_dir / "checkpoint"
        overrides = {"run_dir": str(run_dir)}
        if algo_cls.saves_checkpoints:  # else the pipeline saves (see _on_iteration)
            overrides["save_every"] = cfg.train.save_every
        from textgym.agents.common.checkpoint import CheckpointError

        try:
            recover_checkpoint(ckpt)
        except CheckpointError as exc:
            raise RunFolderError(str(exc)) from None
        if has_checkpoint(ckpt):
            counters = checkpoint_counters(ckpt)
            it = int(counters["iteration"])
            truncate_run_logs(run_dir, it)
            purge_tensorboard(run_dir, it)
            self._say(f"[rl] resuming from {ckpt} (iteration {it})")
            algo = algo_cls.load(ckpt, env, **overrides)
            if self._eval_missing(it):
                from textgym.agents.common.fsdp import gathered

                with gathered(actor_critic(algo)):  # FSDP: the other ranks gather with rank 0 (WorkerPipeline)
                    self.evaluate(actor_critic(algo), "train", it)  # interrupted before this evaluation finished
            return algo
        # a fresh start: drop logs of an earlier attempt that never reached a checkpoint
        truncate_run_logs(run_dir, 0)
        for stale in ("samples.jsonl", "metrics.csv"):
            (run_dir / stale).unlink(missing_ok=True)
        for name in os.listdir(run_dir / "tb") if (run_dir / "tb").is_dir() else []:
            if name != "eval":
                p = run_dir / "tb" / name
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        algo_cfg = dataclasses.replace(cfg.algo, **overrides)
        return algo_cls(self.rl_start_model, env, algo_cfg)

    def stage_rl(self) -> None:
        """Train with the registered algorithm (fresh, or from ``checkpoint/``); checkpoint at the end."""
        cfg = self.cfg
        env = self.make_env(cfg.env.id, cfg.env.num_envs, cfg.env.kwargs, self.tokenizer, self.env_reward)
        inner = env.unwrapped
        if hasattr(inner, "reward_fn"):  # a conversation env's rewards come from its responder: nothing to record
            self._recorder = ComponentRecorder(inner.reward_fn, getattr(self.tokenizer, "all_special_tokens", ()))
            inner.reward_fn = self._recorder
        self._mark("rl", "running")
        self.algo = algo = self._build_algo(env)
        unit, target = self._rl_target()
        done = algo.iteration if unit == "iterations" else algo.num_timesteps
        self._say(f"[rl] {cfg.algorithm} from {self.rl_start_model}: {unit} {done}/{target}")
        t0 = self._rl_t0 = time.perf_counter()
        self._line_at = None  # the --no-progress lines (_progress_line)
        ckpt = self.run_dir / "checkpoint"
        if done < target:
            from textgym.app.graceful import GracefulStop

            kw = {"iterations": target - done} if unit == "iterations" else {"total_timesteps": target - done}
            algo.logger.progress_offset = done  # the bar shows done/target, also after a resume
            with GracefulStop() as self._stop:
                algo.learn(callback=self._on_iteration, **kw)
            if self._stop.requested:  # Ctrl-C / SIGTERM: keep the finished iterations, then stop
                self._checkpoint_and_stop(algo, ckpt, t0)
            every = cfg.train.save_every
            if not (every and algo.iteration % every == 0):  # else train_step saved this iteration already
                algo.save(ckpt)
        elif not has_checkpoint(ckpt):
            algo.save(ckpt)
        self.state["rl"].update(iteration=algo.iteration, num_timesteps=algo.num_timesteps,
                                checkpoint_iteration=algo.iteration, done_target=[unit, target],
                                time_s=self.state["rl"].get("time_s", 0.0) + time.perf_counter() - t0)
        self._mark("rl")

    def _checkpoint_and_stop(self, algo: Any, ckpt: Path, t0: float) -> None:
        """After a graceful stop: checkpoint the iteration just finished (atomically), record it, interrupt."""
        if not (has_checkpoint(ckpt) and checkpoint_counters(ckpt).get("iteration") == algo.iteration):
            algo.save(ckpt)
        self.state["rl"].update(iteration=algo.iteration, num_timesteps=algo.num_timesteps,
                                checkpoint_iteration=algo.iteration,
                                time_s=self.state["rl"].get("time_s", 0.0) + time.perf_counter() - t0)
        self._save_state()
        self._say(f"[rl] stopped after iteration {algo.iteration}; checkpoint saved to {ckpt}")
        raise KeyboardInterrupt("stopped by signal")

    def _on_iteration(self, algo: Any, metrics: Mapping[str, Any]) -> bool | None:
        # 1. the checkpoint, if the algorithm does not save by itself (Algorithm.saves_checkpoints)
        every = self.cfg.train.save_every
        if every and algo.iteration % every == 0 and not algo.saves_checkpoints:
            algo.save(self.run_dir / "checkpoint")
        if self._trackers is not None:
            self._trackers.log(metrics, algo.iteration)
        # 2. reward components of this iteration's logged samples
        seen = self._recorder.take() if self._recorder is not None else {}
        if seen and getattr(algo.config, "log_samples", 0):
            self._add_components(algo.iteration, seen)
        # 3. the RL position
        rl = self.state["rl"]
        rl.update(iteration=algo.iteration, num_timesteps=algo.num_timesteps)
        skipped = int(metrics.get("stats/skipped_steps") or 0)
        if skipped:  # by iteration, so a resumed run that repeats an iteration does not count it twice
            rl.setdefault("skipped_steps", {})[str(algo.iteration)] = skipped
        if every and algo.iteration % every == 0:
            rl["checkpoint_iteration"] = algo.iteration
        self._save_state()
        # 4. without a bar (--no-progress): a line at the first and last iteration and every ~30 s between
        e, (unit, target) = self.cfg.eval.every, self._rl_target()
        last = unit == "iterations" and algo.iteration >= target
        self._progress_line(algo, metrics, unit, target)
        # 5. an evaluation every eval.every iterations (the last one is the "after" evaluation)
        if e and algo.iteration % e == 0 and not last:
            from tqdm.auto import tqdm

            from textgym.agents.common.fsdp import gathered

            with gathered(actor_critic(algo)):  # FSDP: every rank gathers the weights, rank 0 evaluates alone
                m = self.evaluate(actor_critic(algo), "train", algo.iteration)
            tqdm.write(f"[eval] iteration {algo.iteration}: score_mean {m['score_mean']:.4f}")
        # 6. a Ctrl-C / SIGTERM during this iteration: stop the loop (stage_rl saves and stops)
        stop = getattr(self, "_stop", None)
        return False if stop is not None and stop.requested else None

    def _add_components(self, iteration: int, seen: Mapping[str, Mapping[str, float]]) -> None:
        path = self.run_dir / "samples.jsonl"
        rows = read_jsonl(path)
        changed = False
        for r in rows:
            if r.get("iteration") == iteration and "components" not in r:
                comps = seen.get(self._recorder.key(str(r.get("completion", ""))))
                if comps is not None:
                    r["components"] = comps
                    changed = True
        if changed:
            write_jsonl(path, rows)

    def _progress_line(self, algo: Any, metrics: Mapping[str, Any], unit: str, target: int) -> None:
        """``[rl] iteration 3/40, 1,536 tokens, mean reward 0.123, 95 s`` under ``--no-progress`` (not ``-q``)."""
        from textgym.app.output import PROGRESS_LINE_EVERY_S, progress_lines, say

        if not progress_lines():
            return
        now, last_line = time.perf_counter(), getattr(self, "_line_at", None)
        started = getattr(self, "_rl_t0", now)
        done = algo.iteration if unit == "iterations" else algo.num_timesteps
        if last_line is None or done >= target or now - last_line >= PROGRESS_LINE_EVERY_S:
            it = f"iteration {algo.iteration}/{target}" if unit == "iterations" else f"iteration {algo.iteration}"
            tok = f"{algo.num_timesteps:,}" + (f"/{target:,}" if unit != "iterations" else "")
            score = metrics.get("reward/score")
            mean = f", mean reward {float(score):.4g}" if score is not None else ""
            say(f"[rl] {it}, {tok} tokens{mean}, {now - started:.0f} s")
            self._line_at = now

