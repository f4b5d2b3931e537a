"""The pipeline's supervised stages: SFT (``sft/``), preference optimization (``preference/``) and the reward
model (``reward_model/``), and their data."""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textgym.app.config import ConfigError
from textgym.app.run_folder import write_csv
from textgym.app.run_state import RunFolderError

__all__ = ["SupervisedStages", "preference_rows"]


def preference_rows(data: Any, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The ``(prompt, chosen, rejected)`` rows of a :class:`textgym.app.config.RewardModelDataConfig` split.

    Args:
        data: ``reward_model.data`` (``path`` or ``dataset``).
        split: a split of that data (:func:`textgym.envs.datasets.load` rules).
        limit: keep the first this many rows (``None``: all).

    Returns:
        The rows as dicts, in the data's order.
    """
    if getattr(data, "feedback", None) is not None:  # a human-feedback project (textgym feedback ...)
        from textgym.app.feedback.export import training_pairs

        rows = training_pairs(Path(data.feedback).expanduser(), split)
        return rows[:limit] if limit is not None else rows
    from textgym.envs.datasets import load

    source = str(Path(data.path).expanduser()) if data.path is not None else data.dataset
    rows = load(source, split).to_list()
    return rows[:limit] if limit is not None else rows



def pair_split_rule(data: Any) -> str:
    """How :func:`preference_rows` chose a split's rows (for the stage's log line)."""
    if getattr(data, "feedback", None) is not None:
        return "a feedback project's 80/10/10 split by a hash of the item id"
    if data.path is None:
        return f"the {data.dataset} set's fixed split"
    from textgym.envs.datasets import read_jsonl

    if any("split" in row for row in read_jsonl(Path(data.path).expanduser())):
        return "the file's 'split' column"
    return ("80/10/10 by a hash of each row's id (else task_id, question_id, the whole row); "
            "add a 'split' column to choose")


class SupervisedStages:
    """Mixin of :class:`textgym.app.pipeline.Pipeline`: the ``sft``, ``preference`` and ``reward_model`` stages."""

    def stage_sft(self) -> None:
        """Fine-tune the starting model on the SFT rows; write ``sft/`` and ``sft_metrics.csv``."""
        from textgym.agents.trainers.sft import SFTTrainer
        from textgym.agents.trainers.sft_data import load_rows, task_rows

        s = self.cfg.sft
        self._say(f"[sft] fine-tuning {self.cfg.model} ...")
        t0 = time.perf_counter()
        if s.data.path is not None:
            rows = load_rows(str(Path(s.data.path).expanduser()))
        elif s.data.feedback is not None:  # the edits of a human-feedback project
            from textgym.app.feedback.export import training_sft_rows

            rows = training_sft_rows(Path(s.data.feedback).expanduser(), s.data.split)
        else:
            kwargs = dict(self.cfg.env.kwargs) if s.data.task == self.cfg.env.id else {}
            for key in ("reward", "reward_model", "split", "samples"):
                kwargs.pop(key, None)
            kwargs.update(s.data.env_kwargs)
            rows = task_rows(s.data.task, self.tokenizer, s.data.split, **kwargs)
        rows = self._filter_sft_rows(rows)
        if s.data.max_rows is not None:
            rows = rows[: s.data.max_rows]
        if s.data.counterfactual:
            from textgym.agents.trainers.counterfactual import augment_rows

            n = len(rows)
            rows = augment_rows(rows)
            self._say(f"[sft] counterfactual augmentation: {len(rows) - n} gender-swapped copies of {n} rows")
        trainer = SFTTrainer(self.base_model, self.tokenizer, train_data=rows, config=s.config)
        metrics = trainer.train()
        trainer.save(self.run_dir / "sft")
        summary = self._record_training(trainer, metrics, "sft_metrics.csv")
        summary.update(rows=float(len(rows)), time_s=time.perf_counter() - t0)
        self.state["results"]["sft_train"] = summary
        del trainer
        gc.collect()
        self._mark("sft")
        self._say(f"[sft] done in {summary['time_s']:.0f} s: {len(rows)} rows, "
                  f"train_loss {summary.get('train_loss', float('nan')):.4g}")

    def _record_training(self, trainer: Any, metrics: Mapping[str, Any], csv_name: str) -> dict[str, float]:
        """Write a supervised trainer's per-step history to ``run_dir/csv_name``; return its numeric final metrics."""
        if trainer.history:
            fields = list(dict.fromkeys(k for h in trainer.history for k in h))
            write_csv(self.run_dir / csv_name, fields, trainer.history)
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}

    def _filter_sft_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply ``sft.data.completion_words`` and ``sft.data.min_reward`` to ``(prompt, completion)`` rows.

        Raises:
            RunFolderError: ``min_reward`` left no row (the message gives the best score seen).
        """
        import numpy as np

        from textgym.reward_api import call_reward

        d = self.cfg.sft.data
        if d.completion_words is not None:
            for r in rows:
                lead = " " if r["completion"][:1].isspace() else ""
                r["completion"] = lead + " ".join(r["completion"].split()[: d.completion_words])
        if d.min_reward is None:
            return rows
        env = self.make_env(self.cfg.env.id, 1, self.cfg.env.kwargs, self.tokenizer)
        scores, _ = call_reward(env.reward_fn, [r["prompt"] for r in rows], [r["completion"] for r in rows])
        env.close()
        kept = [r for r, s in zip(rows, scores) if s >= d.min_reward]
        self._say(f"[sft] min_reward {d.min_reward}: kept {len(kept)} of {len(rows)} rows "
                  f"(mean reward {float(np.mean(scores)):.3f} -> {float(np.mean(scores[scores >= d.min_reward])) if kept else float('nan'):.3f})")
        if not kept:
            raise RunFolderError(f"sft.data.min_reward={d.min_reward} keeps no row (best score {float(scores.max()):.3f}); "
                                 "lower it or set it to null")
        return kept

    def _pair_splits(self, section: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        """The training and held-out pairs of ``<section>.data`` (``None``: no held-out split).

        Raises:
            ConfigError: the held-out split holds no pair (a small file's 80/10/10 hash split can leave one empty).
        """
        d = getattr(self.cfg, section).data
        train_rows = preference_rows(d, d.split, d.max_rows)
        eval_rows = preference_rows(d, d.eval_split, d.max_eval_rows) if d.eval_split is not None else None

        def capped(rows: list[Any], cap: int | None, key: str) -> str:
            return f" (the first {cap}: {key})" if cap is not None and len(rows) == cap else ""

        held = (f", {len(eval_rows)} held-out pairs ({d.eval_split!r}){capped(eval_rows, d.max_eval_rows, 'max_eval_rows')}"
                if eval_rows is not None else ", no held-out split")
        self._say(f"[{section.replace('_', ' ')}] {len(train_rows)} training pairs ({d.split!r})"
                  f"{capped(train_rows, d.max_rows, 'max_rows')}{held}; split by {pair_split_rule(d)}")
        if eval_rows is not None and not eval_rows:
            raise ConfigError(f"split {d.eval_split!r} of {d.path or d.dataset or d.feedback} holds no pair (a small "
                              "file's 80/10/10 hash split can leave one empty): pick another split, or null for no "
                              "held-out evaluation", f"{section}.data.eval_split")
        return train_rows, eval_rows

    def _train_on_pairs(self, trainer: Any, stage: str, result_key: str, t0: float) -> dict[str, float]:
        """Evaluate ``trainer`` on the held-out pairs, train it, save it to ``<run>/<stage>/`` (atomically) and
        record ``<stage>_metrics.csv`` and ``results[result_key]`` (with ``eval_before/*``, ``data/*``, ``time_s``)."""
        before = trainer.evaluate()
        metrics = trainer.train()
        trainer.save(self.run_dir / stage)
        summary = self._record_training(trainer, metrics, f"{stage}_metrics.csv")
        summary.update({f"eval_before/{k}": float(v) for k, v in before.items()})
        summary.update({f"data/{k}": float(v) for k, v in trainer.stats.items()})
        summary["time_s"] = time.perf_counter() - t0
        self.state["results"][result_key] = summary
        self._mark(stage)
        return summary

    def stage_preference(self) -> None:
        """Train the SFT model (else the run's model) on preference pairs with DPO / IPO / KTO; write
        ``preference/`` and ``preference_metrics.csv``; record the held-out implicit-reward accuracy before /
        after training (see :meth:`_train_on_pairs`)."""
        from textgym.agents.trainers.preference import PreferenceTrainer

        p = self.cfg.preference
        start = self.sft_or_base_model
        self._say(f"[preference] {p.config.loss_type} on {p.data.path or p.data.dataset or p.data.feedback} "
                  f"({p.data.split}) from {start} ...")
        t0 = time.perf_counter()
        train_rows, eval_rows = self._pair_splits("preference")
        trainer = PreferenceTrainer(start, self.tokenizer, train_data=train_rows, eval_data=eval_rows,
                                    config=p.config)
        summary = self._train_on_pairs(trainer, "preference", "preference_train", t0)
        del trainer  # free the model before the next stage loads its own
        gc.collect()
        acc = (f"held-out implicit-reward accuracy {summary.get('eval_before/accuracy', float('nan')):.3f} -> "
               f"{summary['eval/accuracy']:.3f}" if "eval/accuracy" in summary else "no held-out pairs")
        self._say(f"[preference] done in {summary['time_s']:.0f} s: {acc}")

    def stage_reward_model(self) -> None:
        """Train the reward model on the preference pairs; write ``reward_model/`` and
        ``reward_model_metrics.csv``; record the held-out pairwise accuracy before / after training
        (see :meth:`_train_on_pairs`)."""
        from textgym.agents.trainers.reward_model import RewardModelTrainer

        r = self.cfg.reward_model
        source = r.data.path or r.data.dataset or r.data.feedback
        self._say(f"[reward model] training {r.model} on {source} ({r.data.split}) ...")
        t0 = time.perf_counter()
        train_rows, eval_rows = self._pair_splits("reward_model")
        model = str(Path(r.model).expanduser().resolve()) if Path(r.model).expanduser().exists() else r.model
        trainer = RewardModelTrainer(model, train_data=train_rows, eval_data=eval_rows, config=r.config)
        summary = self._train_on_pairs(trainer, "reward_model", "reward_model", t0)
        del trainer
        gc.collect()
        acc = (f"held-out pairwise accuracy {summary['eval_before/accuracy']:.3f} -> {summary['eval/accuracy']:.3f} "
               f"on {int(summary['data/eval_pairs'])} pairs" if "eval/accuracy" in summary else "no held-out pairs")
        self._say(f"[reward model] done in {summary['time_s']:.0f} s: {int(summary['data/train_pairs'])} pairs, "
                  f"{acc}")
