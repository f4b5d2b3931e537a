"""``LMActorCritic``: a causal LM policy with a value head on its last hidden state and a frozen reference.

One trunk serves the actor and the critic (no separate value model), and the
reference model costs no second copy when LoRA is used:

* **without LoRA** the reference is a frozen deep copy of the starting model
  (``requires_grad=False``, never given to an optimizer);
* **with LoRA** (peft) the reference runs the *same* modules with the adapter
  switched off, so it shares every weight with the policy;
* **starting from an existing adapter** the reference is that starting policy:
  the adapter is loaded twice, as the trainable ``"default"`` adapter and a
  frozen ``"reference"`` adapter (adapters are small; the base weights are
  still shared).

Every forward pass uses position ids ``cumsum(attention_mask) - 1`` (so left
padding never changes a token's logprob) and logits are cut to the env's
action space (``action_size``) when the model's vocabulary is larger.

The interface an algorithm uses (:class:`ActorCriticPolicy`) is three calls:
``prefill`` (prompts -> first next-token logits, values, cache), ``decode_step``
(one token per row with the KV cache) and ``score`` (full sequences -> logits
for the last ``T`` tokens and values), plus ``reference_logits``.  A seq2seq
policy implements the same calls (encoder in ``prefill``, decoder steps), so
rollouts and algorithms need no change.

**Frozen lower layers.**  With LoRA on the top layers only (``layers_to_transform``),
the lower ``k = frozen_layers`` decoder layers have no adapter and take no
gradient: the policy and its reference compute the same activations there, and
so do all the update's epochs.  :meth:`LMActorCritic.reference_forward` returns,
beside the reference logits, that *trunk*: the input of layer ``k``, ``(N, S, d)``.
``score(..., trunk=...)`` then runs layers ``k..L-1`` only.  A rollout computes
the trunk once, in its reference pass, and every forward of the update reuses it
(on SmolLM2 with LoRA on the top 8 of 30 layers: 22/30 of each update forward
saved).  Only decoders that feed ``inputs_embeds`` to their layers unchanged and
give every layer the same attention mask qualify (:mod:`.trunk`).
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import abc

import torch
from torch import nn

from textgym.agents.common.trunk import capture_layer_input, frozen_layer_count, layers_from

__all__ = ["LMActorCritic", "ActorCriticPolicy", "StepOutput", "ScoreOutput", "position_ids_from_mask"]

REFERENCE_ADAPTER = "reference"


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``cumsum(attention_mask) - 1`` clamped at 0: ``(N, L)`` int64 -> ``(N, L)`` int64."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class StepOutput(NamedTuple):
    """Output of ``prefill`` / ``decode_step``.

    Attributes:
        logits: ``(N, V)`` float32, raw next-token logits (``V`` = action size).
        values: ``(N,)`` float32, ``V(s)`` of the current state.
        cache: the model's KV cache (opaque), to pass to the next ``decode_step``.
    """

    logits: torch.Tensor
    values: torch.Tensor
    cache: Any


class ScoreOutput(NamedTuple):
    """Output of ``score``.

    Attributes:
        logits: ``(N, T, V)`` float32, raw logits that predicted each of the last ``T`` tokens.
        values: ``(N, T + 1)`` float32, ``V(s_0) .. V(s_T)`` (``s_t``: before token ``t``),
            or ``None`` when not requested.
    """

    logits: torch.Tensor
    values: torch.Tensor | None


class ActorCriticPolicy(nn.Module, abc.ABC):
    """What rollouts and algorithms need from a policy (see the module docstring)."""

    action_size: int
    tokenizer: Any

    @abc.abstractmethod
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> StepOutput:  # pragma: no cover
        raise NotImplementedError

    @abc.abstractmethod
    def decode_step(self, tokens: torch.Tensor, attention_mask: torch.Tensor,
                    cache: Any) -> StepOutput:  # pragma: no cover
        raise NotImplementedError

    @abc.abstractmethod
    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_tokens: int,
              with_values: bool = True, trunk: torch.Tensor | None = None) -> ScoreOutput:  # pragma: no cover
        raise NotImplementedError

    @property
    def frozen_layers(self) -> int:
        """Lower layers whose output (the trunk) the reference and every update share; 0: none."""
        return 0

    def reference_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          num_tokens: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``reference_logits`` and the trunk for ``score(..., trunk=)`` (``None`` without frozen layers)."""
        return self.reference_logits(input_ids, attention_mask, num_tokens), None

    @abc.abstractmethod
    def reference_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         num_tokens: int) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    @abc.abstractmethod
    def next_token_logits(self, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor) -> StepOutput:  # pragma: no cover
        raise NotImplementedError


