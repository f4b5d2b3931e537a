"""Update step vs TRL: textgym's GRPO, RLOO and DPO against TRL 1.16's GRPOTrainer, RLOOTrainer and DPOTrainer, with a per-phase breakdown.

Usage::

    python benchmarks/trl_step.py                                  # SmolLM2-135M-Instruct, 4 steps, 1 thread
    python benchmarks/trl_step.py --steps 6                        # the published table (about 20 minutes)
    python benchmarks/trl_step.py --model tiny-llama --steps 3     # quick check (about a minute)
    python benchmarks/trl_step.py --algorithms grpo --steps 6
    python benchmarks/trl_step.py --algorithms dpo --steps 6       # the DPO step alone (benchmarks/_trl_dpo.py)

GRPO and RLOO (below) write ``results/trl_step.md``; DPO, whose settings and
phases are in ``benchmarks/_trl_dpo.py``, writes ``results/trl_step-dpo.md``.

Equal settings on both sides: the same model weights (``textgym.models.load(--model)``,
saved once to a local folder that TRL loads; never a Hub id), float32, the same
IMDB review prefixes in the same order (``--prompts-per-step`` prompts per step,
``--group-size`` completions each), exactly ``--new-tokens`` sampled tokens per
completion (no early stop: textgym's env has no stop token, TRL gets
``min_new_tokens``), temperature 1, AdamW with the same learning rate / betas /
eps / no weight decay, a constant learning rate, gradient clipping at 1.0, one
optimizer step per rollout (one epoch, one minibatch), the KL term computed
against a frozen copy of the model (GRPO: ``beta = 0.04`` k3 in the loss, the
loss averaged per sequence - TRL ``loss_type="grpo"``; RLOO: ``beta = 0.05`` in
the reward) and the same cheap lexicon reward (:func:`_common.lexicon_reward`).
Both run in one process with the same ``torch.set_num_threads``.

Steps interleave: TRL step k and textgym step k (of each textgym variant:
``default``, ``rescore`` = ``rescore_policy=True`` and ``no-rescore`` = ``rescore_policy=False``; the
default resolves to off here, one epoch of one minibatch) run back to back
in an order that rotates with k, so load changes on a shared machine hit
every side; the first step of each is a warm-up and is excluded.  textgym's
``P`` (prompt slots) defaults to the longest prompt: textgym pads every prompt
to ``P`` and prefills all ``P`` columns, TRL pads to the longest in the batch.

How the phases are timed (exclusive wall time: a phase nested in another is
not counted twice; "other" is the step time minus the phases):

* step - TRL: ``on_step_begin`` -> ``on_step_end`` callbacks (generation,
  loss, backward, clipping, optimizer; not TRL's logging after the step);
  textgym: ``algo.train_step()`` (rollout, update, in-memory logging);
* generation - TRL: ``trainer._generate`` (tokenize, ``model.generate``, decode);
  textgym: ``collector.collect`` minus the phases below (prefill, cached decode
  steps, sampling, env steps);
* reward - the reward function itself (the same function on both sides);
* policy logprobs (no grad) - TRL: ``_get_per_token_logps_and_entropies`` on the
  policy under ``no_grad`` (RLOO always, GRPO never with one iteration);
  textgym: the rollout's scoring pass ``collector.score`` minus its reference
  forward (it also holds the log-softmax of the reference logits);
* reference forward - TRL: ``_get_per_token_logps_and_entropies`` on ``ref_model``
  (fused log-probs included); textgym: ``policy.reference_logits``;
* policy forward + loss - TRL: ``trainer.compute_loss``; textgym: ``algo.update``
  minus backward and optimizer;
* backward - ``torch.Tensor.backward`` (patched for the run; both call it);
* optimizer - gradient clipping (TRL: ``trainer._clip_grad_norm``; textgym:
  ``torch.nn.utils.clip_grad_norm_``) plus ``optimizer.step``.

The table reports medians over the measured steps (robust to the odd step a
burst of another job doubles) and, as the speedup, the median over steps k of
TRL's step-k time over textgym's step-k time; ``results/trl_step-steps.csv``
holds every step of every side.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import tempfile
import time
from typing import Any

import torch
from _trl_dpo import dpo_report
from _common import (
    PhaseTimer,
    Table,
    check_trl,
    diff,
    export_model,
    imdb_prompts,
    lexicon_reward,
    machine_info,
    quiet,
    set_threads,
    sync,
)

PHASES = ["generation", "reward", "policy logprobs (no grad)", "reference forward", "policy forward + loss",
          "backward", "optimizer", "other"]
KL_COEF = {"grpo": 0.04, "rloo": 0.05}


class Active:
    """Which side's timer the process-wide patches (``Tensor.backward``, ``clip_grad_norm_``) report to."""

    timer: PhaseTimer | None = None


