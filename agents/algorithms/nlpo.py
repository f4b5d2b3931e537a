"""Natural Language Policy Optimization (NLPO; Ramamurthy et al., "Is Reinforcement Learning (Not) for Natural
Language Processing: Benchmarks, Baselines, and Building Blocks for Natural Language Policy Optimization",
ICLR 2023, section 4 and Algorithm 1).

NLPO is PPO (see :mod:`textgym.agents.algorithms.ppo`) whose action space at each step is
masked to the top-p set of a *masking policy* ``pi_psi``, a lagged copy of the
policy refreshed every ``mask_update_interval`` iterations::

    K_t = top_p(pi_psi(. | s_t), mask_top_p),      pi_mask(a | s_t) = pi(a | s_t) / pi(K_t | s_t)  for a in K_t.

The mask applies everywhere the policy's distribution is used, through the
collector's :class:`~textgym.agents.common.rollout.LogitsProcessor`: sampling in the
rollout (with the masking policy's own KV cache, one incremental forward per
token), the log-probabilities of the scoring pass and of the PPO loss (renormalised
over ``K_t``; the reference is renormalised over the same set, as with top-p
sampling), evaluation, ``generate`` and ``predict``.  The masking policy's set
is computed from its raw logits (temperature 1); the policy's own
temperature / top-k / top-p apply after the mask.  In the scoring pass and the
update the set comes from one full forward of the masking policy and always
contains the token that was sampled, so a float-level difference between its
cached and full forwards can never make a taken action impossible.

The masking policy holds what produces the policy's logits: for a LoRA policy
a third adapter (``"nlpo_mask"``) beside the trained one and the reference, for
a fully fine-tuned policy a frozen deep copy of the LM.  (The value head plays
no part in the mask and is not copied.)  It is checkpointed with the algorithm
(``extra_state``).  Read :meth:`NLPO.update`: it is PPO's update plus step 7.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from textgym.agents.functional import masked_mean, top_p_mask
from textgym.agents.common.policy import LMActorCritic, position_ids_from_mask
from textgym.agents.algorithms.ppo import PPO, PPOConfig
from textgym.agents.common.rollout import LogitsProcessor, RolloutBatch

__all__ = ["NLPO", "NLPOConfig", "MaskingPolicy", "MASK_ADAPTER"]

#: name of the masking policy's adapter inside a LoRA policy's peft model
MASK_ADAPTER = "nlpo_mask"


@dataclass
class NLPOConfig(PPOConfig):
    """NLPO settings: PPO's (:class:`~textgym.agents.algorithms.ppo.PPOConfig`) plus the action mask.

    Attributes:
        mask_top_p: probability mass of the masking policy's top-p set, in ``(0, 1]``
            (1.0 keeps every token with a finite logit: plain PPO).
        mask_update_interval: copy the policy into the masking policy after every this
            many iterations (>= 1).
    """

    mask_top_p: float = 0.9
    mask_update_interval: int = 5

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.mask_top_p <= 1.0:
            raise ValueError(f"mask_top_p must be in (0, 1], got {self.mask_top_p}")
        if isinstance(self.mask_update_interval, bool) or not isinstance(self.mask_update_interval, int) \
                or self.mask_update_interval < 1:
            raise ValueError(f"mask_update_interval must be an integer >= 1, got {self.mask_update_interval!r}")


class MaskingPolicy(LogitsProcessor):
    """A lagged copy of an :class:`LMActorCritic`'s LM that masks the policy's logits to its top-p set.

    Args:
        policy: the policy being trained (LoRA or full fine-tuning).
        top_p: mass of the kept set.

    Raises:
        TypeError: ``policy`` is not an :class:`LMActorCritic`.
    """

    def __init__(self, policy: LMActorCritic, top_p: float):
        if not isinstance(policy, LMActorCritic):
            raise TypeError(f"NLPO's masking policy copies an LMActorCritic's LM, got {type(policy).__name__}")
        self.policy = policy
        self.top_p = float(top_p)
        self.lm: nn.Module | None = None
        if policy.is_lora:  # a frozen third adapter beside the trained one (and the reference)
            peft_model = policy.model
            active = peft_model.active_adapter
            peft_model.add_adapter(MASK_ADAPTER, copy.deepcopy(peft_model.peft_config[active]))
            peft_model.set_adapter(active)  # only the trained adapter requires grad
        else:
            self.lm = copy.deepcopy(policy.lm)
            self.lm.requires_grad_(False)
            self.lm.eval()
        self.refresh()
        self._cache: Any = None
        self._keep: torch.Tensor | None = None  # (N, V) the current step's kept set
        self._kept_counts: list[torch.Tensor] = []
        self.last_kept_counts = torch.zeros(0, 0)  # (N, steps) kept-set sizes of the last rollout

    # ------------------------------------------------------------------ the lagged weights
    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the policy's current LM weights (its adapter, for LoRA) into the masking policy."""
        if self.lm is None:
            self.load_state_dict(self._policy_adapter_state())
        else:
            self.lm.load_state_dict(self.policy.lm.state_dict())

    def _policy_adapter_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        model = self.policy.model
        return {k: v.detach().clone() for k, v in
                get_peft_model_state_dict(model, adapter_name=model.active_adapter).items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The masking policy's weights (the adapter's for LoRA, else the LM's), on the CPU."""
        if self.lm is not None:
            return {k: v.detach().cpu().clone() for k, v in self.lm.state_dict().items()}
        from peft import get_peft_model_state_dict

        return {k: v.detach().cpu().clone() for k, v in
                get_peft_model_state_dict(self.policy.model, adapter_name=MASK_ADAPTER).items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict` (or a copy of the policy's adapter)."""
        if self.lm is not None:
            self.lm.load_state_dict(state)
            return
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.policy.model, state, adapter_name=MASK_ADAPTER)

    @contextmanager
    def _module(self) -> Iterator[nn.Module]:
        """The module that computes the masking policy's logits (no grad)."""
        with torch.no_grad():
            if self.lm is not None:
                yield self.lm
                return
            model = self.policy.model
            active = model.active_adapter
            model.set_adapter(MASK_ADAPTER, inference_mode=True)
            try:
                yield self.policy.lm
            finally:
                model.set_adapter(active)

    def _logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                keep: int, cache: Any = None, use_cache: bool = False) -> tuple[torch.Tensor, Any]:
        """Raw logits ``(N, keep, V)`` of the masking policy (``keep=0``: every position) and, with
        ``use_cache``, its KV cache."""
        with self._module() as lm:
            out = self.policy.run_lm(lm, input_ids, attention_mask, position_ids, keep, cache=cache,
                                     use_cache=use_cache, hidden=False)
        new_cache = self.policy.cache_of(out) if use_cache else None
        return out.logits[..., : self.policy.action_size], new_cache

    def _set_keep(self, next_logits: torch.Tensor) -> None:
        self._keep = top_p_mask(next_logits.float(), self.top_p)  # (N, V)
        self._kept_counts.append(self._keep.sum(-1).cpu())

    # ------------------------------------------------------------------ LogitsProcessor
    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Prefill the masking policy on the prompts; the first step's set."""
        self._kept_counts = []
        logits, self._cache = self._logits(input_ids, attention_mask, position_ids_from_mask(attention_mask), 1,
                                           use_cache=True)
        self._set_keep(logits[:, -1])

    def step(self, logits: torch.Tensor) -> torch.Tensor:
        """``-inf`` outside the current step's kept set."""
        if self._keep is None:
            raise RuntimeError("MaskingPolicy.step before start: the collector must call start() after the reset")
        return logits.masked_fill(~self._keep, float("-inf"))

    def advance(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """One cached forward of the masking policy on the sampled tokens; the next step's set."""
        pos = (attention_mask.long().sum(-1, keepdim=True) - 1).clamp(min=0)  # as LMActorCritic.decode_step
        logits, self._cache = self._logits(tokens[:, None], attention_mask, pos, 1, cache=self._cache, use_cache=True)
        self._set_keep(logits[:, -1])

    def end(self) -> None:
        """Drop the cache; keep the kept-set sizes ``(N, steps)`` in ``last_kept_counts``."""
        self.last_kept_counts = torch.stack(self._kept_counts, 1) if self._kept_counts else torch.zeros(0, 0)
        self._cache, self._keep, self._kept_counts = None, None, []

    def sequence(self, logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 actions: torch.Tensor) -> torch.Tensor:
        """Mask the last ``t`` positions with the masking policy's top-p sets (plus each taken token)."""
        t = logits.shape[1]
        mask_logits, _ = self._logits(input_ids, attention_mask, position_ids_from_mask(attention_mask), t + 1)
        keep = top_p_mask(mask_logits[:, :-1].float(), self.top_p)  # (n, t, V): position P-1+j predicts token j
        keep = keep.scatter(-1, actions[..., None], True)
        return logits.masked_fill(~keep, float("-inf"))

    def next_token(self, logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mask next-token logits of env observations (prompt, response, right padding) with the top-p set."""
        idx = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (attention_mask.bool() * idx).amax(-1)  # (N,) each row's last real token
        end = int(last.max()) + 1
        am = attention_mask[:, :end]
        mask_logits, _ = self._logits(input_ids[:, :end], am, position_ids_from_mask(am), 0)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        keep = top_p_mask(mask_logits[rows, last].float(), self.top_p)
        return logits.masked_fill(~keep, float("-inf"))


class NLPO(PPO):
    """PPO with NLPO's top-p action mask from a lagged masking policy (see the module docstring).

    Args:
        policy: an :class:`LMActorCritic` (LoRA or full) or a model name.
        env: a ``TextGenVectorEnv`` with ``autoreset_mode="Disabled"``.
        config: :class:`NLPOConfig`.

    Raises:
        TypeError: the policy is not an :class:`LMActorCritic`.
    """

    supports_fsdp = False  # the masking policy is a copy of the LM, which FSDP's sharded modules cannot make

    config_class = NLPOConfig
    config: NLPOConfig

    @property
    def masking_policy(self) -> MaskingPolicy:
        """The lagged masking policy (the collector's logits processor)."""
        return self.collector.logits_processor

    def make_logits_processor(self) -> MaskingPolicy:
        """The masking policy, a copy of the policy as it is at construction."""
        return MaskingPolicy(self.policy, self.config.mask_top_p)

    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """Steps 1-6 are PPO's (:meth:`PPO.update`) on the masked distribution; step 7 refreshes the mask."""
        cfg = self.config
        # 1-6. PPO: rollout (sampled under the mask), KL-penalised rewards, GAE, clipped updates, KL controller
        metrics = super().update(batch)

        # 7. masking policy: copy the policy every mask_update_interval iterations (this update is number iteration+1)
        refreshed = (self.iteration + 1) % cfg.mask_update_interval == 0
        if refreshed:
            self.masking_policy.refresh()
        counts = self.masking_policy.last_kept_counts  # (N_last, steps) of the last collected env batch
        real = batch.mask[-counts.shape[0]:, : counts.shape[1]] if counts.numel() else batch.mask[:0, :0]
        metrics.update({"stats/mask_kept_tokens": float(masked_mean(counts.float(), real)),
                        "stats/mask_refreshed": float(refreshed)})
        return metrics

    def extra_state(self) -> dict[str, Any]:
        return {"masking_policy": self.masking_policy.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.masking_policy.load_state_dict(state["masking_policy"])
