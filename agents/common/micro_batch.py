"""``micro_batch_size="auto"``: the rows per forward/backward chosen from an activation-memory budget.

The update of an on-policy algorithm runs forward and backward passes over
episodes of ``S = P + T`` tokens (prompt slots + response slots) and keeps the
logits of the ``T`` response slots.  What the backward pass needs alive per
row (episode) is estimated by :func:`activation_bytes_per_row`::

    bytes = dtype_bytes * (L * S * (8 * d + 4 * d_ff)  +  3 * T * V)

* ``L * S * (8 d + 4 d_ff)``: per layer and token, about eight hidden-sized
  tensors (norm outputs, query / key / value, attention output, projection,
  residual) and four of the MLP's width (gate, up, activation, product);
* ``3 * T * V``: the response slots' logits, their log-softmax and the
  logits' gradient.

It is a rough count (it ignores the attention scores, counts every layer even
when LoRA leaves the lower ones frozen, and knows nothing of the allocator),
good to within tens of percent on SmolLM2 (``benchmarks/memory.py``): about
136 MiB per row estimated for SmolLM2-135M at ``P = 64, T = 32``, about
132 MiB measured.  :func:`auto_micro_batch_size` then takes as many rows as fit
the budget (``micro_batch_memory_mb`` of the config), at least one.  Gradients
accumulate over micro-batches, so the update is the same for any micro-batch
size up to float rounding; the tiny test models fit a whole batch in the
default budget, so their runs are exactly those of ``micro_batch_size=None``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["AUTO", "ModelDims", "model_dims", "activation_bytes_per_row", "auto_micro_batch_size",
           "resolve_micro_batch_size"]

AUTO = "auto"
MIB = 2**20
log = logging.getLogger("textgym.agents")


@dataclass(frozen=True)
class ModelDims:
    """What :func:`activation_bytes_per_row` needs of a causal LM: layers ``L``, width ``d``, MLP width ``d_ff``,
    vocabulary ``V`` and bytes per activation (2 for fp16/bf16, 4 for fp32)."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    dtype_bytes: int


def model_dims(model: Any) -> ModelDims | None:
    """The :class:`ModelDims` of a transformers causal LM (Llama- or GPT-2-style config names; a peft model
    reads its base model's config); ``None`` when the config does not say (no estimate possible)."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return None
    if hasattr(cfg, "get_text_config"):
        cfg = cfg.get_text_config()

    def first(*names: str) -> Any:
        return next((getattr(cfg, n) for n in names if isinstance(getattr(cfg, n, None), int)), None)

    layers, width, vocab = first("num_hidden_layers", "n_layer"), first("hidden_size", "n_embd"), first("vocab_size")
    if not (layers and width and vocab):
        return None
    ff = first("intermediate_size", "n_inner") or 4 * width  # GPT-2: n_inner None means 4 d
    param = next(iter(model.parameters()), None)
    nbytes = param.element_size() if param is not None else 4
    return ModelDims(layers, width, ff, vocab, int(nbytes))


def activation_bytes_per_row(dims: ModelDims, seq_len: int, new_tokens: int) -> int:
    """Estimated bytes the forward keeps for the backward pass per row of ``seq_len`` tokens of which
    ``new_tokens`` have their logits kept (see the module docstring for the formula)."""
    per_layer = 8 * dims.hidden_size + 4 * dims.intermediate_size
    return dims.dtype_bytes * (dims.num_layers * seq_len * per_layer + 3 * new_tokens * dims.vocab_size)


def auto_micro_batch_size(budget_mb: float, bytes_per_row: int) -> int:
    """The most rows whose estimated activations fit ``budget_mb`` MiB; at least 1."""
    return max(1, math.floor(budget_mb * MIB / max(bytes_per_row, 1)))


def resolve_micro_batch_size(config: Any, model: Any, env: Any, rows_per_unit: int = 1) -> int | None:
    """The micro-batch the update uses: ``config.micro_batch_size`` as set (an integer, or ``None``: the whole
    minibatch), or for ``"auto"`` the rows that fit ``config.micro_batch_memory_mb``; logs the choice (once per
    algorithm: call it at construction).

    Args:
        config: an on-policy config (``micro_batch_size``, ``micro_batch_memory_mb``).
        model: the policy's language model (``None`` or no readable config: the whole minibatch).
        env: the training env (``max_prompt_length`` ``P`` and ``max_new_tokens`` ``T``).
        rows_per_unit: sequences per unit the update splits (online DPO: 2, a pair).

    Returns:
        Units per forward/backward, or ``None`` for the whole minibatch.
    """
    size = getattr(config, "micro_batch_size", None)
    if size != AUTO:
        return size
    dims = model_dims(model) if model is not None else None
    p, t = getattr(env, "max_prompt_length", None), getattr(env, "max_new_tokens", None)
    if dims is None or not isinstance(p, int) or not isinstance(t, int):
        log.info("micro_batch_size='auto': no model dimensions to estimate from, using the whole minibatch")
        return None
    per_row = activation_bytes_per_row(dims, p + t, t) * rows_per_unit
    budget = config.micro_batch_memory_mb
    chosen = auto_micro_batch_size(budget, per_row)
    log.info("micro_batch_size='auto': %d per forward/backward (estimated %.1f MiB of activations each, "
             "budget micro_batch_memory_mb=%g)", chosen, per_row / MIB, budget)
    return chosen
