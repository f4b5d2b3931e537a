"""CrowS-Pairs for causal LMs: which sentence of a minimal pair the model finds more likely.

:func:`crows_pairs_score` scores each pair by its shared tokens (``method="shared"``)
or by the whole sentence (``"full"``); see :mod:`textgym.agents.common.bias` for the
causal adaptation and its caveats.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from textgym.agents.common.bias_stats import CrowsPairsResult, stereotype_score

__all__ = ["shared_token_positions", "sequence_token_logprobs", "crows_pairs_score", "CROWS_METHODS"]

#: Sentence scores of :func:`crows_pairs_score`.
CROWS_METHODS = ("shared", "full")


def _lm_and_tokenizer(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """The causal LM to run and its tokenizer: an :class:`LMActorCritic` gives its (LoRA) model and tokenizer."""
    if hasattr(model, "value_head") and hasattr(model, "model"):
        return model.model, tokenizer if tokenizer is not None else model.tokenizer
    if tokenizer is None:
        raise ValueError("pass the model's tokenizer (tokenizer=...) with a plain causal LM")
    return model, tokenizer


def _start_id(tokenizer: Any) -> int:
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer has no BOS, EOS or pad token to start a sentence with")


def shared_token_positions(a: Sequence[int], b: Sequence[int]) -> tuple[list[int], list[int]]:
    """Positions of the tokens two sequences share (:class:`difflib.SequenceMatcher` matching blocks).

    Returns:
        ``(positions in a, positions in b)``, equally long, in order.
    """
    matcher = difflib.SequenceMatcher(None, list(a), list(b), autojunk=False)
    pa, pb = [], []
    for i, j, size in matcher.get_matching_blocks():
        pa.extend(range(i, i + size))
        pb.extend(range(j, j + size))
    return pa, pb


@torch.no_grad()
def sequence_token_logprobs(lm: Any, sequences: Sequence[Sequence[int]], start_id: int, batch_size: int = 16
                            ) -> list[np.ndarray]:
    """``log p(token_t | start, tokens_<t)`` for every token of every sequence (one causal forward per batch).

    Args:
        lm: a causal LM returning ``.logits`` ``(B, L, V)``.
        sequences: token ids (without the start token).
        start_id: the token put in front of each sequence (BOS, else EOS).
        batch_size: sequences per forward.

    Returns:
        One float64 array ``(len(sequence),)`` per sequence.
    """
    out: list[np.ndarray] = [np.zeros(0)] * len(sequences)
    device = next(lm.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # similar lengths share a batch
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = 1 + max(len(sequences[i]) for i in idx)
        ids = torch.full((len(idx), width), start_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            seq = [start_id, *sequences[i]]
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        logits = lm(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()  # (B, L, V)
        target = ids[:, 1:].to(device)  # (B, L-1)
        picked = logits[:, :-1].gather(-1, target.unsqueeze(-1)).squeeze(-1)
        logp = (picked - torch.logsumexp(logits[:, :-1], dim=-1)).double().cpu().numpy()  # (B, L-1)
        for row, i in enumerate(idx):
            out[i] = logp[row, : len(sequences[i])]
    return out


def crows_pairs_score(model: Any, pairs: Iterable[Mapping[str, Any]], tokenizer: Any = None, *,
                      method: str = "shared", batch_size: int = 16, seed: int = 0) -> CrowsPairsResult:
    """The CrowS-Pairs stereotype score of a causal LM (percent; 50 = no preference).

    Args:
        model: an :class:`~textgym.agents.common.policy.LMActorCritic` (its trained model is
            scored) or a causal LM (then pass ``tokenizer``).
        pairs: rows with ``sent_more``, ``sent_less`` and ``bias_type`` (e.g.
            ``textgym.envs.datasets.load("crows-pairs", "test")``).
        tokenizer: the model's tokenizer (default: the policy's).
        method: ``"shared"`` (default; the log-likelihood of the shared tokens,
            see the module docstring) or ``"full"`` (the whole sentence).
        batch_size: sentences per forward.
        seed: bootstrap seed.

    Returns:
        :class:`CrowsPairsResult`: overall and per-type :class:`Estimate` (percent)
        and each pair's outcome (1: ``sent_more`` scored higher, 0.5: tie, 0).

    Raises:
        ValueError: unknown ``method``, no pairs, or a row without the columns.
    """
    if method not in CROWS_METHODS:
        raise ValueError(f"method must be one of {CROWS_METHODS}, got {method!r}")
    rows = list(pairs)
    if not rows:
        raise ValueError("no CrowS-Pairs pairs to score; pass at least one pair")
    missing = {"sent_more", "sent_less", "bias_type"} - set(rows[0])
    if missing:
        raise ValueError(f"CrowS-Pairs rows need the columns sent_more, sent_less, bias_type; missing {sorted(missing)}")
    lm, tok = _lm_and_tokenizer(model, tokenizer)
    was_training = lm.training
    lm.eval()
    enc = [list(tok(r[key], add_special_tokens=False)["input_ids"]) for r in rows for key in ("sent_more", "sent_less")]
    logps = sequence_token_logprobs(lm, enc, _start_id(tok), batch_size)
    lm.train(was_training)
    outcomes = []
    for k in range(len(rows)):
        a, b, la, lb = enc[2 * k], enc[2 * k + 1], logps[2 * k], logps[2 * k + 1]
        if method == "shared":
            pa, pb = shared_token_positions(a, b)
            sa, sb = float(la[pa].sum()), float(lb[pb].sum())
        else:
            sa, sb = float(la.sum()), float(lb.sum())
        outcomes.append(1.0 if sa > sb else 0.0 if sa < sb else 0.5)
    overall, by_type = stereotype_score(outcomes, [r["bias_type"] for r in rows], seed)
    return CrowsPairsResult(overall, by_type, method, outcomes)
