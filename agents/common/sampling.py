"""The sampling distribution: temperature, top-k and top-p applied to logits, and its log-probabilities.

The policy an RL algorithm optimises is the distribution tokens are actually
drawn from.  :func:`process_logits` turns raw logits into that distribution's
logits (``-inf`` outside the kept set), deterministically, so the rollout and
the update compute the same log-probabilities for the same logits.

Order of operations (as in common samplers): divide by the temperature, keep
the ``top_k`` largest, then keep the smallest set of most likely tokens whose
probability reaches ``top_p`` (Holtzman et al., "The Curious Case of Neural
Text Degeneration", ICLR 2020).  The most likely token is always kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from textgym.agents.functional import top_p_mask

__all__ = ["SamplingParams", "process_logits", "sample_tokens", "logprobs_of", "entropy_of"]


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are drawn.

    Attributes:
        temperature: logits are divided by it (> 0).
        top_k: keep the ``top_k`` most likely tokens (``None`` or 0: all).
        top_p: nucleus mass in ``(0, 1]`` (1.0: all).
        greedy: take the arg-max instead of sampling (evaluation only; the
            logprobs are still those of the temperature/top-k/top-p distribution).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    greedy: bool = False

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for arg-max), got {self.temperature}")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 or None, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def truncates(self) -> bool:
        """Whether top-k or top-p can drop tokens."""
        return bool(self.top_k) or self.top_p < 1.0


def process_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Logits of the sampling distribution: ``logits / T`` with ``-inf`` outside the top-k / top-p set.

    Args:
        logits: ``(..., V)`` float (any float dtype; computed in float32).
        params: temperature, top-k, top-p.

    Returns:
        ``(..., V)`` float32.
    """
    z = logits.float()
    if params.temperature != 1.0:
        z = z / params.temperature
    v = z.shape[-1]
    if params.top_k and params.top_k < v:
        kth = torch.topk(z, params.top_k, dim=-1).values[..., -1:]  # (..., 1)
        z = z.masked_fill(z < kth, float("-inf"))
    if params.top_p < 1.0:
        z = z.masked_fill(~top_p_mask(z, params.top_p), float("-inf"))
    return z


def sample_tokens(processed: torch.Tensor, generator: torch.Generator | None, greedy: bool = False) -> torch.Tensor:
    """Draw one token per row from processed logits ``(N, V)``; returns ``(N,)`` int64."""
    if greedy:
        return processed.argmax(dim=-1)
    probs = torch.softmax(processed, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def logprobs_of(processed: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``log p(token)`` under processed logits: ``(..., V)`` and ``(...)`` int64 -> ``(...)`` float32.

    Computed as ``z[token] - logsumexp(z)``, which never materialises a ``(..., V)`` log-softmax.
    """
    picked = processed.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(processed, dim=-1)


def entropy_of(processed: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the processed distribution: ``(..., V)`` -> ``(...)``; ``-inf`` logits contribute 0."""
    logp = torch.log_softmax(processed, dim=-1)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros((), dtype=logp.dtype, device=logp.device)).sum(-1)
