"""The DPO step of ``trl_step.py``: textgym's ``PreferenceTrainer`` (``loss_type="dpo"``) against TRL 1.16's ``DPOTrainer``.

Equal settings on both sides: the same model weights (the folder ``trl_step.py``
exports), float32, full fine-tuning with a frozen reference copy (textgym: a
deep copy of the start model; TRL: ``ref_model`` loaded from the same folder),
the same Anthropic HH-RLHF harmless pairs (the vendored ``hh-rlhf-harmless``
train split the ``preference`` stage loads, in file order, the first pairs
whose prompt + completion + EOS fit ``--max-length`` tokens, so neither side
truncates), ``--pairs-per-step`` pairs per optimizer step in one micro-batch
(TRL: ``train_sampling_strategy="sequential"``; textgym: its batches in file
order), DPO's sigmoid loss with ``beta`` (TRL ``loss_type=["sigmoid"]``), an EOS
after each completion, AdamW (same lr / betas / eps, no weight decay), a
constant learning rate, gradient clipping at 1.0, no gradient checkpointing
(TRL's ``DPOConfig`` defaults to it; textgym has none) and dropout off on both.

**Reference log-probabilities**: computed in the step on both sides, for the
step's pairs only (TRL ``precompute_ref_log_probs=False``, its default: a no-grad
reference forward inside ``compute_loss``; textgym: the reference scores a pair
the first time a step uses it, one no-grad forward over the step's pairs).

Phases (exclusive wall time, as in ``trl_step.py``):

* reference logprobs - TRL: ``ref_model.forward`` (with its fused log-prob head);
  textgym: ``PreferenceTrainer._ensure_reference``;
* policy forward + loss - TRL: ``compute_loss`` minus the reference forward;
  textgym: ``_accumulate`` minus the reference pass and the backward;
* backward - ``torch.Tensor.backward`` (patched by ``trl_step.py``);
* optimizer - gradient clipping plus ``optimizer.step``.

The textgym step is ``SupervisedTrainer.train``'s loop body (zero the gradients,
``_global_step``, clip, ``optimizer.step``) run one step at a time on the trainer's
own optimizer and batches, so that it can interleave with TRL's steps; fetching
the next batch is outside the timed step on both sides (TRL's ``get_batch_samples``
also pads the batch there; textgym pads inside its forward).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from typing import Any

import torch
from _common import PhaseTimer, Table, diff, machine_info, sync

DPO_PHASES = ["reference logprobs", "policy forward + loss", "backward", "optimizer", "other"]


def hh_pairs(model_dir: str, n: int, max_length: int) -> list[dict[str, str]]:
    """The first ``n`` HH-harmless train pairs (file order) whose longer side, prompt + completion + EOS, fits
    ``max_length`` tokens with 4 to spare (tokenisations at the prompt/completion seam differ by a token or two)."""
    from textgym.envs.datasets import load
    from textgym.models import load_tokenizer

    tok = load_tokenizer(model_dir)
    out = []
    for row in load("hh-rlhf-harmless", split="train").to_list():
        if row["chosen"] == row["rejected"]:
            continue
        p = len(tok(row["prompt"])["input_ids"])
        c = max(len(tok(row[k], add_special_tokens=False)["input_ids"]) for k in ("chosen", "rejected"))
        if p + c + 1 <= max_length - 4:
            out.append({"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]})
            if len(out) == n:
                return out
    raise ValueError(f"only {len(out)} HH pairs fit --max-length {max_length}; asked for {n}")


class TextgymDPO:
    """textgym's ``PreferenceTrainer`` stepped one optimizer step at a time, its phases timed."""

    def __init__(self, args: argparse.Namespace, pairs: list[dict[str, str]], active: Any):
        from textgym.agents import PreferenceConfig, PreferenceTrainer
        from textgym.agents.trainers._train import batches

        cfg = PreferenceConfig(
            loss_type="dpo", beta=args.dpo_beta, learning_rate=args.lr, weight_decay=0.0, lr_schedule="constant",
            warmup_ratio=0.0, max_grad_norm=1.0, batch_size=args.pairs_per_step, grad_accum_steps=1,
            eval_batch_size=2 * args.pairs_per_step, max_length=args.max_length, max_steps=args.steps, seed=0,
            device=args.device, progress=False)
        self.trainer = tr = PreferenceTrainer(args.model_dir, train_data=pairs, config=cfg)
        n = len(tr.train_items)
        tr._epoch_batches = lambda rng: batches(n, cfg.batch_size, None)  # file order, like TRL's sequential sampler
        self.params = tr._trainable()
        self.optimizer = tr._optimizer(self.params)
        self.groups = tr._groups()
        self.active = active
        self.timer = PhaseTimer(lambda: sync(args.device))
        self.timer.wrap(tr, "_ensure_reference", "reference logprobs")
        self.timer.wrap(tr, "_accumulate", "policy forward + loss")
        self.timer.wrap(self.optimizer, "step", "optimizer")
        self.steps: list[dict[str, float]] = []

    def step(self) -> None:
        """One optimizer step (``SupervisedTrainer.train``'s loop body); appends its times to :attr:`steps`."""
        tr, micro_batches = self.trainer, next(self.groups)
        tokens = sum(len(e) for mb in micro_batches for it in mb for e in (it["chosen"], it["rejected"]))
        before = self.timer.snapshot()
        self.active.timer = self.timer
        tr.model.train()
        sync(tr.device)
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        metrics = tr._global_step(self.params, micro_batches)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        sync(tr.device)
        total = time.perf_counter() - t0
        self.active.timer = None
        self.steps.append({**diff(self.timer.snapshot(), before), "step": total, "tokens": float(tokens),
                           "loss": float(metrics["loss"])})

    def close(self) -> None:
        self.timer.restore()


