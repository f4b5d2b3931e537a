"""The pipeline's last stage: ``eval.json``, ``summary.md``, the plots and the model cards; the printed table."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textgym.app.run_folder import EVAL_STAGES, format_table, read_jsonl, sample_table, write_atomic
from textgym.app.run_state import RunResult

__all__ = ["ReportStage", "skipped_steps_line"]


def skipped_steps_line(skipped: Mapping[str, int]) -> str:
    """The run summary's line about skipped optimizer steps (``{iteration: count}``; ``""`` when none)."""
    total = sum(int(n) for n in skipped.values())
    if not total:
        return ""
    its = ", ".join(sorted(skipped, key=int))
    return (f"**{total} optimizer step(s) skipped** (a non-finite loss or gradient norm; weights left unchanged) "
            f"in iteration(s) {its}: see the warnings and `stats/skipped_steps` in metrics.csv")



class ReportStage:
    """Mixin of :class:`textgym.app.pipeline.Pipeline`: the ``report`` stage."""

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
        if "feedback" in self.state["results"]:
            parts.append(self._feedback_line(self.state["results"]["feedback"]))
        if "preference_train" in self.state["results"]:
            s, pref = self.state["results"]["preference_train"], self.cfg.preference
            line = (f"- preference ({pref.config.loss_type}, beta {pref.config.beta:g}): "
                    f"{int(s.get('data/train_pairs', s.get('data/train_examples', 0)))} training items of "
                    f"`{pref.data.path or pref.data.dataset or pref.data.feedback}` ({pref.data.split}), "
                    f"train_loss {s.get('train_loss', float('nan')):.4g}")
            if "eval/accuracy" in s:
                line += (f"; held-out implicit-reward accuracy {s['eval/accuracy']:.3f} (before training "
                         f"{s.get('eval_before/accuracy', float('nan')):.3f}) on `{pref.data.eval_split}` pairs")
            parts.append(line + f"; {s.get('time_s', 0.0):.0f} s")
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

    def _feedback_line(self, s: Mapping[str, float]) -> str:
        """The summary line of the feedback stage (items, judgments, who judged, agreement, pairs)."""
        f = self.cfg.feedback
        fmt = lambda k: f"{s[k]:.3f}" if k in s else "n/a"  # noqa: E731
        who = (f"{f.simulate.annotators} simulated annotators (rater `{f.simulate.rater}`, noise {f.simulate.noise:g}, "
               f"edit rate {f.simulate.edit_rate:g})" if f.simulate is not None else f"{int(s.get('annotators', 0))} people")
        return (f"- feedback: `{f.project}`: {int(s.get('items', 0))} items, {int(s.get('judgments', 0))} judgments "
                f"({int(s.get('edits', 0))} edits) by {who}; agreement: Krippendorff's alpha (ordinal) "
                f"{fmt('agreement/rating_alpha_ordinal')}, rankings {fmt('agreement/ranking_pairwise')}; "
                f"{int(s.get('pairs', 0))} preference pairs ({int(s.get('pairs/train', 0))} train / "
                f"{int(s.get('pairs/test', 0))} test); {s.get('time_s', 0.0):.0f} s")

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
