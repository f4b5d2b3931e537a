"""Advantage actor-critic (A2C), token-level, for language models.

The synchronous variant of A3C (Mnih et al., "Asynchronous Methods for Deep
Reinforcement Learning", ICML 2016, Algorithm S3): the per-token rewards are
PPO's (``r_t = env_reward_t - kl_coef * KL_t``), the critic is the policy's value
head, and the advantage is either GAE(gamma, lambda) (Schulman et al. 2016) or
the n-step bootstrapped return minus the value::

    R_t = sum_{k < m} gamma^k r_{t+k} + gamma^m V(s_{t+m}),  m = min(n, L - t),   A_t = R_t - V(s_t).

One gradient step per rollout on

    - A_t log pi(a_t | s_t)  +  vf_coef * 0.5 (V(s_t) - R_t)^2  -  ent_coef * H(pi(. | s_t)),

token-averaged, with no probability ratio and no clipping.  Read
:meth:`A2C.update` top to bottom: its numbered steps are the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from textgym.agents.common.base import KLPenaltyConfig, OnPolicyAlgorithm
from textgym.agents.functional import compute_gae, explained_variance, nstep_returns
from textgym.agents.common.distributed import masked_whiten  # global over ranks
from textgym.agents.common.rollout import RolloutBatch
from textgym.agents.common.updates import actor_critic_step, loss_metrics, optimizer_metrics, penalized_rewards
from textgym.agents.common.updates import rollout_metrics, update_kl_coef

__all__ = ["A2C", "A2CConfig"]


@dataclass
class A2CConfig(KLPenaltyConfig):
    """A2C settings (``kl_coef``: :class:`KLPenaltyConfig`; the shared ones: :class:`OnPolicyConfig`).

    Attributes:
        gamma: discount per token, in ``[0, 1]``.
        lam: GAE lambda (used when ``n_steps`` is ``None``).
        n_steps: ``None`` for GAE(lambda) targets, or ``n >= 1`` for n-step bootstrapped returns.
        vf_coef: weight of the value loss.
        ent_coef: weight of the entropy bonus.
        normalize_advantage: whiten the advantages over the batch's real tokens.
        bootstrap_truncated: bootstrap with ``V(s_T)`` after truncated episodes (see
            :class:`~textgym.agents.algorithms.ppo.PPOConfig`: textgym envs pay the score on the
            truncating step, so the default is ``False``).
        micro_batch_size: episodes per forward/backward of the single gradient step (``None``: all at once;
            ``"auto"``, the default: as many as fit ``micro_batch_memory_mb``).
    """

    gamma: float = 1.0
    lam: float = 1.0
    n_steps: int | None = None
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    normalize_advantage: bool = False
    bootstrap_truncated: bool = False
    micro_batch_size: int | str | None = "auto"

    size_fields = ("n_steps", "micro_batch_size")
    unit_fields = ("gamma", "lam")


class A2C(OnPolicyAlgorithm):
    """Token-level A2C: value head, GAE or n-step targets, one gradient step per rollout (see the module docstring).

    Args:
        policy: an :class:`LMActorCritic` or a model name (``config.lora`` / ``config.adapter`` apply).
        env: a ``TextGenVectorEnv`` with ``autoreset_mode="Disabled"``.
        config: :class:`A2CConfig`.
    """

    config_class = A2CConfig
    config: A2CConfig

    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """One A2C step on a batch of finished episodes; returns metrics."""
        cfg = self.config
        # 1. rollout: `batch` was collected by OnPolicyAlgorithm.collect_rollouts (N episodes, T slots)
        mask = batch.mask  # (N, T) bool, real tokens

        # 2. rewards: -kl_coef * KL_t on every real token, plus the env's reward (the score on the last token)
        rewards, kl, kl_coef = penalized_rewards(self, batch)  # (N, T) each, 0 on padding

        # 3. targets and advantages: GAE(lambda), or n-step returns R_t and A_t = R_t - V(s_t)
        bootstrap = batch.bootstrap_values if cfg.bootstrap_truncated else torch.zeros_like(batch.bootstrap_values)
        if cfg.n_steps is None:
            advantages, returns = compute_gae(rewards, batch.values, mask, bootstrap, cfg.gamma, cfg.lam)
        else:
            returns = nstep_returns(rewards, batch.values, mask, bootstrap, cfg.gamma, cfg.n_steps)
            advantages = torch.where(mask, returns - batch.values, 0.0)
        if cfg.normalize_advantage:
            advantages = masked_whiten(advantages, mask)

        # 4. one gradient step on the whole batch (micro-batched), token mean
        avg = actor_critic_step(self, batch, advantages, returns)

        # 5. KL coefficient: the adaptive controller sees the KL that was applied (per episode)
        update_kl_coef(self, kl)

        # 6. metrics
        return {
            **rollout_metrics(batch, kl, kl_coef, cfg.kl_estimator),
            **loss_metrics(avg),
            "stats/explained_variance": explained_variance(batch.values, returns, mask),
            **optimizer_metrics(avg),
        }
