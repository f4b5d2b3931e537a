"""``MaskableTextGymLMPolicy``: :class:`TextGymLMPolicy`'s LM network under sb3-contrib's ``MaskablePPO``.

sb3-contrib's ``MaskablePPO`` (Huang & Ontañón 2022, "A Closer Look at Invalid
Action Masking in Policy Gradient Algorithms") reads each env's ``action_masks()``
(a textgym env built with ``allowed_token_ids``, :mod:`textgym.action_mask`) and
passes the masks to its policy, which must subclass sb3-contrib's
``MaskableActorCriticPolicy``::

    import gymnasium as gym
    from sb3_contrib import MaskablePPO
    from textgym.action_mask import token_ids_of
    from textgym.agents.algorithms.sb3_maskable_policy import MaskableTextGymLMPolicy
    from textgym.tokenizers import char_tokenizer

    env = gym.make("textgym/Sort-v0", allowed_token_ids=token_ids_of(char_tokenizer(), "0123456789"))
    model = MaskablePPO(MaskableTextGymLMPolicy, env, policy_kwargs={"model": "tiny-char"}, n_steps=64)
    model.learn(4096)

The network is :class:`~textgym.agents.algorithms.sb3_policy.TextGymLMPolicy`'s
(:class:`~textgym.agents.algorithms.sb3_policy.LMPolicyMixin`: ``(B, L)`` int64
token ids to the LM, never one-hot; the LM head's logits at the last real token;
the value head).  The masks act on the LM head's logits through sb3-contrib's
own ``MaskableCategoricalDistribution``: a masked logit becomes ``-1e8``, so
its probability is exactly 0 in float32, the log-probabilities are normalised
over the allowed tokens, and masked tokens add nothing to the entropy.  With
no mask (``action_masks=None``) or an all-``True`` one the outputs are
:class:`TextGymLMPolicy`'s.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    from sb3_contrib.common.maskable.distributions import MaskableDistribution
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
except ImportError as e:  # the optional extra
    raise ImportError("MaskablePPO needs sb3-contrib: pip install 'textgym[sb3]' (or pip install sb3-contrib)") from e

from textgym.agents.algorithms.sb3_policy import LMPolicyMixin

__all__ = ["MaskableTextGymLMPolicy"]


class MaskableTextGymLMPolicy(LMPolicyMixin, MaskableActorCriticPolicy):
    """sb3-contrib ``MaskableActorCriticPolicy`` on a causal LM; arguments as :class:`TextGymLMPolicy`.

    Build it through sb3-contrib (``MaskablePPO(MaskableTextGymLMPolicy, env, policy_kwargs={...})``).
    Every method takes sb3-contrib's ``action_masks``: ``(B, V)`` (or flat ``(B * V,)``) bool,
    ``True`` on allowed tokens, or ``None`` for no masking.

    Attributes:
        lm_policy: the :class:`~textgym.agents.common.policy.LMActorCritic` (LM, value head, reference).
    """

    def _distribution(self, logits: torch.Tensor, action_masks: np.ndarray | torch.Tensor | None) -> MaskableDistribution:
        dist = self.action_dist.proba_distribution(action_logits=logits)
        if action_masks is not None:
            dist.apply_masking(action_masks)  # masked logits -> -1e8 (sb3-contrib's MaskableCategorical)
        return dist

    def forward(self, obs: dict[str, torch.Tensor], deterministic: bool = False,
                action_masks: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or arg-max) allowed tokens: ``(actions (B,) int64, values (B, 1), log_prob (B,))``."""
        logits, values = self.logits_and_values(obs)
        dist = self._distribution(logits, action_masks)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, values, dist.log_prob(actions)

    def evaluate_actions(self, obs: dict[str, torch.Tensor], actions: torch.Tensor,
                         action_masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For MaskablePPO's update: ``(values (B, 1), log pi(a|s) (B,), entropy (B,))`` under the masks, with grad."""
        logits, values = self.logits_and_values(obs)
        dist = self._distribution(logits, action_masks)
        return values, dist.log_prob(actions.reshape(-1).long()), dist.entropy()

    def get_distribution(self, obs: dict[str, torch.Tensor],  # type: ignore[override]
                         action_masks: np.ndarray | None = None) -> MaskableDistribution:
        """sb3-contrib's ``MaskableCategoricalDistribution`` over the next token."""
        return self._distribution(self.logits_and_values(obs)[0], action_masks)

    def predict_values(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``V(s)``: ``(B, 1)`` float32."""
        return self.logits_and_values(obs)[1]
