"""``AllowedTokensProcessor``: a fixed vocabulary mask on the policy's logits (an env's ``allowed_token_ids``).

textgym's KV-cached rollouts draw from the LM's logits; on an env built with
``allowed_token_ids`` (:mod:`textgym.action_mask`) this processor keeps the
allowed ids and sets every other logit to ``-inf``, in generation, scoring and
updates alike, so the sampling distribution is the LM's softmax renormalised
over the allowed tokens: the distribution sb3-contrib's masked categorical
gives (its ``-1e8`` and this ``-inf`` both give probability exactly 0 in float32).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from textgym.agents.common.rollout import LogitsProcessor

__all__ = ["AllowedTokensProcessor", "allowed_tokens_processor"]


class AllowedTokensProcessor(LogitsProcessor):
    """Keep the logits of the allowed token ids, ``-inf`` elsewhere (stateless: the same mask at every step).

    Args:
        allowed: ``(V,)`` bool mask (``True`` on allowed ids), as an env's ``allowed_tokens``.

    Raises:
        ValueError: a mask that is not 1-D or allows no token.
    """

    def __init__(self, allowed: np.ndarray | torch.Tensor):
        mask = torch.as_tensor(np.asarray(allowed), dtype=torch.bool)
        if mask.ndim != 1 or not bool(mask.any()):
            raise ValueError(f"the allowed-token mask must be a (V,) bool array with a True entry, got shape "
                             f"{tuple(mask.shape)} with {int(mask.sum())} allowed")
        self.allowed = mask

    def _apply(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.allowed.shape[0]:
            raise ValueError(f"logits have {logits.shape[-1]} entries, the allowed-token mask {self.allowed.shape[0]}")
        return logits.masked_fill(~self.allowed.to(logits.device), float("-inf"))

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Nothing to prepare."""

    def step(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, V)`` -> ``(N, V)`` with ``-inf`` on disallowed ids."""
        return self._apply(logits)

    def advance(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Nothing to track."""

    def end(self) -> None:
        """Nothing to release."""

    def sequence(self, logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 actions: torch.Tensor) -> torch.Tensor:
        """``(n, t, V)`` -> ``(n, t, V)`` with ``-inf`` on disallowed ids."""
        return self._apply(logits)

    def next_token(self, logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(N, V)`` -> ``(N, V)`` with ``-inf`` on disallowed ids."""
        return self._apply(logits)


def allowed_tokens_processor(env: Any) -> AllowedTokensProcessor | None:
    """The processor of a textgym env's ``allowed_tokens`` (``None`` for an unrestricted env)."""
    allowed = getattr(getattr(env, "unwrapped", env), "allowed_tokens", None)
    return None if allowed is None else AllowedTokensProcessor(allowed)
