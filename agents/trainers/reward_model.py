"""Reward-model training on preference pairs with the Bradley-Terry loss.

A reward model ``r(x)`` is a sequence classifier with one output.  For a
prompt ``p`` and two completions, ``chosen`` preferred to ``rejected``, the
Bradley-Terry model (Bradley & Terry 1952; used for RLHF by Ouyang et al.
2022) says ``P(chosen > rejected) = sigmoid(r_c - r_r)`` with
``r_c = r(p + chosen)``, ``r_r = r(p + rejected)``.  The per-pair loss is::

    loss = -log sigmoid(r_c - r_r - m) + c * (r_c + r_r) ** 2
         = softplus(-(r_c - r_r - m)) + c * (r_c + r_r) ** 2

with an optional margin ``m`` (a constant, or a per-pair column) and an
optional reward-centering term of coefficient ``c`` (Eisenstein et al. 2023,
"Helping or Herding?": it pins the otherwise free offset of the scores near
0).  The batch loss is the mean over the pairs of the effective batch.

Scores are read exactly as :class:`textgym.rewards.RewardModelReward` reads
them, so a saved model scores the same through the reward registry:

* text = ``prompt + completion`` (plus the EOS token text if ``append_eos``),
  truncated to ``max_length`` tokens from the ``truncation`` side (default
  ``"left"``: keep the end, where the completion is);
* decoder heads (a ``score`` layer: Llama, GPT-2, SmolLM2...): the hidden
  state at the last *real* token, located from the attention mask (for any
  padding side, also when pad == EOS and EOS occurs inside the text);
* encoders (BERT, MiniLM): the model's own pooled [CLS] output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textgym.agents.common import distributed

from ._train import SupervisedTrainer, TrainConfig, atomic_save_dir

__all__ = ["RewardModelConfig", "RewardModelTrainer", "bradley_terry_loss", "last_token_index", "sequence_scores",
           "load_reward_function"]

META_FILE = "textgym_reward_model.json"


@dataclass
class RewardModelConfig(TrainConfig):
    """Reward-model settings (plus :class:`TrainConfig`; ``batch_size`` counts pairs).

    Attributes:
        max_length: tokens per ``prompt + completion`` (capped at the model's
            ``max_position_embeddings``).
        truncation: ``"left"`` (keep the end) or ``"right"`` (keep the start).
        append_eos: append the tokenizer's EOS token text to every input.
        margin: constant margin ``m`` in ``-log sigmoid(r_c - r_r - m)``.
        margin_key: column with a per-pair margin (added to ``margin``).
        center_coef: coefficient ``c`` of the centering term ``c * (r_c + r_r)^2``.
        prompt_key, chosen_key, rejected_key: column names.
    """

    learning_rate: float = 2e-5
    max_length: int = 512
    truncation: str = "left"
    append_eos: bool = False
    margin: float = 0.0
    margin_key: str | None = None
    center_coef: float = 0.0
    prompt_key: str = "prompt"
    chosen_key: str = "chosen"
    rejected_key: str = "rejected"

    def check(self) -> None:
        super().check()
        if self.truncation not in ("left", "right"):
            raise ValueError(f"truncation must be 'left' or 'right', got {self.truncation!r}")
        if self.center_coef < 0:
            raise ValueError(f"center_coef must be >= 0, got {self.center_coef}")


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float = 0.0,
                       center_coef: float = 0.0) -> torch.Tensor:
    """Per-pair Bradley-Terry loss ``softplus(-(r_c - r_r - m)) + c * (r_c + r_r)^2``.

    Args:
        r_chosen, r_rejected: ``(B,)`` float scores.
        margin: scalar or ``(B,)`` margin ``m``.
        center_coef: ``c`` >= 0.

    Returns:
        ``(B,)`` float32 losses (nats); ``softplus`` keeps large score gaps finite.
    """
    diff = r_chosen.float() - r_rejected.float() - torch.as_tensor(margin, dtype=torch.float32, device=r_chosen.device)
    loss = torch.nn.functional.softplus(-diff)
    if center_coef:
        loss = loss + center_coef * (r_chosen.float() + r_rejected.float()) ** 2
    return loss


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, from the attention mask alone.

    Args:
        attention_mask: ``(B, L)`` 0/1 (any padding side).

    Returns:
        ``(B,)`` int64: the largest ``t`` with ``attention_mask[b, t] == 1`` (0 for an all-zero row).
    """
    length = attention_mask.shape[-1]
    positions = torch.arange(length, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), positions, torch.zeros_like(positions)).max(dim=-1).values


