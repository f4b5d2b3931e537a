"""Group Relative Policy Optimization (GRPO; Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical
Reasoning in Open Language Models", 2024, section 4.1), critic-free.

Each rollout holds ``k = group_size`` completions ``o_1..o_k`` of every prompt
(adjacent rows, see :mod:`textgym.agents.common.groups`).  With ``R_i`` the episode
return (the env's score; no KL in the reward), every token of completion ``i``
gets the group-normalised advantage

    A_i = (R_i - mean(R_1..R_k)) / (std(R_1..R_k) + eps)

(0 for a group whose rewards are all equal), and the loss is the clipped ratio
objective plus the KL to the reference as a loss term (eq. 3), with the
unbiased, non-negative k3 estimator (eq. 4) of the *current* policy::

    L = - 1/G sum_i 1/|o_i| sum_t [ min(rho_t A_i, clip(rho_t, 1 - eps_c, 1 + eps_c) A_i) - beta * k3_t ],
    rho_t = pi(o_t | .) / pi_old(o_t | .),   k3_t = pi_ref/pi - log(pi_ref/pi) - 1.

``beta`` is ``config.beta``, the weight of the KL *loss term* (fixed, or adapted by
the controller towards ``target_kl_ref``); the penalty algorithms (PPO, RLOO, ...)
put the KL in the reward instead and call its weight ``kl_coef``.  ``loss_aggregation="token"`` averages over all tokens of
the minibatch instead of per sequence first (as in DAPO, Yu et al. 2025).
Read :meth:`GRPO.update` top to bottom: its numbered steps are the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from textgym.agents.functional import clipped_policy_loss, group_advantages, kl_estimate, masked_sum
from textgym.agents.common.groups import GroupConfig, GroupedAlgorithm
from textgym.agents.common.rollout import RolloutBatch
from textgym.agents.common.updates import entropy_sum, loss_metrics, optimize_epochs, optimizer_metrics, optimizer_step
from textgym.agents.common.updates import policy_forward, rollout_metrics, update_kl_coef

__all__ = ["GRPO", "GRPOConfig", "LOSS_AGGREGATIONS"]


@dataclass
class GRPOConfig(GroupConfig):
    """GRPO settings (group sampling and epochs: :class:`GroupConfig`; the rest: :class:`OnPolicyConfig`).

    Attributes:
        beta: weight of the KL-to-reference term in the *loss* (0.04 in Shao et al.; the initial
            value when ``target_kl_ref`` makes it adaptive).
        kl_estimator: ``"k3"`` (the paper's) or ``"k2"``; estimators without a KL gradient
            in expectation (``"k1"``, ``"abs"``) are rejected.
        adv_eps: added to the group's reward standard deviation.
        ent_coef: weight of an entropy bonus (0 in the paper).
        loss_aggregation: ``"sequence"`` (mean over each completion's tokens, then over
            completions; Shao et al. eq. 3) or ``"token"`` (mean over all tokens of the minibatch).
    """

    kl_field = "beta"  # the controller starts from config.beta
    #: what a config error says about a key GRPO does not have
    key_hints = {"kl_coef": "GRPO's KL to the reference is a loss term, weighted by `beta` (kl_coef is the "
                            "reward penalty of ppo, nlpo, a2c, reinforce, rloo)"}

    beta: float = 0.04
    kl_estimator: str = "k3"
    adv_eps: float = 1e-4
    ent_coef: float = 0.0
    loss_aggregation: str = "sequence"

    choice_fields = {"loss_aggregation": ("sequence", "token")}

    def __post_init__(self):
        super().__post_init__()
        if self.kl_estimator not in ("k3", "k2"):
            raise ValueError(f"GRPO puts the KL in the loss, where only 'k3' (the paper's) or 'k2' give its "
                             f"gradient; got kl_estimator={self.kl_estimator!r}")
        if not self.adv_eps > 0:
            raise ValueError(f"adv_eps must be > 0, got {self.adv_eps}")


#: accepted values of ``GRPOConfig.loss_aggregation``
LOSS_AGGREGATIONS = GRPOConfig.choice_fields["loss_aggregation"]


class GRPO(GroupedAlgorithm):
    """GRPO: group-normalised advantages, clipped ratio, k3 KL to the reference in the loss (see the module docstring).

    Built as every :class:`GroupedAlgorithm` (arguments and errors there), with a :class:`GRPOConfig`.

    Example::

        env = gym.make_vec("textgym/TokenCount-v0", num_envs=32, vectorization_mode="vector_entry_point",
                           autoreset_mode="Disabled")
        algo = GRPO("tiny-char", env, GRPOConfig(group_size=8, learning_rate=2e-3))
        algo.learn(iterations=50)
    """

    config_class = GRPOConfig
    config: GRPOConfig

    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """One GRPO update on a batch of ``N / k`` groups of ``k`` completions; returns metrics."""
        cfg = self.config
        # 1. rollout: k completions of each prompt in adjacent rows (GroupedAlgorithm.reset_options)
        mask = batch.mask  # (N, T) bool, real tokens

        # 2. rewards: each completion's return (the env's rewards summed; the KL is in the loss, not here)
        returns = batch.rewards.sum(-1)  # (N,)

        # 3. advantages: normalised within each group, the same on every token of the completion
        adv = group_advantages(returns, cfg.group_size, cfg.adv_eps)  # (N,)
        advantages = torch.where(mask, adv[:, None], 0.0)  # (N, T)

        # 4. loss weights: 1/|o_i| per token and one unit per completion ("sequence"), or 1 per token ("token")
        lengths = mask.sum(-1, keepdim=True).clamp(min=1)  # (N, 1)
        weights = torch.where(mask, 1.0 / lengths if cfg.loss_aggregation == "sequence" else 1.0, 0.0)  # (N, T)

        # 5. optimise: epochs x minibatches of clipped-ratio + beta * KL steps
        beta = self.kl_ctl.kl_coef  # config.beta, or the adaptive controller's current value
        avg, early_stop = optimize_epochs(
            self, batch, lambda rows: self.optimize_minibatch(batch, advantages, weights, beta, rows))

        # 6. KL coefficient: the adaptive controller sees the rollout's KL to the reference (per episode)
        kl = torch.where(mask, kl_estimate(batch.logprobs, batch.ref_logprobs, cfg.kl_estimator), 0.0)
        update_kl_coef(self, kl)

        # 7. metrics
        groups = returns.reshape(-1, cfg.group_size)
        return {
            **rollout_metrics(batch, kl, beta, cfg.kl_estimator),
            **loss_metrics(avg),
            "loss/kl": avg["kl_loss"],
            "stats/approx_kl": avg["approx_kl"],
            "stats/clipfrac": avg["clipfrac"],
            "stats/kl_ref_update": avg["kl"],
            "stats/group_reward_std": float(groups.std(-1).mean()),
            "stats/zero_advantage_groups": float((groups.amax(-1) == groups.amin(-1)).float().mean()),
            **optimizer_metrics(avg),
            "stats/early_stopped": float(early_stop),
        }

    def optimize_minibatch(self, batch: RolloutBatch, advantages: torch.Tensor, weights: torch.Tensor, beta: float,
                           rows: torch.Tensor) -> dict[str, float]:
        """One optimizer step on ``rows`` (micro-batched); the loss is normalised by the minibatch's
        completions (``"sequence"``) or tokens (``"token"``); returns the means of :meth:`compute_loss`'s sums."""
        cfg = self.config
        normalizer = (float(len(rows)) if cfg.loss_aggregation == "sequence"
                      else batch.mask[rows].sum().clamp(min=1))
        return optimizer_step(self, rows, lambda c: self.compute_loss(batch.index(c), advantages[c], weights[c], beta,
                                                                     normalizer), normalizer)

    def compute_loss(self, mb: RolloutBatch, advantages: torch.Tensor, weights: torch.Tensor, beta: float,
                     normalizer: torch.Tensor | float) -> tuple[torch.Tensor, dict[str, float]]:
        """GRPO loss of a (micro-)batch: weighted token sums of ``clipped surrogate + beta * KL - ent_coef * H``.

        Args:
            mb: the rows of the batch.
            advantages: ``(n, T)`` float32, each row's group advantage on its real tokens.
            weights: ``(n, T)`` float32 per-token loss weights (0 on padding).
            beta: the KL coefficient.
            normalizer: completions (``"sequence"``) or real tokens (``"token"``) of the enclosing minibatch.

        Returns:
            ``(loss, sums)``: the loss (with grad) and the weighted sums of ``approx_kl``,
            ``clipfrac``, ``kl`` (the k3 KL to the reference under the current policy),
            ``entropy``, ``policy_loss``, ``kl_loss``, ``value_loss`` (0), ``loss``.
        """
        cfg, dev = self.config, self.policy.device
        f = policy_forward(self.collector, mb, with_values=False)  # logp (n, t), processed (n, t, V)
        t, m = f.t, f.mask
        w = weights[:, :t].to(dev)
        pg_loss, pg = clipped_policy_loss(f.logp, mb.logprobs[:, :t].to(dev), advantages[:, :t].to(dev), m,
                                          cfg.clip_range, normalizer, weights=w)
        kl_sum = masked_sum(kl_estimate(f.logp, mb.ref_logprobs[:, :t].to(dev), cfg.kl_estimator) * w, m)
        kl_loss = kl_sum / normalizer
        entropy = entropy_sum(f.processed, m, cfg.ent_coef != 0, weights=w) / normalizer
        loss = pg_loss + beta * kl_loss - cfg.ent_coef * entropy
        nz = float(normalizer)
        return loss, {"approx_kl": float(pg["approx_kl"]), "clipfrac": float(pg["clipfrac"]),
                      "kl": float(kl_sum.detach()), "entropy": float(entropy.detach()) * nz,
                      "policy_loss": float(pg_loss.detach()) * nz, "kl_loss": float(kl_loss.detach()) * nz,
                      "value_loss": 0.0, "loss": float(loss.detach()) * nz}
