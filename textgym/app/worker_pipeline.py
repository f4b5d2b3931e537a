"""The pipeline of a rank other than 0 in a data-parallel run: the same training, no writing.

With several processes (``textgym train --nproc N``, ``torchrun``, ``accelerate
launch``) every rank runs the pipeline's stages in the same order, because the
training stages (SFT, reward model, RL) are collective.  Rank 0 runs the
ordinary :class:`~textgym.app.pipeline.Pipeline` and alone writes the run folder
(state, logs, evaluations, checkpoints, report).  The other ranks run a
:class:`WorkerPipeline`: it reads the folder (a resumed run's state and
checkpoint, the SFT model rank 0 saved) but never writes it, and it skips the
evaluations, which rank 0 runs on its own (with FSDP the other ranks take part in
gathering the sharded weights for each of rank 0's evaluations of the live policy).  ``Pipeline._mark`` ends every stage
with a barrier, so a rank never reads what rank 0 has not finished writing.
"""

from __future__ import annotations

from typing import Any, Mapping

from textgym.app.pipeline import Pipeline, RunResult

__all__ = ["WorkerPipeline"]


class WorkerPipeline(Pipeline):
    """A :class:`Pipeline` for ranks > 0: trains, reads the run folder, writes nothing."""

    def _save_state(self, status: str | None = None) -> None:
        if status is not None:
            self.state["status"] = status

    @staticmethod
    def _say(msg: str) -> None:  # rank 0 prints
        pass

    def _write_config(self) -> None:
        pass

    def evaluate(self, policy: Any, stage: str, iteration: int) -> dict[str, float]:
        return {}

    def _record_training(self, trainer: Any, metrics: Mapping[str, Any], csv_name: str) -> dict[str, float]:
        return {}

    def _add_components(self, iteration: int, seen: Mapping[str, Mapping[str, float]]) -> None:
        pass

    def stage_feedback(self) -> None:  # rank 0 generates and collects; the others wait at the stage's barrier
        self._mark("feedback")

    def stage_eval_before(self) -> None:
        self._mark("eval_before", "done" if self.cfg.eval.before else "skipped")

    def stage_eval_after(self) -> None:
        if self.algo is not None:  # FSDP: rank 0 evaluates the trained policy on weights gathered with every rank
            from textgym.agents.common.fsdp import gathered
            from textgym.app.run_models import actor_critic

            with gathered(actor_critic(self.algo)):
                pass
        self._mark("eval_after")

    def stage_report(self) -> RunResult:
        self._mark("report")
        rl = self.state["rl"]
        return RunResult(self.run_dir, {}, int(rl.get("iteration", 0)), int(rl.get("num_timesteps", 0)), [])

    def _on_iteration(self, algo: Any, metrics: Mapping[str, Any]) -> None:
        self.state["rl"].update(iteration=algo.iteration, num_timesteps=algo.num_timesteps)
        e, (unit, target) = self.cfg.eval.every, self._rl_target()
        if e and algo.iteration % e == 0 and not (unit == "iterations" and algo.iteration >= target):
            from textgym.agents.common.fsdp import gathered
            from textgym.app.run_models import actor_critic

            with gathered(actor_critic(algo)):  # FSDP: rank 0 evaluates on the weights gathered with every rank
                pass

    def _build_algo(self, env: Any) -> Any:
        """The algorithm fresh or from ``checkpoint/`` like rank 0's, without touching the folder's logs."""
        import dataclasses

        from textgym.agents.algorithms import registry
        from textgym.app.run_folder import has_checkpoint

        cfg, ckpt = self.cfg, self.run_dir / "checkpoint"
        algo_cls = registry.get_algorithm(cfg.algorithm)
        overrides = {"run_dir": str(self.run_dir)}
        if algo_cls.saves_checkpoints:
            overrides["save_every"] = cfg.train.save_every
        if has_checkpoint(ckpt):
            algo = algo_cls.load(ckpt, env, **overrides)
            if self._eval_missing(algo.iteration):  # rank 0 evaluates on weights gathered with every rank (FSDP)
                from textgym.agents.common.fsdp import gathered
                from textgym.app.run_models import actor_critic

                with gathered(actor_critic(algo)):
                    pass
            return algo
        return algo_cls(self.rl_start_model, env, dataclasses.replace(cfg.algo, **overrides))


