"""REINFORCE with a baseline (Williams 1992), token-level, for language models.

Each generated token ``a_t`` is an action; its return is the discounted sum of
the KL-penalised rewards that follow it (the same per-token rewards as PPO)::

    r_t = env_reward_t - kl_coef * KL_t,        G_t = sum_{k >= t} gamma^(k - t) r_k,

and the loss is ``-(G_t - b_t) log pi(a_t | s_t)`` averaged over the batch's
real tokens (Williams, "Simple Statistical Gradient-Following Algorithms for
Connectionist Reinforcement Learning", Machine Learning 8, 1992, eq. 11 with a
reinforcement baseline).  The baseline ``b_t`` is either

* ``"value"``: the value head's ``V(s_t)`` at rollout time, trained by a
  squared error to ``G_t`` (weighted by ``vf_coef``), or
* ``"moving_average"``: an exponential moving average of past batches' mean
  episode return ``G_0`` (bias-corrected as in Adam; 0 before the first batch),
  the same for every token.  It is checkpointed (``extra_state``), or
* ``"batch_norm"``: no baseline term, the returns whitened over every real token
  of the global batch (all processes), ``A_t = (G_t - mean) / std``: REINFORCE++
  (registered as ``reinforce++``, :mod:`textgym.agents.algorithms.reinforce_pp`).

One gradient step per rollout (micro-batched); no ratio, no clipping.
Read :meth:`REINFORCE.update` top to bottom: its numbered steps are the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from textgym.agents.common import distributed
from textgym.agents.common.base import KLPenaltyConfig, OnPolicyAlgorithm
from textgym.agents.functional import discounted_returns
from textgym.agents.common.rollout import RolloutBatch
from textgym.agents.common.updates import actor_critic_step, loss_metrics, optimizer_metrics, penalized_rewards
from textgym.agents.common.updates import rollout_metrics, update_kl_coef

__all__ = ["REINFORCE", "REINFORCEConfig", "BASELINES"]


@dataclass
class REINFORCEConfig(KLPenaltyConfig):
    """REINFORCE settings (``kl_coef``: :class:`KLPenaltyConfig`; the shared ones: :class:`OnPolicyConfig`).

    Attributes:
        gamma: discount per token, in ``[0, 1]``.
        baseline: ``"value"`` (learned value head), ``"moving_average"`` (EMA of episode returns) or
            ``"batch_norm"`` (returns whitened over the global batch, REINFORCE++).
        baseline_momentum: EMA momentum ``m`` of the moving-average baseline, in ``[0, 1)``:
            ``ema <- m * ema + (1 - m) * mean(G_0)``.
        vf_coef: weight of the value loss (``baseline="value"``).
        ent_coef: weight of the entropy bonus.
        micro_batch_size: episodes per forward/backward of the single gradient step (``None``: all at once;
            ``"auto"``, the default: as many as fit ``micro_batch_memory_mb``).
    """

    gamma: float = 1.0
    baseline: str = "value"
    baseline_momentum: float = 0.9
    vf_coef: float = 0.1
    ent_coef: float = 0.0
    micro_batch_size: int | str | None = "auto"

    size_fields = ("micro_batch_size",)
    unit_fields = ("gamma",)
    choice_fields = {"baseline": ("value", "moving_average", "batch_norm")}

    def one_step_per_rollout(self) -> bool:
        """Always (one gradient step per rollout): ``rescore_policy`` defaults to off."""
        return True

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.baseline_momentum < 1.0:
            raise ValueError(f"baseline_momentum must be in [0, 1), got {self.baseline_momentum}")


#: accepted values of ``REINFORCEConfig.baseline``
BASELINES = REINFORCEConfig.choice_fields["baseline"]


class REINFORCE(OnPolicyAlgorithm):
    """Token-level REINFORCE with a learned or moving-average baseline (see the module docstring).

    Args:
        policy: an :class:`LMActorCritic` or a model name (``config.lora`` / ``config.adapter`` apply).
        env: a ``TextGenVectorEnv`` with ``autoreset_mode="Disabled"``.
        config: :class:`REINFORCEConfig`.

    Example::

        algo = REINFORCE("tiny-char", env, REINFORCEConfig(learning_rate=3e-3, baseline="moving_average"))
        algo.learn(iterations=50)
    """

    config_class = REINFORCEConfig
    config: REINFORCEConfig

    def __init__(self, policy: Any, env: Any, config: REINFORCEConfig | None = None):
        super().__init__(policy, env, config)
        self.baseline_ema = 0.0  # the EMA before bias correction
        self.baseline_updates = 0  # batches it has seen

    @property
    def moving_average(self) -> float:
        """The bias-corrected moving-average baseline ``ema / (1 - m^k)`` (0 before the first batch)."""
        if self.baseline_updates == 0:
            return 0.0
        return self.baseline_ema / (1.0 - self.config.baseline_momentum ** self.baseline_updates)

    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """One REINFORCE step on a batch of finished episodes; returns metrics."""
        cfg = self.config
        # 1. rollout: `batch` was collected by OnPolicyAlgorithm.collect_rollouts (N episodes, T slots)
        mask = batch.mask  # (N, T) bool, real tokens

        # 2. rewards: -kl_coef * KL_t on every real token, plus the env's reward (the score on the last token)
        rewards, kl, kl_coef = penalized_rewards(self, batch)  # (N, T) each, 0 on padding

        # 3. returns: G_t = sum_{k >= t} gamma^(k-t) r_k
        returns = discounted_returns(rewards, mask, cfg.gamma)  # (N, T)

        # 4. baseline and advantages: b_t = V(s_t) (rollout values) or the moving average of past batches;
        #    "batch_norm": A_t = (G_t - mean) / std over every real token of every process's batch
        use_value = cfg.baseline == "value"
        baseline = batch.values if use_value else torch.full_like(returns, self.moving_average)
        advantages = torch.where(mask, returns - baseline, 0.0)
        if cfg.baseline == "batch_norm":
            advantages = distributed.masked_whiten(returns, mask)  # (N, T), 0 on padding

        # 5. one gradient step: -(G_t - b_t) log pi(a_t|s_t) (+ value loss), token mean over the batch
        avg = actor_critic_step(self, batch, advantages, returns if use_value else None)

        # 6. moving-average baseline: fold in this batch's mean episode return (after using the old one)
        episode_return = float(returns[:, 0].mean())
        self.baseline_ema = cfg.baseline_momentum * self.baseline_ema + (1 - cfg.baseline_momentum) * episode_return
        self.baseline_updates += 1

        # 7. KL coefficient: the adaptive controller sees the KL that was applied (per episode)
        update_kl_coef(self, kl)

        # 8. metrics
        return {
            **rollout_metrics(batch, kl, kl_coef, cfg.kl_estimator),
            **loss_metrics(avg),
            "stats/return": episode_return,
            "stats/baseline": float(baseline[mask].mean()) if bool(mask.any()) else 0.0,
            "stats/advantage_std": float(advantages[mask].std(unbiased=False)) if bool(mask.any()) else 0.0,
            **optimizer_metrics(avg),
        }

    def extra_state(self) -> dict[str, Any]:
        return {"baseline_ema": self.baseline_ema, "baseline_updates": self.baseline_updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.baseline_ema = float(state["baseline_ema"])
        self.baseline_updates = int(state["baseline_updates"])
