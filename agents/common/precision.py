"""Mixed precision: bf16 autocast of the model's forwards, fp32 master weights and fp32 loss math.

``precision="bf16"`` (an algorithm config's run setting, or ``accelerate launch
--mixed_precision bf16``, which sets ``ACCELERATE_MIXED_PRECISION=bf16``) runs
every forward of the policy's LM and of its reference (rollout, scoring pass,
update) under ``torch.autocast(device_type, dtype=torch.bfloat16)``: matrix
products in bf16, the weights, gradients and optimizer state stay float32.
The LM's logits come out in bf16 and are upcast to float32 before any
``log_softmax`` (:meth:`LMActorCritic` returns float32 logits, and
:func:`~textgym.agents.common.sampling.process_logits` computes in float32), the
value head runs in float32 on the upcast hidden state, and every loss term
(log-probabilities, ratios, KL, advantages, value loss) is float32.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch

__all__ = ["PRECISIONS", "check_precision", "resolve_precision", "autocast"]

#: the accepted values of the ``precision`` run setting (``None``: from ``ACCELERATE_MIXED_PRECISION``)
PRECISIONS = ("fp32", "bf16")

#: ``ACCELERATE_MIXED_PRECISION`` values (set by ``accelerate launch --mixed_precision``) -> textgym's
_ACCELERATE = {"no": "fp32", "bf16": "bf16"}


def check_precision(value: Any) -> None:
    """Raise ``ValueError`` (one line) unless ``value`` is ``None`` or one of :data:`PRECISIONS`."""
    if value is not None and value not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} (or null: from accelerate's --mixed_precision), "
                         f"got {value!r}; fp16 is not supported (use bf16)")


def resolve_precision(value: str | None) -> str:
    """The precision to run with: ``value``, or (``None``) the one ``accelerate launch`` set, else ``"fp32"``.

    Raises:
        ValueError: a bad ``value``, or ``ACCELERATE_MIXED_PRECISION`` other than ``no`` / ``bf16``.
    """
    check_precision(value)
    if value is not None:
        return value
    raw = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").strip().lower()
    if raw not in _ACCELERATE:
        raise ValueError(f"ACCELERATE_MIXED_PRECISION={raw!r} (accelerate launch --mixed_precision) is not supported "
                         "by textgym; use --mixed_precision bf16 or no")
    return _ACCELERATE[raw]


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast(device.type, torch.bfloat16)`` for ``"bf16"``; a no-op context for ``"fp32"``."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
