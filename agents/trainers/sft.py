"""Supervised fine-tuning (SFT) of a causal LM on completions: the warm start before PPO.

Loss: the mean negative log-likelihood over *completion* tokens (prompt and
chat scaffolding masked with -100; the EOS ending each completion is a
target, whatever the pad token is)::

    L = (1 / N) * sum_{b, t : label[b, t+1] != -100} -log p(x[b, t+1] | x[b, <=t])

where ``N`` counts the target tokens of the whole *effective* batch (all
``grad_accum_steps`` micro-batches).  Each micro-batch's summed NLL is divided
by that ``N`` before its backward pass, so accumulating gives exactly the
loss and gradient of one big batch (a plain mean per micro-batch would
over-weight short micro-batches).

Example::

    from textgym.agents import SFTConfig, SFTTrainer
    trainer = SFTTrainer("smollm2-135m-instruct",
                         train_data="textgym/SelfInstruct-v0",      # task id: its "train" split
                         eval_data="textgym/SelfInstruct-v0",       # task id: its "validation" split
                         config=SFTConfig(num_epochs=1, batch_size=4, max_length=384))
    metrics = trainer.train()          # {"train_loss", "eval/loss", "eval/perplexity", ...}
    trainer.save("runs/sft")           # a HF model dir PPO can start from
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textgym.agents.common import distributed

from ._train import SupervisedTrainer, TrainConfig, atomic_save_dir
from .sft_data import (SFTExample, collate_sft, encode_chat, encode_conversation, encode_pair, load_rows,
                       pack_examples)

__all__ = ["SFTConfig", "SFTTrainer", "completion_nll"]


@dataclass
class SFTConfig(TrainConfig):
    """SFT settings (plus the optimisation settings of :class:`TrainConfig`).

    Attributes:
        max_length: tokens per example (prompt + completion); longer ones lose
            prompt tokens from the left, then completion tokens from the right.
        prompt_key, completion_key, messages_key: column names of the rows.
        chat_template: ``None``: chat rows (``messages_key``) use the
            tokenizer's chat template, pairs are used as they are; ``True``:
            pairs are also wrapped as a user turn + assistant turn (after
            ``system_prompt`` if given; the completion's leading whitespace is
            dropped); ``False``: chat rows are an error.
        system_prompt: system message when wrapping pairs in the chat template.
        add_eos: end each completion with the EOS token (a target).
        packing: concatenate whole examples into ``max_length`` blocks (less
            padding; examples stay invisible to each other).
        lora: train a LoRA adapter (Hu et al. 2021, via peft) instead of all weights.
        lora_r, lora_alpha, lora_dropout, lora_target_modules: the adapter's
            rank, scale numerator, dropout and target modules (``"all-linear"``
            or a list of module names).
        merge_lora: :meth:`SFTTrainer.save` writes the merged full model
            (loadable by ``textgym.models.load`` and PPO); ``False`` writes the
            peft adapter only.
    """

    learning_rate: float = 5e-5
    max_length: int = 512
    prompt_key: str = "prompt"
    completion_key: str = "completion"
    messages_key: str = "messages"
    chat_template: bool | None = None
    system_prompt: str | None = None
    add_eos: bool = True
    packing: bool = False
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: Any = "all-linear"
    merge_lora: bool = True

    def check(self) -> None:
        super().check()
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 (a context token and a target), got {self.max_length}")


def completion_nll(model: torch.nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, int]:
    """Summed next-token NLL of the labelled tokens of one batch.

    Args:
        model: a causal LM returning ``logits`` ``(B, L, V)``.
        batch: from :func:`textgym.agents.trainers.sft_data.collate_sft` (``labels``
            ``(B, L)`` int64 with -100 for ignored positions, unshifted).

    Returns:
        ``(nll_sum, n_targets)``: a 0-d float32 tensor (nats, differentiable)
        and the number of target tokens ``sum(labels[:, 1:] != -100)``.
        Packed batches are run without an attention mask (position ids give
        the block-diagonal mask).
    """
    device = next(model.parameters()).device
    kw = {"input_ids": batch["input_ids"].to(device), "position_ids": batch["position_ids"].to(device),
          "use_cache": False}
    if not batch.get("packed"):
        kw["attention_mask"] = batch["attention_mask"].to(device)
    logits = model(**kw).logits[:, :-1].float()
    labels = batch["labels"][:, 1:].to(device)
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                            ignore_index=-100, reduction="sum")
    return nll, int((labels != -100).sum())


class SFTTrainer(SupervisedTrainer):
    """Fine-tune a causal LM on completions.

    Args:
        model: a name/path for :func:`textgym.models.load` (``"tiny-llama"``,
            ``"smollm2-135m-instruct"``, a directory) or a causal LM object.
        tokenizer: required with a model object (default: loaded with the name).
        train_data: rows (list of dicts), a ``datasets.Dataset``, a JSONL path,
            or a task id / env (split ``"train"``; see
            :func:`textgym.agents.trainers.sft_data.task_rows`).
        eval_data: the same kinds (task ids: split ``"validation"``); optional.
        config: :class:`SFTConfig`.

    Attributes:
        model: the model being trained (a peft model when ``config.lora``).
        tokenizer: its tokenizer.
        stats: counts from tokenisation, per ``train`` / ``eval``:
            ``{split}_examples`` (kept), ``{split}_dropped_no_target`` (no
            completion token left), ``{split}_truncated``; ``blocks`` when packing.

    Raises:
        ValueError: rows that are neither pairs nor chats, chat rows without
            a chat template, or no usable example.
        ImportError: ``lora=True`` without peft installed.
    """

    #: the file beside the saved model that records the config, data counts and last steps
    meta_file = "textgym_sft.json"

    def __init__(self, model: Any, tokenizer: Any = None, *, train_data: Any, eval_data: Any = None,
                 config: SFTConfig | None = None):
        config = config or SFTConfig()
        model = self._prepare_model(model, tokenizer, config)
        super().__init__(model, config)
        self.train_examples = self._encode(load_rows(train_data, self.tokenizer, "train"), "train")
        if config.packing:
            rng = np.random.default_rng(config.seed)
            order = rng.permutation(len(self.train_examples))
            self.train_examples = pack_examples([self.train_examples[i] for i in order], config.max_length)
            self.stats["blocks"] = len(self.train_examples)
        self.eval_examples = (self._encode(load_rows(eval_data, self.tokenizer, "validation"), "eval")
                              if eval_data is not None else [])

    __init__.__doc__ = __doc__  # help(Class.__init__) shows the class's arguments

    # ------------------------------------------------------------------ data
    def _prepare_model(self, model: Any, tokenizer: Any, config: SFTConfig) -> Any:
        """Load ``model`` by name (with its tokenizer) if needed, set ``tokenizer``, ``pad_token_id`` and
        ``stats``, add the LoRA adapter if configured; returns the model to train.

        Raises:
            ValueError: a model object without a tokenizer, or a tokenizer with neither pad nor EOS token.
        """
        if isinstance(model, (str, os.PathLike)):
            from textgym.models import load

            model, loaded_tok = load(os.fspath(model), kind="causal", seed=config.seed)
            tokenizer = tokenizer or loaded_tok
        if tokenizer is None:
            raise ValueError(f"a model object needs its tokenizer: {type(self).__name__}(model, tokenizer, ...)")
        self.tokenizer = tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("the tokenizer has neither a pad nor an EOS token to pad with")
        self.pad_token_id = int(pad)
        self.stats: dict[str, int] = {}
        return self._add_lora(model, config) if config.lora else model

    @staticmethod
    def _add_lora(model: Any, config: SFTConfig) -> Any:
        try:
            import peft
        except ImportError as exc:  # pragma: no cover - peft is a dependency
            raise ImportError("lora=True needs peft: pip install peft") from exc
        lcfg = peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                               target_modules=config.lora_target_modules, task_type="CAUSAL_LM")
        return peft.get_peft_model(model, lcfg)

    def encode_row(self, row: Mapping[str, Any]) -> SFTExample:
        """Tokenise one row (pair or chat) into an :class:`SFTExample` (see :mod:`.sft_data`)."""
        cfg = self.config
        if "agent_mask" in row:  # a conversation env's observation: its own tokens, agent tokens as targets
            return encode_conversation(row, max_length=cfg.max_length)
        if cfg.messages_key in row and row[cfg.messages_key] is not None:
            if cfg.chat_template is False:
                raise ValueError(f"chat row ({cfg.messages_key!r}) but chat_template=False")
            return encode_chat(self.tokenizer, row[cfg.messages_key], max_length=cfg.max_length, add_eos=cfg.add_eos)
        if cfg.prompt_key not in row or cfg.completion_key not in row:
            raise ValueError(f"an SFT row needs {cfg.prompt_key!r} + {cfg.completion_key!r} or "
                             f"{cfg.messages_key!r}; got keys {sorted(row)}")
        prompt, completion = str(row[cfg.prompt_key] or ""), str(row[cfg.completion_key] or "")
        if cfg.chat_template and not row.get("prompt_is_formatted"):
            messages = ([{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []) + [
                {"role": "user", "content": prompt}, {"role": "assistant", "content": completion.lstrip()}]
            return encode_chat(self.tokenizer, messages, max_length=cfg.max_length, add_eos=cfg.add_eos)
        return encode_pair(self.tokenizer, prompt, completion, max_length=cfg.max_length, add_eos=cfg.add_eos,
                           prompt_special_tokens=not row.get("prompt_is_formatted", False))

    def _encode(self, rows: Sequence[Mapping[str, Any]], what: str) -> list[SFTExample]:
        examples = [self.encode_row(r) for r in rows]
        kept = [e for e in examples if e.num_targets > 0]
        self.stats[f"{what}_examples"] = len(kept)
        self.stats[f"{what}_dropped_no_target"] = len(examples) - len(kept)
        self.stats[f"{what}_truncated"] = sum(e.truncated for e in examples)
        if not kept and rows:
            raise ValueError(f"no {what} example has a completion token left after max_length={self.config.max_length}")
        return kept

    def collate(self, examples: Sequence[SFTExample]) -> dict[str, Any]:
        """:func:`collate_sft` with this trainer's pad id (packed if configured)."""
        return collate_sft(examples, self.pad_token_id, packed=self.config.packing)

    # ------------------------------------------------------------------ loop hooks
    def _num_train_items(self) -> int:
        return len(self.train_examples)

    def _micro_batch(self, indices: np.ndarray) -> dict[str, Any]:
        return self.collate([self.train_examples[i] for i in indices])

    def compute_loss(self, micro_batches: Sequence[Mapping[str, Any]], backward: bool = False) -> float:
        """Token-mean completion NLL over all ``micro_batches`` (one effective batch).

        Each micro-batch's summed NLL is divided by the target count ``N`` of
        the whole group (so the result equals the full-batch token mean) and,
        if ``backward``, back-propagated at once (only one graph alive).

        Returns:
            the loss in nats per target token (float).

        Raises:
            ValueError: the group has no target token.
        """
        total = sum(int((mb["labels"][:, 1:] != -100).sum()) for mb in micro_batches)
        if total == 0:
            raise ValueError("an effective batch without completion tokens (all labels are -100)")
        loss = 0.0
        for mb in micro_batches:
            nll, _ = completion_nll(self.model, mb)
            part = nll / total
            if backward:
                part.backward()
            loss += float(part.detach())
        return loss

    def _weight(self, micro_batches: Sequence[Any]) -> float:
        return float(sum(int((mb["labels"][:, 1:] != -100).sum()) for mb in micro_batches))

    def _accumulate(self, micro_batches: Sequence[Any]) -> dict[str, float]:
        tokens = sum(int((mb["labels"][:, 1:] != -100).sum()) for mb in micro_batches)
        return {"loss": self.compute_loss(micro_batches, backward=True), "tokens": tokens}

    def evaluate(self) -> dict[str, float]:
        """Token-mean NLL (``loss``, nats/token) and ``perplexity = exp(loss)`` on the eval examples.

        Raises:
            FloatingPointError: the loss is NaN or infinite.
        """
        if not self.eval_examples:
            return {}
        was_training = self.model.training
        self.model.eval()
        nll, n = 0.0, 0
        with torch.no_grad():
            bs = self.config.eval_batch_size
            for i in range(0, len(self.eval_examples), bs):
                batch = collate_sft(self.eval_examples[i : i + bs], self.pad_token_id)
                s, k = completion_nll(self.model, batch)
                nll, n = nll + float(s), n + k
        self.model.train(was_training)
        loss = nll / n
        if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite evaluation loss {loss} over {n} completion tokens")
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}

    # ------------------------------------------------------------------ output
    def merged_model(self) -> Any:
        """The plain transformers model (a merged copy when training LoRA; else the model itself)."""
        if self.config.lora:
            return copy.deepcopy(self.model).merge_and_unload()
        return self.model

    def save(self, path: str | os.PathLike) -> Path:
        """Write a Hugging Face model directory (model, tokenizer, ``textgym_sft.json``) atomically.

        With LoRA and ``merge_lora`` the adapter is merged into a copy of the
        base weights first, so the directory loads with
        ``textgym.models.load(path)`` / ``AutoModelForCausalLM``; with
        ``merge_lora=False`` it holds the peft adapter (``PeftModel.from_pretrained``).

        Returns:
            the directory path.
        """
        if not distributed.is_main():  # data-parallel: rank 0 writes
            return Path(path)
        model = self.merged_model() if (not self.config.lora or self.config.merge_lora) else self.model
        info = {"config": self.config.to_dict(), "stats": self.stats, "steps": self.global_step,
                "history_tail": self.history[-5:]}

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            (tmp / self.meta_file).write_text(json.dumps(info, indent=2, default=str))

        return atomic_save_dir(path, write)