@contextmanager
def _quiet_peft() -> Iterator[None]:
    """Silence peft's read of ``is_gradient_checkpointing``, which transformers 5 deprecates.

    peft probes the attribute when it wraps a model; the FutureWarning it
    triggers is about peft's code, not the user's, so it is filtered here only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _lora_config(lora: Any) -> Any:
    from peft import LoraConfig, TaskType

    if isinstance(lora, LoraConfig):
        return lora
    kw = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear", "bias": "none"}
    if isinstance(lora, dict):
        kw.update(lora)
    elif lora is not True:
        raise TypeError(f"lora must be None, True, a dict of LoraConfig fields or a peft.LoraConfig, got {type(lora)}")
    return LoraConfig(task_type=TaskType.CAUSAL_LM, **kw)


class LMActorCritic(ActorCriticPolicy):
    """Causal LM actor-critic with a frozen reference (see the module docstring).

    Args:
        model: a Hugging Face causal LM (``transformers.PreTrainedModel``) or a
            ``peft.PeftModel`` wrapping one (then training continues its active
            adapter and the reference is that adapter, frozen).
        tokenizer: its tokenizer (kept for ``generate`` and saving).
        lora: ``None`` (full fine-tuning), ``True`` (defaults r=16, alpha=32,
            all linear layers), a dict of ``peft.LoraConfig`` fields or a ``LoraConfig``.
        adapter: path of an existing LoRA adapter to start from (implies LoRA);
            the reference is then the model with that adapter, frozen.
        action_size: the env's action-space size ``V``; logits are cut to it
            (default: the model's vocabulary).
        reference: without LoRA, the frozen reference model to use (default: a
            deep copy of ``model`` as it is now); e.g. an SFT model.
        value_head_std: std of the value head's initial weights (bias 0).
        source: how to rebuild the base weights on load (set by
            :meth:`from_pretrained`: ``{"name": ..., "seed": ..., "dtype": ...}``);
            ``None`` makes :meth:`save` write them.

    Raises:
        ValueError: ``action_size`` larger than the model's vocabulary, or LoRA
            asked for on a model that already has an adapter.
    """

    def __init__(self, model: nn.Module, tokenizer: Any = None, *, lora: Any = None, adapter: str | None = None,
                 action_size: int | None = None, value_head_std: float = 0.01, source: dict | None = None,
                 reference: nn.Module | None = None):
        super().__init__()
        self.tokenizer = tokenizer
        self.source = source
        self.has_reference_adapter = False
        is_peft = hasattr(model, "peft_config")
        if is_peft and (lora is not None or adapter is not None):
            raise ValueError("the model already has a peft adapter; pass lora=None and adapter=None")
        if adapter is not None:
            from peft import PeftModel

            with _quiet_peft():
                model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
            is_peft = True
        elif lora is not None:
            from peft import get_peft_model

            with _quiet_peft():
                model = get_peft_model(model, _lora_config(lora))
        elif is_peft:
            for p in model.parameters():  # a PeftModel given as is: train its adapter only
                p.requires_grad_(False)
            model.set_adapter(model.active_adapter)
        if is_peft:  # started from an adapter: keep a frozen copy of it as the reference
            from peft import get_peft_model_state_dict, set_peft_model_state_dict

            active = model.active_adapter
            model.add_adapter(REFERENCE_ADAPTER, copy.deepcopy(model.peft_config[active]))
            set_peft_model_state_dict(model, get_peft_model_state_dict(model, adapter_name=active),
                                      adapter_name=REFERENCE_ADAPTER)
            model.set_adapter(active)  # makes `active` trainable, the reference frozen
            self.has_reference_adapter = True
        self.is_lora = hasattr(model, "peft_config")
        self.model = model  # the PeftModel when LoRA is used, else the HF model
        self.lm = model.get_base_model() if self.is_lora else model  # HF model (LoRA layers injected)
        self.ref_model: nn.Module | None = None
        if reference is not None and self.is_lora:
            raise ValueError("with LoRA the reference is the model without (or with the starting) adapter; "
                             "do not pass reference=")
        if not self.is_lora:
            self.ref_model = reference if reference is not None else copy.deepcopy(model)
            self.ref_model.requires_grad_(False)
            self.ref_model.eval()
        vocab = self.lm.get_output_embeddings().weight.shape[0]
        self.action_size = int(action_size if action_size is not None else vocab)
        if self.action_size > vocab:
            raise ValueError(f"the env's action space ({self.action_size} tokens) is larger than the model's "
                             f"vocabulary ({vocab}); use the model's tokenizer for the env")
        hidden = self.lm.get_output_embeddings().weight.shape[1]
        self.value_head = nn.Linear(hidden, 1, dtype=torch.float32)
        nn.init.normal_(self.value_head.weight, std=value_head_std)
        nn.init.zeros_(self.value_head.bias)
        self.value_head.to(self.lm.device)
        params = inspect.signature(self.lm.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # transformers >= 5.? renamed it
        self.precision = "fp32"  # "bf16": LM forwards under bf16 autocast (textgym.agents.common.precision)
        self.eval()  # dropout off: rollouts and updates must see the same distribution

    # ----------------------------------------------------------------- building
    @classmethod
    def from_pretrained(cls, name_or_path: str, *, lora: Any = None, adapter: str | None = None,
                        action_size: int | None = None, dtype: Any = None, device: Any = None, seed: int = 0,
                        **kwargs: Any) -> LMActorCritic:
        """Load a model with :func:`textgym.models.load` and wrap it (arguments as for the constructor).

        Raises:
            OSError / FileNotFoundError: from :func:`textgym.models.load`.
        """
        from textgym.models import load

        model, tok = load(name_or_path, "causal", dtype=dtype, device=device, seed=seed)
        dt = str(dtype).replace("torch.", "") if dtype is not None else None
        source = {"name": str(name_or_path), "seed": int(seed), "dtype": dt}
        return cls(model, tok, lora=lora, adapter=adapter, action_size=action_size, source=source, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.value_head.weight.device

    def train(self, mode: bool = True) -> LMActorCritic:
        """Dropout stays off (the policy is always in eval mode); gradients still flow."""
        return super().train(False)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer updates: the LM (or the LoRA adapter) and the value head."""
        return [p for p in self.parameters() if p.requires_grad]

    def save(self, directory: str) -> None:
        """Write the policy folder atomically (layout: :mod:`textgym.agents.common.checkpoint`)."""
        from textgym.agents.common.checkpoint import atomic_directory, save_policy

        with atomic_directory(directory) as tmp:
            save_policy(self, tmp)

    @classmethod
    def load(cls, directory: str, device: Any = None) -> LMActorCritic:
        """Rebuild a policy written by :meth:`save` (or inside an algorithm checkpoint)."""
        from textgym.agents.common.checkpoint import load_policy

        return load_policy(directory, device)

    def reference_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The tensors the reference forward reads (for memory checks): base weights (+ reference adapter)."""
        if self.ref_model is not None:
            yield from self.ref_model.named_parameters()
            return
        for name, p in self.model.named_parameters():
            if "lora_" not in name or f".{REFERENCE_ADAPTER}." in name:
                yield name, p

    # ----------------------------------------------------------------- forward passes
    def run_lm(self, lm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               position_ids: torch.Tensor, keep: int, cache: Any = None, use_cache: bool = False,
               hidden: bool = True, inputs_embeds: torch.Tensor | None = None) -> Any:
        """One forward of ``lm`` (the policy's LM or its reference) keeping the logits of the last ``keep`` slots.

        ``cache`` continues a KV cache (:meth:`cache_of` of an earlier output); ``hidden`` returns the hidden states;
        ``inputs_embeds`` (with ``input_ids=None``) replaces the token embeddings.
        """
        from textgym.agents.common.precision import autocast

        kw = {self._cache_kw: cache} if cache is not None else {}
        if inputs_embeds is not None:
            kw["inputs_embeds"] = inputs_embeds
        with autocast(self.device, getattr(self, "precision", "fp32")):  # bf16: matmuls in bf16, weights fp32
            return lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      use_cache=use_cache, output_hidden_states=hidden, logits_to_keep=keep, **kw)

    def _values(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.value_head(hidden.float()).squeeze(-1)

    @staticmethod
    def cache_of(out: Any) -> Any:
        """The KV cache of a :meth:`run_lm` output (transformers' ``past_key_values`` or ``cache``)."""
        return getattr(out, "cache", None) if getattr(out, "cache", None) is not None else out.past_key_values

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> StepOutput:
        """Run the prompts (left-padded) at once and build the KV cache.

        Args:
            input_ids: ``(N, P)`` int64.
            attention_mask: ``(N, P)`` int64, 0 on left padding.

        Returns:
            :class:`StepOutput`: ``logits (N, V)`` for the first generated token,
            ``values (N,)`` = ``V(s_0)``, the cache.
        """
        out = self.run_lm(self.lm, input_ids, attention_mask, position_ids_from_mask(attention_mask), 1,
                        use_cache=True)
        logits = out.logits[:, -1, : self.action_size].float()  # (N, V), float32 also under bf16 autocast
        return StepOutput(logits, self._values(out.hidden_states[-1][:, -1]), self.cache_of(out))

    def decode_step(self, tokens: torch.Tensor, attention_mask: torch.Tensor, cache: Any) -> StepOutput:
        """One incremental forward: feed one token per row against the cache.

        Args:
            tokens: ``(N,)`` int64, the last sampled token (anything for finished rows).
            attention_mask: ``(N, L)`` int64, the mask of everything in the
                cache *plus* the new token (0 for rows that have finished).
            cache: from ``prefill`` / the previous ``decode_step`` (updated in place).

        Returns:
            :class:`StepOutput` for the state after ``tokens``.
        """
        pos = (attention_mask.long().sum(-1, keepdim=True) - 1).clamp(min=0)  # (N, 1) = cumsum(mask)[-1] - 1
        out = self.run_lm(self.lm, tokens[:, None], attention_mask, pos, 1, cache=cache, use_cache=True)
        logits = out.logits[:, -1, : self.action_size].float()
        return StepOutput(logits, self._values(out.hidden_states[-1][:, -1]), self.cache_of(out))

    def extend(self, tokens: torch.Tensor, attention_mask: torch.Tensor, cache: Any) -> StepOutput:
        """Feed a block of ``k`` tokens per row against the cache (a conversation's reply, prefilled incrementally).

        Rows with fewer new tokens are left-padded inside the block (mask 0), so
        the last column is every row's last real token.

        Args:
            tokens: ``(N, k)`` int64.
            attention_mask: ``(N, L + k)`` int64, the mask of everything in the cache plus the block.
            cache: from ``prefill`` / ``decode_step`` / ``extend`` (updated in place).

        Returns:
            :class:`StepOutput` for the state after each row's last real token.
        """
        k = tokens.shape[1]
        pos = position_ids_from_mask(attention_mask)[:, -k:]  # (N, k)
        out = self.run_lm(self.lm, tokens, attention_mask, pos, 1, cache=cache, use_cache=True)
        logits = out.logits[:, -1, : self.action_size].float()
        return StepOutput(logits, self._values(out.hidden_states[-1][:, -1]), self.cache_of(out))

    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_tokens: int,
              with_values: bool = True, trunk: torch.Tensor | None = None) -> ScoreOutput:
        """Logits and values for the last ``num_tokens`` tokens of full sequences (one forward, with grad).

        Args:
            input_ids: ``(N, S)`` int64, prompt (left-padded) then ``T = num_tokens`` response slots.
            attention_mask: ``(N, S)`` int64.
            num_tokens: ``T``.
            with_values: also compute values.
            trunk: ``(N, S, d)``, the input of layer :attr:`frozen_layers` for these sequences (from
                :meth:`reference_forward`): only the layers above it run.  ``None``: the whole model.

        Returns:
            :class:`ScoreOutput` with ``logits (N, T, V)`` and ``values (N, T + 1)``.

        Raises:
            ValueError: a trunk without frozen layers, or of the wrong shape.
        """
        pos = position_ids_from_mask(attention_mask)
        if trunk is not None:
            k = self.frozen_layers
            if k == 0 or trunk.shape[:2] != input_ids.shape:
                raise ValueError(f"score(trunk=...) needs a policy with frozen lower layers ({k}) and a trunk of shape "
                                 f"{tuple(input_ids.shape)} + (d,), got {tuple(trunk.shape)}")
            with layers_from(self.lm, k):
                out = self.run_lm(self.lm, None, attention_mask, pos, num_tokens + 1, hidden=with_values,
                                  inputs_embeds=trunk.to(self.device))
        else:
            out = self.run_lm(self.lm, input_ids, attention_mask, pos, num_tokens + 1, hidden=with_values)
        logits = out.logits[:, :-1, : self.action_size].float()  # (N, T, V): position P-1+t predicts token t
        values = self._values(out.hidden_states[-1][:, -(num_tokens + 1):]) if with_values else None
        return ScoreOutput(logits, values)

    def next_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> StepOutput:
        """Next-token logits and value at each row's last real token of an env observation (no cache).

        Args:
            input_ids: ``(N, L)`` int64, prompt left-padded, generated tokens after it, padding after them.
            attention_mask: ``(N, L)`` int64.

        Returns:
            :class:`StepOutput` with ``logits (N, V)``, ``values (N,)`` and ``cache=None``.
        """
        idx = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (attention_mask.bool() * idx).amax(-1)  # (N,) index of the last real token
        end = int(last.max()) + 1
        out = self.run_lm(self.lm, input_ids[:, :end], attention_mask[:, :end],
                        position_ids_from_mask(attention_mask[:, :end]), 0)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        logits = out.logits[rows, last, : self.action_size].float()
        return StepOutput(logits, self._values(out.hidden_states[-1][rows, last]), None)

    @property
    def reference_is_policy(self) -> bool:
        """The reference is the policy's own LM module (``reference=model``, e.g. the pipeline's evaluation of a
        starting model): the KL to it is 0 by construction, and rollouts skip the reference pass."""
        return self.ref_model is not None and self.ref_model is self.lm

    @contextmanager
    def reference_mode(self) -> Iterator[nn.Module]:
        """Context in which the yielded module computes the reference model (no grad)."""
        with torch.no_grad():
            if self.ref_model is not None:
                yield self.ref_model
            elif self.has_reference_adapter:
                active = self.model.active_adapter
                self.model.set_adapter(REFERENCE_ADAPTER, inference_mode=True)
                try:
                    yield self.lm
                finally:
                    self.model.set_adapter(active)
            else:
                with self.model.disable_adapter():
                    yield self.lm

    def reference_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_tokens: int) -> torch.Tensor:
        """Reference-model logits ``(N, T, V)`` for the last ``T = num_tokens`` tokens (no grad)."""
        with self.reference_mode() as ref:
            out = self.run_lm(ref, input_ids, attention_mask, position_ids_from_mask(attention_mask),
                            num_tokens + 1, hidden=False)
        return out.logits[:, :-1, : self.action_size].float()

    # ----------------------------------------------------------------- frozen lower layers (the trunk)
    @property
    def frozen_layers(self) -> int:
        """The lower decoder layers that carry no adapter and no trainable weight (:func:`.trunk.frozen_layer_count`):
        the policy, its reference and every update compute the same activations there.  0 without LoRA (full
        fine-tuning trains every layer), outside :data:`.trunk.TRUNK_MODEL_TYPES`, or when the first layer is adapted."""
        return frozen_layer_count(self.lm) if self.is_lora else 0

    def reference_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          num_tokens: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`reference_logits` and the trunk: ``(N, S, d)``, the input of layer :attr:`frozen_layers`, which
        the policy computes identically (``None`` when there are no frozen layers). No grad."""
        k = self.frozen_layers
        if k == 0:
            return self.reference_logits(input_ids, attention_mask, num_tokens), None
        with capture_layer_input(self.lm, k) as seen:
            logits = self.reference_logits(input_ids, attention_mask, num_tokens)
        return logits, seen[0]