def make_trl_dpo(args: argparse.Namespace, pairs: list[dict[str, str]], out_dir: str) -> Any:
    """TRL's ``DPOTrainer`` with the benchmark's settings (see the module docstring)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    cfg = DPOConfig(
        output_dir=out_dir, per_device_train_batch_size=args.pairs_per_step, gradient_accumulation_steps=1,
        max_steps=args.steps, learning_rate=args.lr, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
        weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", lr_scheduler_type="constant", warmup_steps=0,
        beta=args.dpo_beta, loss_type=["sigmoid"], max_length=args.max_length, precompute_ref_log_probs=False,
        gradient_checkpointing=False, disable_dropout=True, bf16=False, fp16=False, use_cpu=args.device == "cpu",
        train_sampling_strategy="sequential", seed=0, report_to="none", logging_steps=1, save_strategy="no",
        disable_tqdm=True, dataloader_num_workers=0, model_init_kwargs={"dtype": torch.float32})
    ref = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    return DPOTrainer(model=args.model_dir, ref_model=ref, args=cfg, train_dataset=Dataset.from_list(pairs))


def run_dpo(args: argparse.Namespace, active: Any) -> tuple[list[dict], list[dict], dict]:
    """TRL's and textgym's DPO steps interleaved (order alternating per step); returns both step records and info."""
    from transformers import PrinterCallback, TrainerCallback

    pairs = hh_pairs(args.model_dir, args.steps * args.pairs_per_step, args.max_length)
    side = TextgymDPO(args, pairs, active)
    trainer = make_trl_dpo(args, pairs, tempfile.mkdtemp(prefix="textgym-bench-dpo-"))
    timer = PhaseTimer(lambda: sync(args.device))
    record: dict[str, float] = {}

    def loss_phase(model: Any, inputs: Any, *a: Any, **kw: Any) -> str:
        record["tokens"] = float(inputs["attention_mask"].sum())
        return "policy forward + loss"

    compute_loss = trainer.compute_loss

    def compute_loss_recorded(*a: Any, **kw: Any) -> Any:
        out = compute_loss(*a, **kw)
        record["loss"] = float((out[0] if isinstance(out, tuple) else out).detach())
        return out

    trainer.compute_loss = compute_loss_recorded
    timer.wrap(trainer, "compute_loss", loss_phase)
    timer.wrap(trainer.ref_model, "forward", "reference logprobs")
    timer.wrap(trainer, "_clip_grad_norm", "optimizer")
    trl_steps: list[dict[str, float]] = []
    info: dict[str, Any] = {"pairs": len(pairs)}

    class Interleave(TrainerCallback):
        def on_train_begin(self, a: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
            timer.wrap(optimizer, "step", "optimizer")
            info["trl_optimizer"] = type(getattr(optimizer, "optimizer", optimizer)).__name__

        def on_step_begin(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            self.textgym_first = state.global_step % 2 == 1
            if self.textgym_first:
                side.step()
            self.before = timer.snapshot()
            active.timer = timer
            sync(args.device)
            self.t0 = time.perf_counter()

        def on_step_end(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            sync(args.device)
            total = time.perf_counter() - self.t0
            active.timer = None
            trl_steps.append({**diff(timer.snapshot(), self.before), "step": total, **record})
            if not self.textgym_first:
                side.step()
            t = side.steps[-1]
            print(f"  dpo step {state.global_step}: TRL {total:.2f} s (loss {record['loss']:.4f}, "
                  f"{record['tokens']:.0f} tokens), textgym {t['step']:.2f} s (loss {t['loss']:.4f}, "
                  f"{t['tokens']:.0f} tokens)", flush=True)

    trainer.add_callback(Interleave())
    trainer.remove_callback(PrinterCallback)
    info["textgym_optimizer"] = type(side.optimizer).__name__
    try:
        trainer.train()
    finally:
        timer.restore()
        side.close()
    steps = list(side.steps)
    del trainer, side
    gc.collect()
    return trl_steps, steps, info


def summarize_dpo(steps: list[dict[str, float]]) -> dict[str, float]:
    """Medians over the measured steps (the first, a warm-up, excluded) of the step, each phase and the tokens."""
    measured = steps[1:] or steps
    named = [p for p in DPO_PHASES if p != "other"]
    out = {p: statistics.median(s.get(p, 0.0) for s in measured) for p in named}
    out["step"] = statistics.median(s["step"] for s in measured)
    out["other"] = statistics.median(s["step"] - sum(s.get(p, 0.0) for p in named) for s in measured)
    out["tokens"] = statistics.median(s["tokens"] for s in measured)
    out["n"] = len(measured)
    return out


def dpo_report(args: argparse.Namespace, trl_version: str, active: Any) -> None:
    """Run the DPO comparison and write ``results/trl_step-dpo.md`` / ``.csv`` (steps: ``trl_step-dpo-steps``).

    Args:
        active: ``trl_step.Active``, the holder the process-wide ``Tensor.backward`` patch reports to.
    """
    header = (f"### textgym vs TRL {trl_version}: one DPO step ({args.model}, fp32, {args.device}, full fine-tuning)"
              f"\n\n{args.pairs_per_step} HH-harmless pairs per step (each side up to {args.max_length} tokens), "
              f"beta {args.dpo_beta:g}, AdamW lr {args.lr:g}, reference log-probs computed in the step on both "
              f"sides, {args.steps} steps per side interleaved, first excluded\nmachine: {machine_info()}")
    print(header, flush=True)
    trl_steps, tg_steps, info = run_dpo(args, active)
    table = Table("trl_step-dpo", ["library", "s/step", "tokens/step", "speedup vs TRL", *DPO_PHASES],
                  {"tokens/step": 0})
    a, b = summarize_dpo(trl_steps), summarize_dpo(tg_steps)
    pairs = [x["step"] / y["step"] for x, y in zip(trl_steps[1:], tg_steps[1:])]
    table.add(f"TRL {trl_version}", a["step"], a["tokens"], 1.0, *(a[p] for p in DPO_PHASES))
    table.add("textgym", b["step"], b["tokens"], statistics.median(pairs), *(b[p] for p in DPO_PHASES))
    steps_table = Table("trl_step-dpo-steps", ["library", "step", "warm-up", "seconds", "tokens", "loss",
                                               *DPO_PHASES])
    named = [p for p in DPO_PHASES if p != "other"]
    for name, steps in ((f"TRL {trl_version}", trl_steps), ("textgym", tg_steps)):
        for i, st in enumerate(steps):
            table_row = [st.get(p, 0.0) for p in named] + [st["step"] - sum(st.get(p, 0.0) for p in named)]
            steps_table.add(name, i + 1, i == 0, st["step"], st["tokens"], st["loss"], *table_row)
    steps_table.write(out_dir=args.out_dir)
    losses = "; ".join(f"step {i + 1}: TRL {x['loss']:.4f} / textgym {y['loss']:.4f}"
                       for i, (x, y) in enumerate(zip(trl_steps, tg_steps)))
    table.emit(header, out_dir=args.out_dir, notes=(
        "s/step and phase columns: medians over the measured steps, in seconds (exclusive phases, see "
        "benchmarks/_trl_dpo.py). Speedup vs TRL: the median over steps k of TRL's step k time / textgym's step k "
        f"time.\n\n- speedup per step {', '.join(f'{r:.2f}' for r in pairs)}; {a['n']} measured steps per side\n"
        f"- DPO loss per step (log 2 = 0.6931 at step 1 on both: policy = reference): {losses}\n"
        f"- optimizers {info['trl_optimizer']} (TRL) / {info['textgym_optimizer']} (textgym); tokens/step counts "
        "the non-padding tokens of the chosen and rejected sequences\n"
        f"- machine at the end of the run: {machine_info()}"))

