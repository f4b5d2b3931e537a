"""FSDP: full fine-tuning with the policy's LM (and its frozen reference) sharded over the ranks.

With ``strategy="fsdp"`` (an algorithm config's run setting, or an accelerate FSDP
config: ``accelerate launch --config_file examples/accelerate/fsdp.yaml``, which sets
``ACCELERATE_USE_FSDP=true``) and several processes, :func:`shard_policy` applies
PyTorch's FSDP2 ``fully_shard`` to every decoder layer (the classes the model names
in ``_no_split_modules``) and then to the root of the policy's LM and of its frozen
reference copy.  Each rank keeps ``1 / world_size`` of every parameter, its gradient
and its AdamW state; a forward all-gathers one layer at a time.

What textgym does differently from plain DDP (``distributed.py``):

* **Gradients.**  Each rank's loss is its share of the *global* minibatch
  (:func:`~textgym.agents.common.updates.optimize_rows` scales it by
  ``local_normaliser / global_normaliser`` before the backward pass), so FSDP's
  reduce-scatter *sums* (``set_gradient_divide_factor(1.0)`` and
  ``set_force_sum_reduction_for_comms(True)`` on every FSDP module, instead of
  its default mean) and textgym's own all-reduce runs only
  for the unsharded value head (:func:`replicated`).
* **Clipping** uses the global norm over the shards (:func:`clip_grad_norm_`).
* **Rollouts** (and ``evaluate`` / ``generate``): the ranks' episodes end after
  different numbers of decoding steps, and a sharded forward is a collective, so
  :func:`gathered` all-gathers the whole LM and reference once before the rollout
  and frees them after it; the rollout's forwards then make no collective calls.
  The rollout therefore holds the full parameters of the policy and the reference
  on every rank (the gradients and the optimizer state stay sharded).
* **Checkpoints**: :func:`full_state` gathers a full state dict (rank 0, on the
  CPU) of the LM, the reference and the optimizer; rank 0 writes the usual
  Hugging Face folder, so a checkpoint of an FSDP run loads in plain
  ``transformers`` and resumes with or without FSDP, any process count.

Of an accelerate FSDP config textgym reads ``fsdp_reshard_after_forward`` (the
layers'), ``fsdp_transformer_layer_cls_to_wrap`` (more layer classes to shard) and
``mixed_precision`` (:mod:`~textgym.agents.common.precision`); ``fsdp_offload_params``
and ``fsdp_activation_checkpointing`` must be false; the others (``fsdp_version``,
``fsdp_state_dict_type``, ...) do not apply: textgym always shards with FSDP2 and
writes full state dicts.

LoRA is not combined with FSDP (one clear error): an adapter is small, so DDP
already trains it with the base weights on every rank.  NLPO's masking model is
not sharded either (NLPO rejects ``strategy="fsdp"``).  In one process
``strategy="fsdp"`` changes nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from textgym.agents.common import distributed

__all__ = ["STRATEGIES", "check_strategy", "resolve_strategy", "shard_policy", "is_sharded", "is_sharded_param",
           "replicated", "gathered", "clip_grad_norm_", "full_state", "load_optimizer_state"]

#: the accepted values of the ``strategy`` run setting (``None``: from ``ACCELERATE_USE_FSDP``)
STRATEGIES = ("ddp", "fsdp")


def check_strategy(value: Any) -> None:
    """Raise ``ValueError`` (one line) unless ``value`` is ``None`` or one of :data:`STRATEGIES`."""
    if value is not None and value not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES} (or null: fsdp under an accelerate FSDP config), "
                         f"got {value!r}")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def resolve_strategy(value: str | None) -> str:
    """``value``, or (``None``) ``"fsdp"`` when ``accelerate launch`` runs an FSDP config, else ``"ddp"``.

    Raises:
        ValueError: a bad ``value``, or an accelerate FSDP setting textgym does not support
            (``fsdp_offload_params: true``).
    """
    check_strategy(value)
    strategy = value if value is not None else ("fsdp" if _env_true("ACCELERATE_USE_FSDP") else "ddp")
    for name, key in (("FSDP_OFFLOAD_PARAMS", "fsdp_offload_params"),
                      ("FSDP_ACTIVATION_CHECKPOINTING", "fsdp_activation_checkpointing")):
        if strategy == "fsdp" and _env_true(name):
            raise ValueError(f"{key}: true ({name}) is not supported by textgym; set it to false in the accelerate "
                             "config")
    return strategy


def _reshard_after_forward() -> bool:
    """accelerate's ``fsdp_reshard_after_forward`` (``FSDP_RESHARD_AFTER_FORWARD``): ``false`` / FSDP1's
    ``SHARD_GRAD_OP`` / ``NO_RESHARD`` keep a layer's gathered weights from its forward to its backward."""
    raw = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").strip().lower()
    return raw not in ("false", "0", "no", "shard_grad_op", "no_reshard")


def is_sharded_param(p: torch.Tensor) -> bool:
    """Whether ``p`` is an FSDP shard (a ``DTensor``)."""
    from torch.distributed.tensor import DTensor

    return isinstance(p, DTensor)


def is_sharded(policy: Any) -> bool:
    """Whether :func:`shard_policy` sharded ``policy``."""
    return bool(getattr(policy, "fsdp_sharded", False))


