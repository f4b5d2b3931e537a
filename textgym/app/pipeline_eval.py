"""The pipeline's evaluations: the eval env, one evaluation (``eval.csv``, ``samples_eval.jsonl``,
TensorBoard), the bias probes, and the ``eval_before`` / ``eval_after`` stages."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Mapping
from typing import Any

from textgym.app.run_folder import EVAL_STAGES, append_csv, read_csv, read_jsonl, rng_preserved, write_csv, write_jsonl
from textgym.app.run_models import actor_critic, eval_logits_processor, load_trained_policy, policy_for_eval

__all__ = ["PipelineEval"]


class PipelineEval:
    """Mixin of :class:`textgym.app.pipeline.Pipeline`: evaluation and the evaluation stages."""

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
            self._eval_env = self.make_env(e.id, e.num_envs, e.kwargs, self.tokenizer, self.env_reward)
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
            from textgym.agents.common.fluency import load_perplexity_texts

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
                                  num_samples=e.num_samples, reference=True,
                                  logits_processor=eval_logits_processor(cfg.algorithm, self.eval_env))
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

    def stage_eval_before(self) -> None:
        """Evaluate the starting model (stage ``before``), the SFT model (stage ``sft``, KL to the start) and the
        preference stage's model (stage ``preference``, KL to the model it started from)."""
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
        if self.cfg.preference is not None:  # KL to the model the preference stage started from
            todo.append(("preference", str(self.run_dir / "preference"), self.sft_or_base_model))
        for stage, model, ref in todo:
            self._say(f"[eval {stage}] {self.eval_description} ...")
            policy = policy_for_eval(model, n, seed, ref)
            metrics = self.evaluate(policy, stage, 0)
            metrics.update(self.probe_bias(policy, stage))
            self.state["results"][stage] = metrics
            del policy
            gc.collect()
            self._say(f"[eval {stage}] score_mean {metrics['score_mean']:.4f}")
        self._mark("eval_before")

    def stage_eval_after(self) -> None:
        """Evaluate the trained policy (stage ``after``)."""
        if self.algo is not None:
            policy = actor_critic(self.algo)
        else:
            cfg = self.cfg
            env = self.make_env(cfg.env.id, cfg.env.num_envs, cfg.env.kwargs, self.tokenizer, self.env_reward)
            policy = load_trained_policy(self.run_dir, cfg.algorithm, env)
        it = int(self.state["rl"].get("iteration", 0))
        self._say(f"[eval after] {self.eval_description} ...")
        from textgym.agents.common.fsdp import gathered

        with gathered(policy):  # FSDP: the other ranks gather the weights with rank 0 (WorkerPipeline)
            metrics = self.evaluate(policy, "after", it)
            metrics.update(self.probe_bias(policy, "after"))
        self.state["results"]["after"] = metrics
        self._mark("eval_after")
