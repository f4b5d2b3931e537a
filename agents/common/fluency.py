"""Fluency of a policy's language model: perplexity on held-out real text, and loading that text.

:func:`perplexity` is the fluency metric of :func:`textgym.agents.common.evaluation.evaluate_policy`
(which re-exports both functions); :func:`load_perplexity_texts` picks a seeded subset of a data
set's text column (a catalogue name or a local file / folder).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textgym.agents.common.sampling import logprobs_of

__all__ = ["perplexity", "load_perplexity_texts", "TEXT_COLUMNS"]

#: Columns tried, in order, when :func:`load_perplexity_texts` picks a data set's text column.
TEXT_COLUMNS = ("text", "document", "content", "review", "sentence", "completion", "response", "output",
                "chosen", "summary", "en")


def _language_model(model: Any) -> tuple[Any, Any]:
    """The causal LM to run (``LMActorCritic`` -> its LM, adapter enabled) and the policy's tokenizer, if any."""
    from textgym.agents.common.policy import LMActorCritic

    if isinstance(model, LMActorCritic):
        return model.lm, model.tokenizer  # the trained LM; with LoRA its adapter layers are active
    return model, None


def _max_positions(lm: Any) -> int | None:
    cfg = getattr(lm, "config", None)
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _encode_for_perplexity(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text: the tokenizer's special tokens, BOS prepended if it has one and did not add it, cut."""
    bos = getattr(tokenizer, "bos_token_id", None)
    rows = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    out = []
    for ids in rows:
        ids = list(ids)
        if bos is not None and (not ids or ids[0] != bos):
            ids = [int(bos)] + ids
        out.append(ids[:max_length])
    return out


@torch.no_grad()
def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 8,
               device: Any = None) -> float:
    """Perplexity of a causal LM on texts: ``exp`` of the mean negative log-likelihood per predicted token.

    ``PPL = exp( sum_i sum_t -log p(x_{i,t} | x_{i,<t}) / sum_i (L_i - 1) )``, pooled
    over every token of every text (a token mean, not a mean of per-text
    perplexities), as RL4LMs reports fluency (Ramamurthy et al., ICLR 2023).

    Each text is tokenized with the tokenizer's special tokens; if the
    tokenizer has a BOS token and does not add it, BOS is prepended so the
    first word is predicted too (without a BOS the first token is only
    context).  Sequences are cut to ``max_length`` tokens (BOS included),
    right-padded into batches, and padded positions are excluded through the
    attention mask (never by token id, so a pad id equal to EOS is harmless).
    Log-probabilities are computed in float32 over the model's full vocabulary.

    Args:
        model: a Hugging Face causal LM (or a ``peft`` model), or an
            :class:`~textgym.agents.common.policy.LMActorCritic` (its LM is used, with
            the LoRA adapter enabled: the policy's own distribution).
        tokenizer: the model's tokenizer; ``None`` takes the ``LMActorCritic``'s.
        texts: the texts.
        max_length: most tokens per sequence fed to the model (>= 2).
        batch_size: sequences per forward pass.
        device: where to run (default: the model's device).

    Returns:
        The perplexity (a float >= 1 in practice; ``inf`` if the NLL overflows ``exp``).

    Raises:
        ValueError: no texts, no predicted token in any text, bad ``max_length`` /
            ``batch_size``, ``max_length`` beyond the model's positions, or no tokenizer.
        FloatingPointError: the model produced a non-finite log-likelihood (NaN weights or inputs).
    """
    lm, own_tok = _language_model(model)
    tokenizer = tokenizer if tokenizer is not None else own_tok
    if tokenizer is None:
        raise ValueError("perplexity needs a tokenizer: pass the model's tokenizer")
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got one string; wrap it in a list")
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("perplexity needs at least one text (got an empty list)")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (a token and its context), got {max_length}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    limit = _max_positions(lm)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length={max_length} exceeds the model's {limit} positions; pass max_length<={limit}")
    dev = torch.device(device) if device is not None else next(lm.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # masked: any valid id works

    # 1. tokenize (BOS, truncation), longest first so batches waste little padding
    rows = _encode_for_perplexity(tokenizer, texts, max_length)
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    was_training = lm.training
    lm.eval()
    nll_sum, n_tokens = 0.0, 0
    try:
        for s in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[s : s + batch_size]]
            width = max(len(r) for r in batch)
            if width < 2:
                continue  # no row here predicts a token
            # 2. right-pad into (B, L) with the attention mask
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            am = torch.zeros(len(batch), width, dtype=torch.long)
            for j, r in enumerate(batch):
                ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
                am[j, : len(r)] = 1
            ids, am = ids.to(dev), am.to(dev)
            # 3. token log-likelihoods: position t predicts token t + 1
            logits = lm(input_ids=ids, attention_mask=am).logits[:, :-1].float()  # (B, L-1, V)
            logp = logprobs_of(logits, ids[:, 1:])  # (B, L-1), no (B, L-1, V) log-softmax copy
            m = am[:, 1:].bool()
            nll_sum += float(-(logp.double() * m).sum())
            n_tokens += int(m.sum())
            del logits, logp
    finally:
        lm.train(was_training)
    if n_tokens == 0:
        raise ValueError("no text has a token to predict (every text is empty, or one token with no BOS)")
    mean_nll = nll_sum / n_tokens
    if not math.isfinite(mean_nll):
        raise FloatingPointError(f"non-finite mean negative log-likelihood ({mean_nll}); check the model's weights")
    return math.exp(mean_nll) if mean_nll < 700 else float("inf")