def replicated(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The parameters FSDP does not shard (the value head): textgym all-reduces their gradients itself."""
    return [p for p in params if not is_sharded_param(p)]


def _fsdp_modules(module: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in module.modules() if isinstance(m, FSDPModule)]


def _shard_lm(lm: nn.Module, mesh: Any, reshard: bool = True) -> None:
    from torch.distributed.fsdp import fully_shard

    layer_names = set(getattr(lm, "_no_split_modules", None) or [])
    extra = os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP")  # accelerate's fsdp_transformer_layer_cls_to_wrap
    if extra:
        layer_names |= {n.strip() for n in extra.split(",") if n.strip()}
    layers = [m for m in lm.modules() if type(m).__name__ in layer_names and m is not lm]
    if not layers:
        raise ValueError(f"cannot shard {type(lm).__name__}: it names no decoder layer class in _no_split_modules; "
                         "set fsdp_transformer_layer_cls_to_wrap in the accelerate config")
    for layer in layers:  # bottom-up: each layer its own all-gather / reduce-scatter group
        fully_shard(layer, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(lm, mesh=mesh)  # the root: embeddings, final norm, LM head
    for m in _fsdp_modules(lm):
        m.set_gradient_divide_factor(1.0)  # sum over ranks: each rank's loss is its share of the global batch
        m.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no PREMUL_SUM; the factor is 1 anyway)


def shard_policy(policy: Any) -> Any:
    """Shard ``policy``'s LM and its frozen reference over the ranks with FSDP2 (in place; see the module docstring).

    A no-op in one process.  The parameters must already be identical on every
    rank (:func:`~textgym.agents.common.distributed.broadcast_parameters`).

    Raises:
        ValueError: a LoRA policy, or a model without decoder layers to shard.
    """
    if not distributed.enabled() or is_sharded(policy):
        return policy
    if getattr(policy, "is_lora", False):
        raise ValueError("strategy fsdp shards full fine-tuning only; with LoRA use strategy ddp "
                         "(the adapter is small, every rank keeps the base weights)")
    from torch.distributed.device_mesh import init_device_mesh

    dev = policy.device
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    mesh = init_device_mesh(dev.type, (distributed.world_size(),))
    _shard_lm(policy.lm, mesh, _reshard_after_forward())
    if getattr(policy, "ref_model", None) is not None:  # forwards without grad: nothing to keep for a backward
        _shard_lm(policy.ref_model, mesh)
    policy.fsdp_sharded = True
    return policy


@contextmanager
def gathered(policy: Any) -> Iterator[None]:
    """All ranks together: the LM and the reference unsharded (one all-gather each) inside, resharded after.

    Forwards inside make no collective call, so the ranks may run different
    numbers of them (rollouts of different lengths, an evaluation on rank 0
    alone).  A no-op for a policy that is not sharded.
    """
    if not is_sharded(policy):
        yield
        return
    roots = [m for m in (policy.lm, getattr(policy, "ref_model", None)) if m is not None]
    mods = [m for r in roots for m in _fsdp_modules(r)]
    for m in mods:
        m.unshard()
    for r in roots:
        r.set_reshard_after_forward(False)
    try:
        yield
    finally:
        for r in roots:  # as sharded: the layers' setting, the root keeps its parameters (FSDP's default)
            r.set_reshard_after_forward(_reshard_after_forward() if r is policy.lm else True)
            r.set_reshard_after_forward(False, recurse=False)
        for m in mods:
            m.reshard()


def clip_grad_norm_(params: Sequence[torch.Tensor], max_norm: float) -> float:
    """Clip the gradients of ``params`` (FSDP shards and replicated ones) to a global L2 norm; returns the norm.

    The squared norm of the shards is summed over ranks (one all-reduce); the
    replicated gradients (identical on every rank) count once.
    """
    grads = [p.grad for p in params if p.grad is not None]
    sharded = [g.to_local() for g in grads if is_sharded_param(g)]
    plain = [g for g in grads if not is_sharded_param(g)]
    sq_sharded = sum((g.detach().double().pow(2).sum() for g in sharded), torch.zeros((), dtype=torch.float64))
    sq_plain = sum((g.detach().double().pow(2).sum().cpu() for g in plain), torch.zeros((), dtype=torch.float64))
    total = math.sqrt(float(distributed.all_sum(sq_sharded.cpu())) + float(sq_plain))
    if math.isfinite(total) and total > max_norm:
        coef = max_norm / (total + 1e-6)
        with torch.no_grad():
            for g in sharded + plain:
                g.mul_(coef)
    return total


def full_state(policy: Any, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    """Every rank together: full (unsharded) state dicts on rank 0's CPU; empty dicts on the other ranks.

    Returns:
        ``{"lm": ..., "reference": ... or None, "optimizer": ... or None}``; the optimizer's
        state is keyed by parameter names (``torch.distributed.checkpoint.state_dict``'s format).
    """
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    out: dict[str, Any] = {"lm": get_model_state_dict(policy.lm, options=opts), "reference": None, "optimizer": None}
    if getattr(policy, "ref_model", None) is not None and policy.source is None:
        out["reference"] = get_model_state_dict(policy.ref_model, options=opts)
    if optimizer is not None:
        out["optimizer"] = get_optimizer_state_dict(policy, optimizer, options=opts)
    return out


def load_optimizer_state(policy: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load an optimizer state written by :func:`full_state` (parameter names) into ``optimizer``, sharded or not."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(policy, optimizer, state, options=StateDictOptions(full_state_dict=True))
