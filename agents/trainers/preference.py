"""Offline preference optimization of a causal LM: DPO, IPO and KTO (losses in :mod:`textgym.agents.common.preference_losses`).

Data: rows ``{"prompt", "chosen", "rejected"}`` (DPO, IPO, KTO) or, for KTO,
unpaired rows ``{"prompt", "completion", "label"}`` (``label`` true = desirable).
For KTO a pair gives one desirable and one undesirable example.  Prompts and
completions are tokenised as the SFT trainer does (:func:`.sft_data.encode_pair`,
or the chat template with ``chat_template=True``): prompt tokens are masked, a
completion's log-probability is the sum over its tokens (padding excluded).

The reference is the model at the start: with LoRA the adapter-disabled base
model (no second copy), else a frozen copy.  Its sequence log-probabilities
never change, so each example is scored by it once, the first time a step or
an evaluation uses it, and the value is kept.

KTO's reference point ``z0`` (an estimate of ``KL(pi || ref)``) is, as in the
paper, measured on *mismatched* pairs: example ``i``'s prompt with the
completion of example ``i + 1`` (a fixed pairing, reference log-probs
precomputed); per effective batch ``z0 = max(0, mean(log pi - log ref))`` over
those mismatched pairs, without gradient.  With several processes each rank
uses its own batch's ``z0``.

Example::

    from textgym.agents import PreferenceConfig, PreferenceTrainer
    rows = [{"prompt": "Q: 2+2?\\nA:", "chosen": " 4", "rejected": " 5"}, ...]
    trainer = PreferenceTrainer("tiny-llama", train_data=rows,
                                config=PreferenceConfig(loss_type="dpo", beta=0.1, max_steps=50))
    trainer.train()            # {"train_loss", "eval/accuracy", ...}
    trainer.save("runs/dpo")   # a HF model directory PPO or `textgym eval` can load
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._train import SupervisedTrainer
from textgym.agents.common.preference_losses import PREFERENCE_LOSSES, dpo_loss, kto_loss, sequence_logprobs
from .sft import SFTConfig, SFTTrainer
from .sft_data import SFTExample, collate_sft, load_rows

__all__ = ["PreferenceConfig", "PreferenceTrainer", "META_FILE"]

META_FILE = "textgym_preference.json"


@dataclass
class PreferenceConfig(SFTConfig):
    """Preference-optimization settings (plus :class:`.sft.SFTConfig`'s tokenisation and LoRA settings and
    :class:`._train.TrainConfig`'s optimisation settings; ``batch_size`` counts pairs, or examples for KTO).

    Attributes:
        loss_type: ``"dpo"``, ``"ipo"`` or ``"kto"``.
        beta: inverse temperature of the implicit reward ``beta * (log pi - log ref)``.
        label_smoothing: DPO's assumed share of flipped labels, in ``[0, 0.5)``.
        desirable_weight, undesirable_weight: KTO's ``w_d`` and ``w_u``.
        chosen_key, rejected_key: column names of a pair; ``completion_key`` (from SFTConfig) and
            ``label_key`` those of an unpaired KTO row.
    """

    learning_rate: float = 5e-6
    loss_type: str = "dpo"
    beta: float = 0.1
    label_smoothing: float = 0.0
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    chosen_key: str = "chosen"
    rejected_key: str = "rejected"
    label_key: str = "label"
    add_eos: bool = True

    #: fields a per-model starting preset of ``textgym compare`` must leave alone (``beta`` is DPO's temperature)
    preset_exempt = ("beta",)

    def check(self) -> None:
        super().check()
        if self.loss_type not in PREFERENCE_LOSSES:
            raise ValueError(f"loss_type must be one of {', '.join(PREFERENCE_LOSSES)}, got {self.loss_type!r}")
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.label_smoothing and self.loss_type != "dpo":
            raise ValueError("label_smoothing applies to loss_type='dpo' only")
        if self.desirable_weight <= 0 or self.undesirable_weight <= 0:
            raise ValueError("desirable_weight and undesirable_weight must be > 0")
        if self.packing:
            raise ValueError("packing is not supported by preference optimization (each completion is scored alone)")


class PreferenceTrainer(SFTTrainer):
    """Train a causal LM on preferences with DPO, IPO or KTO.

    Args:
        model: a name/path for :func:`textgym.models.load` or a causal LM object (then ``tokenizer`` too).
        tokenizer: required with a model object.
        train_data, eval_data: rows, a ``datasets.Dataset`` or a JSONL path (see the module docstring).
        config: :class:`PreferenceConfig`.

    Attributes:
        stats: ``{split}_pairs`` (or ``{split}_examples`` for KTO) kept, ``{split}_dropped_identical``
            (pairs whose chosen and rejected completions are the same text: no preference),
            ``{split}_dropped_no_target`` (a completion with no token left after ``max_length``).

    Raises:
        ValueError: rows without the needed columns, or no usable pair.
    """

    #: :meth:`save` (SFTTrainer's: merged LoRA unless ``merge_lora=False``, tokenizer, atomic) writes this record
    meta_file = META_FILE

    def __init__(self, model: Any, tokenizer: Any = None, *, train_data: Any, eval_data: Any = None,
                 config: PreferenceConfig | None = None):
        config = config or PreferenceConfig()
        config.check()
        model = self._prepare_model(model, tokenizer, config)
        SupervisedTrainer.__init__(self, model, config)  # not SFTTrainer's: the data are pairs, not examples
        self.train_items = self._encode_items(load_rows(train_data, self.tokenizer, "train"), "train")
        self.eval_items = (self._encode_items(load_rows(eval_data, self.tokenizer, "validation"), "eval")
                           if eval_data is not None else [])
        # the reference: with LoRA the adapter-disabled base model, else a frozen copy of the start
        self._ref_model = None if config.lora else copy.deepcopy(self.model).eval().requires_grad_(False)

    __init__.__doc__ = __doc__

    # ------------------------------------------------------------------ data
    def _example(self, prompt: Any, completion: Any, row: Mapping[str, Any]) -> SFTExample:
        cfg = self.config
        return self.encode_row({cfg.prompt_key: prompt, cfg.completion_key: completion,
                                **({"prompt_is_formatted": True} if row.get("prompt_is_formatted") else {})})

    def _encode_items(self, rows: Sequence[Mapping[str, Any]], what: str) -> list[dict[str, Any]]:
        """Pairs ``{"chosen", "rejected"}`` (DPO / IPO) or examples ``{"example", "desirable"}`` (KTO)."""
        cfg = self.config
        items: list[dict[str, Any]] = []
        identical = no_target = 0
        for i, row in enumerate(rows):
            if cfg.chosen_key in row and cfg.rejected_key in row:
                chosen, rejected = str(row[cfg.chosen_key] or ""), str(row[cfg.rejected_key] or "")
                if chosen == rejected:
                    identical += 1
                    continue
                pair = [self._example(row.get(cfg.prompt_key, ""), c, row) for c in (chosen, rejected)]
                if min(e.num_targets for e in pair) == 0:
                    no_target += 1
                    continue
                if cfg.loss_type == "kto":
                    items += [{"example": pair[0], "desirable": True}, {"example": pair[1], "desirable": False}]
                else:
                    items.append({"chosen": pair[0], "rejected": pair[1]})
            elif cfg.loss_type == "kto" and cfg.completion_key in row and cfg.label_key in row:
                example = self._example(row.get(cfg.prompt_key, ""), row[cfg.completion_key], row)
                if example.num_targets == 0:
                    no_target += 1
                    continue
                items.append({"example": example, "desirable": bool(row[cfg.label_key])})
            else:
                need = f"{cfg.chosen_key!r} + {cfg.rejected_key!r}" + (
                    f" (or {cfg.completion_key!r} + {cfg.label_key!r} for KTO)" if cfg.loss_type == "kto" else "")
                raise ValueError(f"{what} row {i}: a preference row needs {cfg.prompt_key!r} and {need}; "
                                 f"got keys {sorted(row)}")
        self.stats[f"{what}_{'examples' if cfg.loss_type == 'kto' else 'pairs'}"] = len(items)
        self.stats[f"{what}_dropped_identical"] = identical
        self.stats[f"{what}_dropped_no_target"] = no_target
        if not items and rows:
            raise ValueError(f"no usable {what} preference left ({identical} identical pairs, "
                             f"{no_target} without a completion token after max_length={cfg.max_length})")
        if cfg.loss_type == "kto" and items:
            for j, item in enumerate(items):  # mismatched pair for z0: this prompt, the next item's completion
                item["mismatched"] = _splice(item["example"], items[(j + 1) % len(items)]["example"], cfg.max_length)
        return items

    def _examples_of(self, item: Mapping[str, Any]) -> list[SFTExample]:
        if "chosen" in item:
            return [item["chosen"], item["rejected"]]
        return [item["example"], item["mismatched"]]

    # ------------------------------------------------------------------ reference
    def _ensure_reference(self, items: Sequence[dict[str, Any]]) -> None:
        """Fill ``item["ref"]`` (``(2,)`` float32: the reference log-probs of the item's two sequences) for the
        items that lack it; each item is scored once, the first time a step or an evaluation uses it."""
        todo = [it for it in items if "ref" not in it]
        if not todo:
            return
        if self.config.lora:
            ref, context = self.model, self.model.disable_adapter()
        else:
            if self._ref_model is None:
                raise RuntimeError("the frozen reference copy is missing")
            ref, context = self._ref_model, contextlib.nullcontext()
        was_training = self.model.training
        self.model.eval()  # the reference is read without dropout
        examples = [e for it in todo for e in self._examples_of(it)]
        out = torch.empty(len(examples))
        with torch.no_grad(), context:
            bs = self.config.eval_batch_size
            for i in range(0, len(examples), bs):
                out[i : i + bs] = self._logps(ref, examples[i : i + bs]).cpu()
        self.model.train(was_training)
        for j, it in enumerate(todo):
            it["ref"] = out[2 * j : 2 * j + 2]

    def _logps(self, model: Any, examples: Sequence[SFTExample]) -> torch.Tensor:
        batch = collate_sft(examples, self.pad_token_id)
        kw = {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask", "position_ids")}
        logits = model(**kw, use_cache=False).logits                 # (B, L, V)
        return sequence_logprobs(logits, batch["labels"].to(self.device))  # (B,)

    # ------------------------------------------------------------------ loop hooks
    def _num_train_items(self) -> int:
        return len(self.train_items)

    def _micro_batch(self, indices: np.ndarray) -> list[dict[str, Any]]:
        return [self.train_items[i] for i in indices]

    def _weight(self, micro_batches: Sequence[Any]) -> float:
        return float(sum(len(mb) for mb in micro_batches))

    def _losses(self, items: Sequence[Mapping[str, Any]], z0: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        """Per-item losses ``(n,)`` and summed metrics for one micro-batch."""
        cfg = self.config
        ref = torch.stack([it["ref"] for it in items]).to(self.device)    # (n, 2)
        n = len(items)
        if cfg.loss_type == "kto":
            pi = self._logps(self.model, [it["example"] for it in items])  # (n,)
            desirable = torch.tensor([it["desirable"] for it in items], device=self.device)
            losses, rewards = kto_loss(pi, ref[:, 0], desirable, z0, beta=cfg.beta,
                                       desirable_weight=cfg.desirable_weight,
                                       undesirable_weight=cfg.undesirable_weight)
            sums = {"rewards/desirable": float(rewards[desirable].sum()), "n_desirable": float(desirable.sum()),
                    "rewards/undesirable": float(rewards[~desirable].sum()), "n_undesirable": float((~desirable).sum())}
            return losses, sums
        pi = self._logps(self.model, [it["chosen"] for it in items] + [it["rejected"] for it in items])  # (2n,)
        losses, rc, rr = dpo_loss(pi[:n], pi[n:], ref[:, 0], ref[:, 1], beta=cfg.beta, loss_type=cfg.loss_type,
                                  label_smoothing=cfg.label_smoothing)
        sums = {"rewards/chosen": float(rc.sum()), "rewards/rejected": float(rr.sum()),
                "rewards/accuracy": float((rc > rr).float().sum()), "rewards/margin": float((rc - rr).sum())}
        return losses, sums

    def _kl_ref_point(self, items: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """KTO's ``z0``: ``max(0, mean(log pi - log ref))`` on the items' mismatched pairs, no gradient."""
        with torch.no_grad():
            pi = self._logps(self.model, [it["mismatched"] for it in items])
        ref = torch.stack([it["ref"][1] for it in items]).to(self.device)
        return (pi - ref).mean().clamp(min=0.0)

    def _accumulate(self, micro_batches: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, float]:
        items = [it for mb in micro_batches for it in mb]
        total = len(items)
        self._ensure_reference(items)
        z0 = self._kl_ref_point(items) if self.config.loss_type == "kto" else None
        loss, sums = 0.0, {}
        for mb in micro_batches:
            losses, part = self._losses(mb, z0)
            (losses.sum() / total).backward()
            loss += float(losses.detach().sum()) / total
            for k, v in part.items():
                sums[k] = sums.get(k, 0.0) + v
        out = {"loss": loss, **_means(sums, total)}
        if z0 is not None:
            out["kl_ref_point"] = float(z0)
        return out

    def evaluate(self) -> dict[str, float]:
        """Mean loss and the implicit-reward statistics on the eval items (``accuracy``: chosen rewarded
        above rejected; KTO: ``z0`` from the eval set's mismatched pairs).

        Raises:
            FloatingPointError: a non-finite loss.
        """
        if not self.eval_items:
            return {}
        was_training = self.model.training
        self.model.eval()
        bs = self.config.eval_batch_size
        self._ensure_reference(self.eval_items)
        with torch.no_grad():
            z0 = self._kl_ref_point(self.eval_items) if self.config.loss_type == "kto" else None
            loss, sums = 0.0, {}
            for i in range(0, len(self.eval_items), bs):
                losses, part = self._losses(self.eval_items[i : i + bs], z0)
                loss += float(losses.sum())
                for k, v in part.items():
                    sums[k] = sums.get(k, 0.0) + v
        self.model.train(was_training)
        n = len(self.eval_items)
        if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite evaluation loss {loss} over {n} items")
        out = {"loss": loss / n, **{k.split("/", 1)[-1]: v for k, v in _means(sums, n).items()}}
        if z0 is not None:
            out["kl_ref_point"] = float(z0)
        return out


def _means(sums: Mapping[str, float], total: int) -> dict[str, float]:
    """Per-item means of summed metrics; KTO's desirable / undesirable rewards over their own counts."""
    out = {}
    for k, v in sums.items():
        if k.startswith("n_"):
            continue
        if k in ("rewards/desirable", "rewards/undesirable"):
            count = sums["n_" + k.split("/")[1]]
            if count:
                out[k] = v / count
        else:
            out[k] = v / total
    return out


def _splice(prompt_of: SFTExample, completion_of: SFTExample, max_length: int) -> SFTExample:
    """``prompt_of``'s prompt tokens followed by ``completion_of``'s completion tokens (left-cut to fit)."""
    p = [t for t, m in zip(prompt_of.input_ids, prompt_of.train_mask) if not m]
    c = [t for t, m in zip(completion_of.input_ids, completion_of.train_mask) if m]
    ids, mask = (p + c)[-max_length:], ([False] * len(p) + [True] * len(c))[-max_length:]
    return SFTExample(ids, mask)