def _pick_text_column(columns: Sequence[str], what: str) -> str:
    for name in TEXT_COLUMNS:
        if name in columns:
            return name
    raise ValueError(f"cannot tell which column of {what} holds the text (columns: {list(columns)}); "
                     f"pass column=<one of them>")


def load_perplexity_texts(data: str, split: str = "test", max_texts: int = 64, *, seed: int = 0,
                          column: str | None = None) -> list[str]:
    """Real texts to measure fluency on: a vendored data set's split, or your own file.

    Args:
        data: a vendored set name (:mod:`textgym.envs.datasets`, e.g.
            ``"movie-reviews"``), a ``.jsonl`` / ``.jsonl.gz`` file (one JSON
            object per line) or a ``.txt`` file (one text per non-blank line).
        split: the vendored set's split (``"test"`` by default: held-out
            text).  Files are used whole (``split`` is ignored for them).
        max_texts: at most this many texts (>= 1).  When there are more, a
            seeded random subset (kept in data order) is returned.
        seed: seed of that subset.
        column: the text column; by default the first of :data:`TEXT_COLUMNS`
            present (``text`` for the review sets, ``document`` for news, ...).

    Returns:
        Non-empty strings, in data order.

    Raises:
        FileNotFoundError: ``data`` looks like a path but is not a file.
        KeyError (``UnknownDatasetError``): unknown set name (lists the names).
        ValueError: unknown split, no text column found (the message lists
            the columns), ``max_texts < 1``, or no non-empty text.
    """
    from textgym.envs import datasets as tds

    if max_texts < 1:
        raise ValueError(f"max_texts must be >= 1, got {max_texts}")
    name = str(data)
    path = Path(name)
    # 1. read the rows
    if name.endswith(".txt"):
        if not path.is_file():
            raise FileNotFoundError(f"no such text file: {name!r}")
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            if not path.is_file():
                raise FileNotFoundError(f"no such JSON Lines file: {name!r}")
            rows = tds.read_jsonl(path)
            columns = list(dict.fromkeys(k for r in rows for k in r))
            what = f"file {name!r}"
        else:
            ds = tds.load(name, split)
            rows, columns, what = ds.to_list(), ds.column_names, f"data set {name!r}"
        col = column if column is not None else _pick_text_column(columns, what)
        if col not in columns:
            raise ValueError(f"{what} has no column {col!r} (columns: {columns})")
        texts = [str(r[col]).strip() for r in rows if r.get(col) is not None]
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError(f"no non-empty text in {name!r}" + ("" if name.endswith(".txt") else f" (split {split!r})"))
    # 2. a seeded subset, in data order
    if len(texts) > max_texts:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_texts, replace=False))
        texts = [texts[i] for i in keep.tolist()]
    return texts
