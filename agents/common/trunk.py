"""The frozen lower layers of a decoder: count them, run the layers above them alone, capture their output.

With LoRA on the top layers only (``layers_to_transform``), the lower ``k`` decoder layers carry no adapter
and take no gradient: a policy and its reference (the same weights, adapter off) compute the same activations
there, and so do all the epochs of an update.  The *trunk* is the input of layer ``k``, ``(N, S, d)``: computed
once per rollout (captured during the reference pass), it stands in for the bottom ``k`` layers in every later
forward.  Pure helpers over a Hugging Face causal LM; :class:`~textgym.agents.common.policy.LMActorCritic`
uses them.

Only decoders that feed ``inputs_embeds`` to their layers unchanged (no embedding scale, no absolute position
embeddings added) and give every layer the same attention mask qualify: :data:`TRUNK_MODEL_TYPES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["TRUNK_MODEL_TYPES", "decoder_layers", "frozen_layer_count", "layers_from", "capture_layer_input"]

#: ``config.model_type`` s whose decoder (``model.layers``) can run its top layers alone from ``inputs_embeds``
TRUNK_MODEL_TYPES = ("llama", "mistral")


def decoder_layers(lm: nn.Module) -> nn.ModuleList | None:
    """``lm.model.layers`` when the architecture lets its top layers run alone (else ``None``)."""
    if getattr(getattr(lm, "config", None), "model_type", None) not in TRUNK_MODEL_TYPES:
        return None
    layers = getattr(getattr(lm, "model", None), "layers", None)
    return layers if isinstance(layers, nn.ModuleList) and len(layers) > 1 else None


def frozen_layer_count(lm: nn.Module) -> int:
    """How many bottom layers of ``lm`` carry no adapter (any ``lora_*`` module) and no trainable weight, with
    frozen embeddings; at most ``L - 1`` (the top layer always runs).  0 for other architectures."""
    layers = decoder_layers(lm)
    if layers is None or any(p.requires_grad for p in lm.get_input_embeddings().parameters()):
        return 0
    k = 0
    for layer in list(layers)[:-1]:
        adapted = any("lora_" in name for name, _ in layer.named_modules())
        if adapted or any(p.requires_grad for p in layer.parameters()):
            break
        k += 1
    return k


@contextmanager
def layers_from(lm: nn.Module, k: int) -> Iterator[None]:
    """Inside: ``lm``'s decoder runs layers ``k..L-1`` only, so its ``inputs_embeds`` is the input of layer ``k``."""
    decoder = lm.model
    full = decoder.layers
    decoder.layers = nn.ModuleList(list(full)[k:])
    try:
        yield
    finally:
        decoder.layers = full


@contextmanager
def capture_layer_input(lm: nn.Module, k: int) -> Iterator[list[torch.Tensor]]:
    """Inside: every forward of ``lm`` appends the (detached) input of its layer ``k``, ``(N, S, d)``, to the
    yielded list."""
    seen: list[torch.Tensor] = []

    def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append((args[0] if args else kwargs["hidden_states"]).detach())

    hook = lm.model.layers[k].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        yield seen
    finally:
        hook.remove()