def patch_globals() -> list[tuple[Any, str, Any]]:
    """Time ``torch.Tensor.backward`` and ``torch.nn.utils.clip_grad_norm_`` into ``Active.timer``; returns undo info."""
    undo = []
    for owner, attr, phase in ((torch.Tensor, "backward", "backward"),
                               (torch.nn.utils, "clip_grad_norm_", "optimizer")):
        original = getattr(owner, attr)

        def timed(*a: Any, _original: Any = original, _phase: str = phase, **kw: Any) -> Any:
            if Active.timer is None:
                return _original(*a, **kw)
            with Active.timer.phase(_phase):
                return _original(*a, **kw)

        setattr(owner, attr, timed)
        undo.append((owner, attr, original))
    return undo


def timed_reward(timer_of: Any) -> Any:
    """The lexicon reward, timed into whichever side is active (keeps the ``__name__`` TRL logs it under)."""

    @functools.wraps(lexicon_reward)
    def reward(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
        t = timer_of()
        if t is None:
            return lexicon_reward(prompts, completions, **kwargs)
        with t.phase("reward"):
            return lexicon_reward(prompts, completions, **kwargs)

    return reward


# ---------------------------------------------------------------------------------------------- textgym side
class TextgymSide:
    """A textgym GRPO/RLOO on the benchmark prompts, with its phases timed.

    Args:
        kind: ``"grpo"`` or ``"rloo"``.
        args: the parsed command line.
        prompts: the prompt texts, used in order.
        reward: the (timed) reward callable.
        rescore: ``rescore_policy`` of the config (textgym's default ``None``: off with one epoch of one minibatch).
    """

    def __init__(self, kind: str, args: argparse.Namespace, prompts: list[str], reward: Any, rescore: bool | None = None):
        from textgym import TextGenVectorEnv
        from textgym.agents import LMActorCritic
        from textgym.agents.algorithms.registry import get_algorithm
        from textgym.reward_api import FunctionReward

        algo_cls = get_algorithm(kind)
        n = args.prompts_per_step * args.group_size
        policy = LMActorCritic.from_pretrained(args.model_dir, device=args.device)
        env = TextGenVectorEnv(policy.tokenizer, [{"prompt": p} for p in prompts],
                               FunctionReward(reward, batched=True, name="lexicon"), num_envs=n,
                               max_prompt_length=args.max_prompt_length, max_new_tokens=args.new_tokens,
                               stop_token_ids=[], shuffle=False, vocab_size=policy.action_size,
                               autoreset_mode="Disabled", info_completions=False)
        extra = ({"loss_aggregation": "sequence", "clip_range": 0.2, "beta": KL_COEF[kind]} if kind == "grpo"
                 else {"clip_range": None, "kl_coef": KL_COEF[kind]})  # GRPO: a KL loss term; RLOO: a reward penalty
        cfg = algo_cls.config_class(
            seed=0, learning_rate=args.lr, adam_betas=(0.9, 0.999), adam_eps=1e-8, weight_decay=0.0,
            max_grad_norm=1.0, temperature=1.0, top_k=None, top_p=1.0, group_size=args.group_size, n_epochs=1,
            minibatch_size=None, micro_batch_size=None, target_kl_ref=None,
            rescore_policy=rescore, device=args.device, run_dir=None, tensorboard=False,
            progress_bar=False, log_samples=0, **extra)
        self.algo = algo_cls(policy, env, cfg)
        self.timer = PhaseTimer(lambda: sync(args.device))
        t, pol, algo = self.timer, self.algo.policy, self.algo
        t.wrap(algo.collector, "collect", "generation")
        t.wrap(algo.collector, "score", "policy logprobs (no grad)")
        t.wrap(pol, "reference_logits", "reference forward")
        t.wrap(algo, "update", "policy forward + loss")
        t.wrap(algo.optimizer, "step", "optimizer")
        self.steps: list[dict[str, float]] = []  # per step: "step", phases, "tokens"

    def step(self) -> None:
        """One timed ``train_step``; appends its times to :attr:`steps`."""
        before, tokens = self.timer.snapshot(), self.algo.num_timesteps
        Active.timer = self.timer
        sync(self.algo.policy.device)
        t0 = time.perf_counter()
        self.algo.train_step()
        sync(self.algo.policy.device)
        total = time.perf_counter() - t0
        Active.timer = None
        self.steps.append({**diff(self.timer.snapshot(), before), "step": total,
                           "tokens": float(self.algo.num_timesteps - tokens)})

    def close(self) -> None:
        self.timer.restore()
        self.algo.close()


# ---------------------------------------------------------------------------------------------- TRL side
def make_trl_trainer(kind: str, args: argparse.Namespace, prompts: list[str], reward: Any, out_dir: str) -> Any:
    """TRL's ``GRPOTrainer`` / ``RLOOTrainer`` with the benchmark's settings (see the module docstring)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    n = args.prompts_per_step * args.group_size
    common = dict(
        output_dir=out_dir, per_device_train_batch_size=n, gradient_accumulation_steps=1,
        num_generations=args.group_size, max_completion_length=args.new_tokens, max_steps=args.steps,
        learning_rate=args.lr, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch", lr_scheduler_type="constant", warmup_steps=0,
        temperature=1.0, top_k=0, top_p=1.0, num_iterations=1, beta=KL_COEF[kind], seed=0,
        shuffle_dataset=False, disable_dropout=True, bf16=False, fp16=False, use_cpu=args.device == "cpu",
        report_to="none", logging_steps=1, save_strategy="no", disable_tqdm=True,
        generation_kwargs={"min_new_tokens": args.new_tokens}, model_init_kwargs={"dtype": torch.float32},
        dataloader_num_workers=0)
    ds = Dataset.from_list([{"prompt": p} for p in prompts])
    if kind == "grpo":
        cfg = GRPOConfig(**common, loss_type="grpo", scale_rewards="group", epsilon=0.2)
        return GRPOTrainer(model=args.model_dir, reward_funcs=reward, args=cfg, train_dataset=ds)
    cfg = RLOOConfig(**common, normalize_advantages=False)
    return RLOOTrainer(model=args.model_dir, reward_funcs=reward, args=cfg, train_dataset=ds)


def instrument_trl(trainer: Any, timer: PhaseTimer, tokens: list[int]) -> None:
    """Wrap the TRL trainer's methods with ``timer`` (see the module docstring); generated tokens go to ``tokens``."""
    generate = trainer._generate

    def counted_generate(*a: Any, **kw: Any) -> Any:
        out = generate(*a, **kw)
        tokens.append(sum(len(ids) for ids in out[1]))  # out[1]: completion ids per row (GRPO and RLOO)
        return out

    trainer._generate = counted_generate
    timer.wrap(trainer, "_generate", "generation")

    def logps_phase(model: Any, *a: Any, **kw: Any) -> str:
        if model is trainer.ref_model:
            return "reference forward"
        return "policy forward + loss" if torch.is_grad_enabled() else "policy logprobs (no grad)"

    timer.wrap(trainer, "_get_per_token_logps_and_entropies", logps_phase)
    timer.wrap(trainer, "compute_loss", "policy forward + loss")
    timer.wrap(trainer, "_clip_grad_norm", "optimizer")


def run_group(kind: str, args: argparse.Namespace, prompts: list[str]
              ) -> tuple[list[dict], dict[str, list[dict]], dict]:
    """Train TRL and each textgym variant ``kind`` for ``args.steps`` steps, interleaved step by step.

    At step ``k`` the order of the sides rotates (TRL first, then later), so a
    load change on a shared machine falls on all of them in turn.

    Returns:
        ``(TRL step records, {variant: textgym step records}, info)``.
    """
    from transformers import PrinterCallback, TrainerCallback

    trl_timer = PhaseTimer(lambda: sync(args.device))
    reward = timed_reward(lambda: Active.timer)
    sides = {v: TextgymSide(kind, args, prompts, reward, rescore=RESCORE[v]) for v in args.variants}
    order = list(sides.values())
    out_dir = tempfile.mkdtemp(prefix="textgym-bench-trl-")
    trainer = make_trl_trainer(kind, args, prompts, reward, out_dir)
    tokens: list[int] = []
    instrument_trl(trainer, trl_timer, tokens)
    trl_steps: list[dict[str, float]] = []
    info: dict[str, Any] = {}

    class Interleave(TrainerCallback):
        """Runs the textgym sides around TRL's step k (rotating order) and times TRL's step."""

        def on_train_begin(self, a: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
            trl_timer.wrap(optimizer, "step", "optimizer")
            info["trl_optimizer"] = type(getattr(optimizer, "optimizer", optimizer)).__name__

        def on_step_begin(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            k = state.global_step  # 0-based here
            rotated = order[k % len(order):] + order[: k % len(order)]
            pos = k % (len(order) + 1)  # how many textgym sides run before TRL this step
            self.after = rotated[pos:]
            for side in rotated[:pos]:
                side.step()
            self.before, self.n_tok = trl_timer.snapshot(), len(tokens)
            Active.timer = trl_timer
            sync(args.device)
            self.t0 = time.perf_counter()

        def on_step_end(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            sync(args.device)
            total = time.perf_counter() - self.t0
            Active.timer = None
            trl_steps.append({**diff(trl_timer.snapshot(), self.before), "step": total,
                              "tokens": float(sum(tokens[self.n_tok:]))})
            for side in self.after:
                side.step()
            times = ", ".join(f"textgym {v} {s.steps[-1]['step']:.2f} s" for v, s in sides.items())
            print(f"  {kind} step {state.global_step}: TRL {total:.2f} s, {times}", flush=True)

    trainer.add_callback(Interleave())
    trainer.remove_callback(PrinterCallback)  # the table replaces TRL's per-step log dicts
    info["textgym_optimizer"] = type(order[0].algo.optimizer).__name__
    info["trl_ref_model"] = trainer.ref_model is not None
    try:
        trainer.train()
    finally:
        trl_timer.restore()
        for side in order:
            side.close()
    steps = {v: list(s.steps) for v, s in sides.items()}
    del trainer, sides, order
    gc.collect()
    return trl_steps, steps, info


def summarize(steps: list[dict[str, float]], warmup: int) -> dict[str, float]:
    """Medians over the measured steps: seconds of the step and of each phase, generated tokens, tokens/s.

    Medians, not means: on a shared machine one step now and then takes twice
    as long (another job's burst), which would move a mean by 20 %.  ``other``
    is the median of each step's ``step - sum(phases)``.
    """
    measured = steps[warmup:] or steps
    out = {p: statistics.median(s.get(p, 0.0) for s in measured) for p in PHASES if p != "other"}
    out["step"] = statistics.median(s["step"] for s in measured)
    out["other"] = statistics.median(s["step"] - sum(s.get(p, 0.0) for p in PHASES if p != "other")
                                     for s in measured)
    out["tokens"] = statistics.median(s["tokens"] for s in measured)
    out["tokens_per_s"] = out["tokens"] / out["step"]
    out["n"] = len(measured)
    return out


STEP_COLUMNS = ["algorithm", "library", "step", "warm-up", "seconds", "tokens", *PHASES]


def add_steps(table: Table, kind: str, trl_version: str, trl_steps: list[dict], tg_steps: dict[str, list[dict]]
              ) -> None:
    """Append every step of every side (warm-up included, marked) to ``table`` (``results/trl_step-steps``)."""
    sides = [(f"TRL {trl_version}", trl_steps), *((VARIANTS[v], st) for v, st in tg_steps.items())]
    for name, steps in sides:
        for i, st in enumerate(steps):
            other = st["step"] - sum(st.get(p, 0.0) for p in PHASES if p != "other")
            table.add(kind.upper(), name, i + 1, i == 0, st["step"], st["tokens"],
                      *(st.get(p, 0.0) for p in PHASES if p != "other"), other)


VARIANTS = {"default": "textgym", "rescore": "textgym, rescore_policy=True",
            "no-rescore": "textgym, rescore_policy=False"}
RESCORE = {"default": None, "rescore": True, "no-rescore": False}


def prompt_length(model_dir: str, prompts: list[str]) -> int:
    """Tokens of the longest prompt (textgym's ``P``: it pads every prompt to ``P`` slots, TRL to the batch's longest)."""
    from textgym.models import load_tokenizer

    tok = load_tokenizer(model_dir)
    return max(len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="textgym model name or local folder")
    ap.add_argument("--algorithms", default="grpo,rloo,dpo", help="comma-separated: grpo, rloo, dpo")
    ap.add_argument("--steps", type=int, default=4, help="steps per side (the first is a warm-up)")
    ap.add_argument("--prompts-per-step", type=int, default=2)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=32, help="completion length (exact, no early stop)")
    ap.add_argument("--max-prompt-length", type=int, default=None,
                    help="textgym's P (default: the longest benchmark prompt, in tokens)")
    ap.add_argument("--prompt-words", type=int, default=20, help="words of each IMDB review used as the prompt")
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", default="default,rescore",
                    help="textgym configurations: default (rescore_policy=None), rescore and/or no-rescore "
                         "(reuse the generation-time logprobs: no no-grad policy pass)")
    ap.add_argument("--pairs-per-step", type=int, default=4, help="DPO: preference pairs per optimizer step")
    ap.add_argument("--max-length", type=int, default=192,
                    help="DPO: tokens per sequence (prompt + completion); only pairs that fit are used")
    ap.add_argument("--dpo-beta", type=float, default=0.1, help="DPO: beta")
    ap.add_argument("--out-dir", default=None, help="where to write the table (default benchmarks/results)")
    args = ap.parse_args(argv)
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is a warm-up)")
    kinds = [k.strip().lower() for k in args.algorithms.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KL_COEF and k != "dpo"]
    if bad or not kinds:
        ap.error(f"unknown algorithm(s) {bad or 'none'}; choose from grpo, rloo, dpo")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad or not args.variants:
        ap.error(f"--variants: choose one or more of {', '.join(VARIANTS)}, got {bad or 'none'}")
    quiet()
    trl = check_trl()
    set_threads(args.threads)
    args.model_dir = export_model(args.model)
    undo = patch_globals()
    try:
        if "dpo" in kinds:
            dpo_report(args, trl.__version__, Active)
        if any(k in KL_COEF for k in kinds):
            rl_report(args, [k for k in kinds if k in KL_COEF], trl)
    finally:
        for owner, attr, original in undo:
            setattr(owner, attr, original)


def rl_report(args: argparse.Namespace, kinds: list[str], trl: Any) -> None:
    """Run the GRPO / RLOO comparison and write ``results/trl_step.md`` (every step: ``trl_step-steps.csv``)."""
    prompts = imdb_prompts(args.steps * args.prompts_per_step, args.prompt_words)
    longest = prompt_length(args.model_dir, prompts)
    if args.max_prompt_length is None:
        args.max_prompt_length = longest
    n = args.prompts_per_step * args.group_size
    header = (f"### textgym vs TRL {trl.__version__}: one RL update step ({args.model}, fp32, {args.device})\n\n"
              f"{args.prompts_per_step} prompts x {args.group_size} completions x {args.new_tokens} tokens per step "
              f"({n * args.new_tokens} generated tokens), prompts of up to {longest} tokens (textgym P = "
              f"{args.max_prompt_length}), AdamW lr {args.lr:g}, {args.steps} steps per side interleaved, "
              f"first excluded\nmachine: {machine_info()}")
    print(header, flush=True)
    table = Table("trl_step", ["algorithm", "library", "s/step", "tokens/s", "speedup vs TRL", *PHASES],
                  {"tokens/s": 1})
    steps_table = Table("trl_step-steps", STEP_COLUMNS)
    notes = []
    for kind in kinds:
        trl_steps, tg_steps, info = run_group(kind, args, prompts)
        add_steps(steps_table, kind, trl.__version__, trl_steps, tg_steps)
        a = summarize(trl_steps, 1)
        table.add(kind.upper(), f"TRL {trl.__version__}", a["step"], a["tokens_per_s"], 1.0,
                  *(a[p] for p in PHASES))
        for variant, steps in tg_steps.items():
            b = summarize(steps, 1)
            pairs = [x["step"] / y["step"] for x, y in zip(trl_steps[1:], steps[1:])]
            mean_ratio = statistics.fmean(x["step"] for x in trl_steps[1:]) / statistics.fmean(
                y["step"] for y in steps[1:])
            table.add(kind.upper(), VARIANTS[variant], b["step"], b["tokens_per_s"], statistics.median(pairs),
                      *(b[p] for p in PHASES))
            notes.append(f"{kind.upper()}, {VARIANTS[variant]}: speedup per step "
                         f"{', '.join(f'{r:.2f}' for r in pairs)}; ratio of mean step times {mean_ratio:.2f}; "
                         f"tokens per step {b['tokens']:.0f} (TRL {a['tokens']:.0f})")
        notes.append(f"{kind.upper()}: {a['n']} measured steps per side; optimizers {info['trl_optimizer']} "
                     f"(TRL) / {info['textgym_optimizer']} (textgym); TRL reference model loaded: "
                     f"{info['trl_ref_model']}")
    steps_table.write(out_dir=args.out_dir)
    table.emit(header, out_dir=args.out_dir,
               notes="s/step and phase columns: medians over the measured steps, in seconds (phases are exclusive; "
                     "see the script's docstring). Speedup vs TRL: the median over steps k of TRL's step k time / "
                     "textgym's step k time (target >= 1.25). Every step: results/trl_step-steps.csv.\n\n"
                     + "\n".join(f"- {x}" for x in notes))


if __name__ == "__main__":
    main()
