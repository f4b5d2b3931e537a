"""sb3-contrib's MaskablePPO behind textgym's algorithm interface (registry name ``"sb3-maskable-ppo"``).

MaskablePPO (sb3-contrib; Huang & Ontañón 2022, "A Closer Look at Invalid
Action Masking in Policy Gradient Algorithms") is PPO whose policy samples only
valid actions: before every step it reads each env's ``action_masks()`` and
the masked logits get probability 0, in the rollout and in the update.  On a
textgym env built with ``allowed_token_ids`` (:mod:`textgym.action_mask`) the
policy then never emits a disallowed token, where plain PPO (``"sb3-ppo"``)
emits them and is paid the env's ``invalid_action_penalty``.  On an
unrestricted env the masks are all ``True`` and MaskablePPO is PPO.

:class:`SB3MaskablePPO` is :class:`~textgym.agents.algorithms.sb3_algos.SB3PPO`
with sb3-contrib's ``MaskablePPO`` (unmodified) and
:class:`~textgym.agents.algorithms.sb3_maskable_policy.MaskableTextGymLMPolicy`;
``evaluate`` and ``predict`` apply the same mask (the env's ``allowed_tokens``)
with textgym's KV-cached collector
(:class:`~textgym.agents.common.allowed_tokens.AllowedTokensProcessor`).

Needs the optional extra ``sb3`` (``pip install 'textgym[sb3]'``: sb3-contrib).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    from sb3_contrib import MaskablePPO
except ImportError as e:  # the optional extra
    raise ImportError("sb3-contrib is not installed (pip install 'textgym[sb3]')") from e

from textgym.agents.algorithms.sb3_algos import SB3Algorithm, SB3PPOConfig
from textgym.agents.algorithms.sb3_maskable_policy import MaskableTextGymLMPolicy
from textgym.agents.common.allowed_tokens import AllowedTokensProcessor, allowed_tokens_processor
from textgym.agents.common.sampling import SamplingParams

__all__ = ["SB3MaskablePPOConfig", "SB3MaskablePPO"]


@dataclass
class SB3MaskablePPOConfig(SB3PPOConfig):
    """:class:`~textgym.agents.algorithms.sb3_algos.SB3PPOConfig`: MaskablePPO takes PPO's settings.

    The masks come from the env (``allowed_token_ids``), not from the config.
    """


class SB3MaskablePPO(SB3Algorithm):
    """sb3-contrib's MaskablePPO on :class:`MaskableTextGymLMPolicy` (registry name ``"sb3-maskable-ppo"``).

    Arguments, attributes and checkpoints as :class:`~textgym.agents.algorithms.sb3_algos.SB3Algorithm`
    (``model`` is the ``sb3_contrib.MaskablePPO``); the env's ``allowed_token_ids`` reach
    the SB3 envs, whose ``action_masks()`` MaskablePPO reads at every step.
    """

    config_class = SB3MaskablePPOConfig
    sb3_class = MaskablePPO
    policy_class = MaskableTextGymLMPolicy

    @staticmethod
    def eval_logits_processor(env: Any) -> AllowedTokensProcessor | None:
        """The mask evaluations sample under: ``env``'s allowed tokens (``None`` for an unrestricted env).

        ``evaluate`` uses it, and so does the ``textgym train`` pipeline's evaluation of this algorithm.
        """
        return allowed_tokens_processor(env)

    def evaluate(self, env: Any, n_episodes: int = 64, *, greedy: bool = False,
                 seed: int | None = None) -> dict[str, float]:
        """As :meth:`SB3Algorithm.evaluate`, sampling only ``env``'s allowed tokens (its ``allowed_token_ids``).

        The KL to the reference is then to the reference renormalised over the same tokens.
        """
        from textgym.agents.common.evaluation import evaluate_episodes

        return evaluate_episodes(self.policy.lm_policy, env, SamplingParams(greedy=greedy), n_episodes,
                                 seed=self.config.seed + 1 if seed is None else seed,
                                 logits_processor=self.eval_logits_processor(env))

    def predict(self, observation: dict[str, np.ndarray], deterministic: bool = False,
                action_masks: np.ndarray | None = None) -> tuple[np.ndarray, None]:
        """Next allowed token for each row of an env observation (one full forward, no cache).

        Args:
            observation: ``{"input_ids": (N, L), "attention_mask": (N, L)}`` (or one row ``(L,)``).
            deterministic: arg-max instead of sampling.
            action_masks: ``(N, V)`` or ``(V,)`` bool (default: the training env's allowed tokens).

        Returns:
            ``(actions (N,) int64, None)`` (a scalar array for a single row).
        """
        if action_masks is None:
            ids = np.asarray(observation["input_ids"])
            n = 1 if ids.ndim == 1 else ids.shape[0]
            action_masks = np.repeat(self.env.action_masks()[:1], n, axis=0)  # (n, V)
        actions, _ = self.model.predict(observation, deterministic=deterministic, action_masks=action_masks)
        return actions, None
