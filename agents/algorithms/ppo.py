"""Token-level PPO for language models (RLHF-style), on textgym's vector envs.

Each generated token is an action; the per-token reward is

    r_t = env_reward_t - kl_coef * KL_t        on every real token t,

where ``env_reward_t`` is the episode's score on its last real token (the
stop token included) for sparse rewards (per-step increments for dense ones),
``KL_t`` is a per-token estimate of ``KL(pi || pi_ref)`` (``config.kl_estimator``)
and ``kl_coef`` is fixed or adapted (Ziegler et al. 2019).  Advantages come from
GAE (Schulman et al. 2016), optionally with a bootstrap ``V(s_T)`` on truncated episodes
only; the losses are PPO's clipped surrogate and clipped value loss (Schulman
et al. 2017) plus an entropy bonus, token-averaged over each minibatch.

Read :meth:`PPO.update` top to bottom: its numbered steps are the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from textgym.agents.common.base import KLPenaltyConfig, OnPolicyAlgorithm
from textgym.agents.functional import clipped_policy_loss, clipped_value_loss, compute_gae, explained_variance
from textgym.agents.common.distributed import masked_whiten  # global over ranks
from textgym.agents.common.rollout import RolloutBatch
from textgym.agents.common.updates import entropy_sum, loss_metrics, optimize_epochs, optimizer_metrics, optimizer_step
from textgym.agents.common.updates import penalized_rewards, policy_forward, rollout_metrics, update_kl_coef

__all__ = ["PPO", "PPOConfig"]


@dataclass
class PPOConfig(KLPenaltyConfig):
    """PPO settings (``kl_coef``: :class:`KLPenaltyConfig`; the shared ones: :class:`OnPolicyConfig`).

    Attributes:
        n_epochs: passes over each rollout batch.
        minibatch_size: episodes per optimizer step (``None``: the whole batch).
        micro_batch_size: episodes per forward/backward; gradients are accumulated
            over a minibatch's micro-batches (``None``: the whole minibatch at once; ``"auto"``, the
            default: as many as fit ``micro_batch_memory_mb``, see :mod:`textgym.agents.common.micro_batch`).
        gamma: discount per token.
        lam: GAE lambda.
        clip_range: PPO ratio clip ``eps``.
        clip_range_value: value clip around the rollout values (``None``: no clipping).
        vf_coef: weight of the value loss.
        ent_coef: weight of the entropy bonus (entropy of the sampling distribution).
        whiten_advantages: normalise advantages to mean 0, std 1 over the batch's real tokens.
        target_kl: stop the epochs early once a minibatch's ``approx_kl`` exceeds it (``None``: never).
        bootstrap_truncated: add ``V(s_T)`` after the last token of truncated episodes in GAE.
            Default ``False``: textgym envs pay the final score on the truncating step, so
            nothing follows it and a bootstrap would count the future twice (and teach the
            policy to avoid EOS).  Set ``True`` for an env whose truncation is a pure time limit.
    """

    n_epochs: int = 4
    minibatch_size: int | None = None
    micro_batch_size: int | str | None = "auto"
    gamma: float = 1.0
    lam: float = 0.95
    clip_range: float = 0.2
    clip_range_value: float | None = 0.2
    vf_coef: float = 0.1
    ent_coef: float = 0.0
    whiten_advantages: bool = True
    target_kl: float | None = None
    bootstrap_truncated: bool = False

    size_fields = ("minibatch_size", "micro_batch_size")

    def __post_init__(self):
        super().__post_init__()
        if self.n_epochs < 1:
            raise ValueError(f"n_epochs must be >= 1, got {self.n_epochs}")


class PPO(OnPolicyAlgorithm):
    """Token-level PPO with a KL penalty to a frozen reference.

    Args:
        policy: an :class:`LMActorCritic` or a model name (``config.lora`` / ``config.adapter`` apply).
        env: a ``TextGenVectorEnv`` with ``autoreset_mode="Disabled"``; ``env.num_envs`` episodes per rollout.
        config: :class:`PPOConfig`.

    Example::

        env = gym.make_vec("textgym/TokenCount-v0", num_envs=32, vectorization_mode="vector_entry_point",
                           autoreset_mode="Disabled")
        algo = PPO("tiny-char", env, PPOConfig(learning_rate=1e-3))
        algo.learn(iterations=100)
    """

    config_class = PPOConfig
    config: PPOConfig

    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """One PPO update on a batch of finished episodes; returns metrics.

        KL-penalised rewards, GAE, then epochs of clipped-surrogate minibatch steps (see the module docstring).
        """
        cfg = self.config
        # 1. rollout: `batch` was collected by OnPolicyAlgorithm.collect_rollouts (N episodes, T slots)
        mask = batch.mask  # (N, T) bool, real tokens
        n = mask.shape[0]

        # 2. rewards: -kl_coef * KL_t on every real token, plus the env's reward (the score on the last token)
        rewards, kl, kl_coef = penalized_rewards(self, batch)  # (N, T) each, 0 on padding

        # 3. advantages: GAE (bootstrapped with V(s_T) on truncation only if configured), then whitened
        bootstrap = batch.bootstrap_values if cfg.bootstrap_truncated else torch.zeros_like(batch.bootstrap_values)
        advantages, returns = compute_gae(rewards, batch.values, mask, bootstrap, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = masked_whiten(advantages, mask)

        # 4. optimise: epochs x minibatches (each one optimizer step, gradients accumulated over micro-batches)
        avg, early_stop = optimize_epochs(
            self, batch, lambda rows: self.optimize_minibatch(batch, advantages, returns, rows))

        # 5. KL coefficient: the adaptive controller sees the KL that was applied (per episode)
        update_kl_coef(self, kl)

        # 6. metrics
        return {
            **rollout_metrics(batch, kl, kl_coef, cfg.kl_estimator),
            "stats/approx_kl": avg["approx_kl"],
            "stats/clipfrac": avg["clipfrac"],
            "stats/value_clipfrac": avg["value_clipfrac"],
            **loss_metrics(avg),
            **optimizer_metrics(avg),
            "stats/epochs": avg["steps"] * (cfg.minibatch_size or n) / n if n else 0.0,
            "stats/early_stopped": float(early_stop),
            "stats/explained_variance": explained_variance(batch.values, returns, mask),
        }

    def optimize_minibatch(self, batch: RolloutBatch, advantages: torch.Tensor, returns: torch.Tensor,
                           rows: torch.Tensor) -> dict[str, float]:
        """One optimizer step on ``rows`` of the batch, with gradient accumulation and safety checks.

        The loss of each micro-batch is its token *sum* divided by the real-token
        count of the whole minibatch, so the accumulated gradient equals the
        full-minibatch token-mean gradient.  A non-finite loss or gradient norm
        skips the step (weights and optimizer state untouched; ``skipped = 1``);
        see :func:`textgym.agents.common.updates.optimize_rows`.

        Returns:
            Per-minibatch means (``approx_kl``, ``clipfrac``, ``entropy``, losses,
            ``ratio_max_dev``) plus ``weight`` (real tokens), ``grad_norm`` and ``skipped``.
        """
        n_tok = batch.mask[rows].sum().clamp(min=1)
        return optimizer_step(self, rows, lambda c: self.compute_loss(batch.index(c), advantages[c], returns[c], n_tok),
                              n_tok)

    def compute_loss(self, mb: RolloutBatch, advantages: torch.Tensor, returns: torch.Tensor,
                     normalizer: torch.Tensor | float) -> tuple[torch.Tensor, dict[str, float]]:
        """PPO loss of a (micro-)batch: ``policy + vf_coef * value - ent_coef * entropy``, token sums / ``normalizer``.

        Args:
            mb: the rows of the batch.
            advantages, returns: ``(n, T)`` float32 for those rows.
            normalizer: real-token count of the enclosing minibatch.

        Returns:
            ``(loss, sums)``: the scalar loss (with grad) and, as floats, the
            token sums of ``approx_kl``, ``clipfrac``, ``value_clipfrac``,
            ``entropy``, ``policy_loss``, ``value_loss``, ``loss`` (divide by the
            token count for means) and ``ratio_max_dev`` = max ``|ratio - 1|``.
        """
        cfg, dev = self.config, self.policy.device
        f = policy_forward(self.collector, mb)  # logp (n, t), values (n, t), processed (n, t, V)
        t, m = f.t, f.mask
        pg_loss, pg = clipped_policy_loss(f.logp, mb.logprobs[:, :t].to(dev), advantages[:, :t].to(dev), m,
                                          cfg.clip_range, normalizer)
        vf_loss, vf = clipped_value_loss(f.values, mb.values[:, :t].to(dev), returns[:, :t].to(dev), m,
                                         cfg.clip_range_value, normalizer)
        entropy = entropy_sum(f.processed, m, cfg.ent_coef != 0) / normalizer
        loss = pg_loss + cfg.vf_coef * vf_loss - cfg.ent_coef * entropy
        nz = float(normalizer)
        ratio_max_dev = float(torch.where(m, (pg["ratio"] - 1.0).abs(), 0.0).max()) if bool(m.any()) else 0.0
        sums = {"approx_kl": float(pg["approx_kl"]), "clipfrac": float(pg["clipfrac"]),
                "value_clipfrac": float(vf["clipfrac"]), "entropy": float(entropy.detach()) * nz,
                "policy_loss": float(pg_loss.detach()) * nz, "value_loss": float(vf_loss.detach()) * nz,
                "loss": float(loss.detach()) * nz,
                "ratio_max_dev": ratio_max_dev}
        return loss, sums