def _decoder_parts(model: Any) -> tuple[Any, Any] | None:
    head = getattr(model, "score", None)
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if isinstance(head, torch.nn.Module) and isinstance(base, torch.nn.Module) and base is not model:
        return base, head
    return None


def sequence_scores(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scalar score of each sequence: ``(B, L)`` ids + mask -> ``(B,)`` float32.

    Decoder heads: ``score(hidden[b, last_token_index(mask)[b]])`` with
    position ids ``cumsum(mask) - 1``, so left and right padding give the same
    score.  Other models: ``model(...).logits[:, 0]`` (BERT: pooled [CLS]).
    """
    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    parts = _decoder_parts(model)
    if parts is None:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()
    base, head = parts
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    hidden = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).last_hidden_state
    last = last_token_index(attention_mask)
    return head(hidden[torch.arange(hidden.shape[0], device=device), last]).float()[:, 0]


def _pad_right(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


class RewardModelTrainer(SupervisedTrainer):
    """Train a scalar reward model on ``(prompt, chosen, rejected)`` pairs.

    Args:
        model: ``"all-minilm-l6-v2"``, a name/path for
            :func:`textgym.models.load` (re-headed to one output), or a
            sequence-classification model object with ``num_labels == 1``.
        tokenizer: required with a model object.
        train_data: rows, a ``datasets.Dataset``, a JSONL path, or a textgym
            data set name (``"hh-rlhf-harmless"``: its ``"train"`` split).
        eval_data: the same kinds (names: the ``"validation"`` split).
        config: :class:`RewardModelConfig`.

    Attributes:
        stats: ``train_pairs`` / ``eval_pairs`` kept, ``*_dropped_identical``
            (chosen and rejected identical after truncation: no signal),
            ``*_at_max_length`` (pairs with a side at ``max_length`` tokens: truncated).

    Raises:
        ValueError: a model with more than one output, rows without the
            pair columns, or no usable pair.
    """

    def __init__(self, model: Any, tokenizer: Any = None, *, train_data: Any, eval_data: Any = None,
                 config: RewardModelConfig | None = None):
        config = config or RewardModelConfig()
        if isinstance(model, (str, os.PathLike)):
            from .backbones import load_classifier_backbone

            model, loaded = load_classifier_backbone(os.fspath(model), 1, seed=config.seed, id2label={0: "reward"})
            tokenizer = tokenizer or loaded
        if tokenizer is None:
            raise ValueError("a model object needs its tokenizer: RewardModelTrainer(model, tokenizer, ...)")
        if int(model.config.num_labels) != 1:
            raise ValueError(f"a reward model needs num_labels=1, got {model.config.num_labels}; "
                             "use textgym.agents.trainers.backbones.rehead(model, 1)")
        super().__init__(model, config)
        self.tokenizer = tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_token_id = int(pad if pad is not None else 0)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.pad_token_id
        limit = getattr(model.config, "max_position_embeddings", None)
        self.max_length = min(config.max_length, limit) if isinstance(limit, int) and limit > 0 else config.max_length
        self.stats: dict[str, int] = {}
        self.train_pairs = self.encode_pairs(self._rows(train_data, "train"), "train")
        self.eval_pairs = self.encode_pairs(self._rows(eval_data, "validation"), "eval") if eval_data is not None else []
        if not self.train_pairs:
            raise ValueError("no training pair left (all identical after truncation?)")

    __init__.__doc__ = __doc__  # help(Class.__init__) shows the class's arguments

    # ------------------------------------------------------------------ data
    @staticmethod
    def _rows(source: Any, split: str) -> list[dict[str, Any]]:
        if isinstance(source, (list, tuple)):
            return [dict(r) for r in source]
        if hasattr(source, "to_list"):
            return source.to_list()
        if isinstance(source, (str, os.PathLike)):
            from textgym.envs.datasets import load, read_jsonl

            if Path(source).expanduser().is_file():
                return read_jsonl(source)
            return load(str(source), split).to_list()
        raise TypeError(f"unsupported preference data {type(source).__name__}: rows, a Dataset, a path or a name")

    def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text as :class:`~textgym.rewards.RewardModelReward` makes them (truncated)."""
        from textgym.rewards import clean_text

        cfg, tok = self.config, self.tokenizer
        eos = tok.eos_token if cfg.append_eos and tok.eos_token else ""
        max_chars = self.max_length * 32  # bounds tokenizer time on huge inputs, as the reward does
        texts = [clean_text(t) + eos for t in texts]
        texts = [t[-max_chars:] if cfg.truncation == "left" else t[:max_chars] for t in texts]
        old = tok.truncation_side
        tok.truncation_side = cfg.truncation
        try:
            ids = tok(texts, padding=False, truncation=True, max_length=self.max_length)["input_ids"]
        finally:
            tok.truncation_side = old
        fallback = next((getattr(tok, a) for a in ("bos_token_id", "cls_token_id", "eos_token_id", "unk_token_id",
                                                   "pad_token_id") if getattr(tok, a, None) is not None), 0)
        return [list(x) or [int(fallback)] for x in ids]

    def encode_pairs(self, rows: Sequence[Mapping[str, Any]], what: str = "train") -> list[tuple[list[int], list[int], float]]:
        """``(chosen_ids, rejected_ids, margin)`` per usable pair; identical pairs are dropped and counted."""
        cfg = self.config
        for key in (cfg.prompt_key, cfg.chosen_key, cfg.rejected_key):
            if rows and key not in rows[0]:
                raise ValueError(f"preference rows need {key!r}; got keys {sorted(rows[0])}")
        prompts = [str(r[cfg.prompt_key] or "") for r in rows]
        chosen = self.encode_texts([p + str(r[cfg.chosen_key] or "") for p, r in zip(prompts, rows)])
        rejected = self.encode_texts([p + str(r[cfg.rejected_key] or "") for p, r in zip(prompts, rows)])
        out, dropped = [], 0
        for i, (c, r) in enumerate(zip(chosen, rejected)):
            if c == r:
                dropped += 1
                continue
            m = cfg.margin + (float(rows[i][cfg.margin_key]) if cfg.margin_key else 0.0)
            out.append((c, r, m))
        self.stats[f"{what}_pairs"] = len(out)
        self.stats[f"{what}_dropped_identical"] = dropped
        self.stats[f"{what}_at_max_length"] = sum(len(c) >= self.max_length or len(r) >= self.max_length
                                                  for c, r in zip(chosen, rejected))  # (probably) truncated
        return out

    # ------------------------------------------------------------------ loss
    def pair_scores(self, pairs: Sequence[tuple[list[int], list[int], float]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(r_chosen, r_rejected)``, each ``(B,)`` float32, from one forward pass over ``2B`` rows."""
        ids, mask = _pad_right([p[0] for p in pairs] + [p[1] for p in pairs], self.pad_token_id)
        scores = sequence_scores(self.model, ids, mask)
        return scores[: len(pairs)], scores[len(pairs) :]

    def _num_train_items(self) -> int:
        return len(self.train_pairs)

    def _micro_batch(self, indices: np.ndarray) -> list[tuple[list[int], list[int], float]]:
        return [self.train_pairs[i] for i in indices]

    def _accumulate(self, micro_batches: Sequence[Any]) -> dict[str, float]:
        n = sum(len(mb) for mb in micro_batches)
        loss, correct = 0.0, 0.0
        for mb in micro_batches:
            rc, rr = self.pair_scores(mb)
            margin = torch.tensor([p[2] for p in mb], device=rc.device)
            part = bradley_terry_loss(rc, rr, margin, self.config.center_coef).sum() / n
            part.backward()
            loss += float(part.detach())
            correct += float((rc > rr).float().sum() + 0.5 * (rc == rr).float().sum())
        return {"loss": loss, "accuracy": correct / n}

    def evaluate(self, pairs: Sequence[tuple[list[int], list[int], float]] | None = None) -> dict[str, float]:
        """Held-out ``loss``, pairwise ``accuracy`` (ties count 1/2), mean ``margin`` (r_c - r_r), mean ``score``."""
        pairs = self.eval_pairs if pairs is None else pairs
        if not pairs:
            return {}
        was_training = self.model.training
        self.model.eval()
        rc_all, rr_all, m_all = [], [], []
        with torch.no_grad():
            for i in range(0, len(pairs), self.config.eval_batch_size):
                chunk = pairs[i : i + self.config.eval_batch_size]
                rc, rr = self.pair_scores(chunk)
                rc_all.append(rc.cpu())
                rr_all.append(rr.cpu())
                m_all += [p[2] for p in chunk]
        self.model.train(was_training)
        rc, rr = torch.cat(rc_all), torch.cat(rr_all)
        loss = bradley_terry_loss(rc, rr, torch.tensor(m_all), self.config.center_coef).mean()
        acc = (rc > rr).float().mean() + 0.5 * (rc == rr).float().mean()
        return {"loss": float(loss), "accuracy": float(acc), "margin": float((rc - rr).mean()),
                "score": float(torch.cat([rc, rr]).mean())}

    # ------------------------------------------------------------------ output
    def reward_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make :class:`~textgym.rewards.RewardModelReward` read inputs as in training."""
        cfg = self.config
        return {"text": "prompt+completion", "append_eos": cfg.append_eos, "truncation": cfg.truncation,
                "max_length": self.max_length}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the reward model as a Hugging Face directory, atomically.

        Contents: the ``num_labels=1`` model and its tokenizer (so
        ``RewardModelReward(path)`` and ``textgym.reward_api.make("reward-model",
        model=path)`` load it), and ``textgym_reward_model.json`` with
        :meth:`reward_kwargs`, the config, data stats and the last evaluation.
        The reward's defaults (``"prompt+completion"``, no EOS, left truncation)
        equal this trainer's; its ``max_length`` default (1024, capped at the
        model's positions) can differ: :func:`load_reward_function` passes the
        trained one.
        """
        if not distributed.is_main():  # data-parallel: rank 0 writes
            return Path(path)
        meta = {"reward_kwargs": self.reward_kwargs(), "config": self.config.to_dict(), "stats": self.stats,
                "eval": next((h for h in reversed(self.history) if any(k.startswith("eval/") for k in h)), {})}

        def write(tmp: Path) -> None:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))

        return atomic_save_dir(path, write)


def load_reward_function(path: str | os.PathLike, **overrides: Any) -> Any:
    """A :class:`textgym.rewards.RewardModelReward` for a saved reward model, reading inputs as in training.

    Uses the ``reward_kwargs`` stored by :meth:`RewardModelTrainer.save`
    (absent for other models: the reward's defaults), updated by ``overrides``.
    """
    from textgym.rewards import RewardModelReward

    meta_path = Path(path) / META_FILE
    kwargs = json.loads(meta_path.read_text())["reward_kwargs"] if meta_path.is_file() else {}
    kwargs.update(overrides)
    return RewardModelReward(os.fspath(path), **kwargs)
