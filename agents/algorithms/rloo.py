"""REINFORCE Leave-One-Out (RLOO; Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style Optimization for
Learning from Human Feedback in LLMs", ACL 2024, section 3.2), critic-free and sequence-level.

Each rollout holds ``k = group_size`` completions ``y_1..y_k`` of every prompt
(adjacent rows, see :mod:`textgym.agents.common.groups`).  A whole completion is one
action; its reward is the score minus the KL penalty summed over its tokens,
and its baseline is the mean reward of the *other* ``k - 1`` completions of
the same prompt (eq. 7)::

    R_i = score_i - kl_coef * sum_t KL_t,      A_i = R_i - 1/(k-1) sum_{j != i} R_j.

The loss is REINFORCE on the sequence log-probability
``log pi(y_i | x) = sum_t log pi(y_{i,t} | x, y_{i,<t})``, averaged over
completions, written with the sequence ratio ``rho_i = pi(y_i|x) / pi_old(y_i|x)``::

    L = - 1/N sum_i min(rho_i A_i, clip(rho_i, 1 - eps, 1 + eps) A_i).

With the defaults (one epoch, one minibatch, ``clip_range=None``) ``rho_i = 1``
and the gradient is exactly the paper's ``-A_i grad log pi(y_i|x)``; several
epochs with ``clip_range`` set give the PPO-clipped variant.  Read
:meth:`RLOO.update` top to bottom: its numbered steps are the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from textgym.agents.functional import clipped_policy_loss, masked_sum
from textgym.agents.group_functional import rloo_baseline
from textgym.agents.common.groups import GroupConfig, GroupedAlgorithm
from textgym.agents.common.rollout import RolloutBatch
from textgym.agents.common.updates import entropy_sum, loss_metrics, optimize_epochs, optimizer_metrics, optimizer_step
from textgym.agents.common.updates import penalized_rewards, policy_forward, rollout_metrics, update_kl_coef

__all__ = ["RLOO", "RLOOConfig"]


@dataclass
class RLOOConfig(GroupConfig):
    """RLOO settings (group sampling and epochs: :class:`GroupConfig`; the rest: :class:`OnPolicyConfig`).

    Attributes:
        clip_range: clip of the *sequence* ratio over epochs (``None``, the default: no
            clipping, the paper's plain REINFORCE step).
        kl_coef: weight of the KL *reward penalty*: each completion's reward is its score minus
            ``kl_coef`` times its summed per-token KL (the initial value when adaptive).
    """

    kl_coef: float = 0.05
    clip_range: float | None = None


class RLOO(GroupedAlgorithm):
    """RLOO: k samples per prompt, leave-one-out baseline, sequence-level REINFORCE (see the module docstring).

    Built as every :class:`GroupedAlgorithm` (arguments and errors there), with an :class:`RLOOConfig`.
    """

    config_class = RLOOConfig
    config: RLOOConfig

    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """One RLOO update on a batch of ``N / k`` groups of ``k`` completions; returns metrics."""
        cfg = self.config
        # 1. rollout: k completions of each prompt in adjacent rows (GroupedAlgorithm.reset_options)

        # 2. rewards: one per completion, the score minus kl_coef * its summed per-token KL
        token_rewards, kl, kl_coef = penalized_rewards(self, batch)  # (N, T) each
        rewards = token_rewards.sum(-1)  # (N,)

        # 3. advantages: reward minus the mean reward of the other k - 1 completions of the prompt
        advantages = rewards - rloo_baseline(rewards, cfg.group_size)  # (N,)

        # 4. optimise: epochs x minibatches of sequence-level (optionally clipped) policy-gradient steps
        avg, early_stop = optimize_epochs(self, batch, lambda rows: self.optimize_minibatch(batch, advantages, rows))

        # 5. KL coefficient: the adaptive controller sees the KL that was applied (per episode)
        update_kl_coef(self, kl)

        # 6. metrics
        return {
            **rollout_metrics(batch, kl, kl_coef, cfg.kl_estimator),
            **loss_metrics(avg),
            "stats/approx_kl": avg["approx_kl"],
            "stats/clipfrac": avg["clipfrac"],
            "stats/advantage_std": float(advantages.std(unbiased=False)),
            **optimizer_metrics(avg),
            "stats/early_stopped": float(early_stop),
        }

    def optimize_minibatch(self, batch: RolloutBatch, advantages: torch.Tensor, rows: torch.Tensor
                           ) -> dict[str, float]:
        """One optimizer step on ``rows`` (micro-batched), the loss averaged over the minibatch's completions."""
        n_seq, n_tok = float(len(rows)), float(batch.mask[rows].sum().clamp(min=1))
        return optimizer_step(self, rows, lambda c: self.compute_loss(batch.index(c), advantages[c], n_seq, n_tok),
                              n_seq)

    def compute_loss(self, mb: RolloutBatch, advantages: torch.Tensor, n_seq: float, n_tok: float
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        """Sequence-level loss of a (micro-)batch, summed over its completions and divided by ``n_seq``.

        Args:
            mb: the rows of the batch.
            advantages: ``(n,)`` float32 leave-one-out advantages.
            n_seq: completions in the enclosing minibatch (the loss normaliser).
            n_tok: real tokens in the enclosing minibatch (for the per-token entropy statistic).

        Returns:
            ``(loss, sums)``: the loss (with grad) and sums over completions of ``approx_kl``
            and ``clipfrac`` (of the sequence ratio), ``policy_loss``, ``value_loss`` (0), ``loss``,
            plus ``entropy`` scaled so that dividing by ``n_seq`` gives the per-token mean.
        """
        cfg, dev = self.config, self.policy.device
        f = policy_forward(self.collector, mb, with_values=False)  # logp (n, t)
        seq_logp = masked_sum(f.logp, f.mask, dim=1)[:, None]  # (n, 1): log pi(y_i | x)
        old_seq_logp = masked_sum(mb.logprobs[:, : f.t].to(dev), f.mask, dim=1)[:, None]
        one = torch.ones_like(seq_logp, dtype=torch.bool)
        loss, pg = clipped_policy_loss(seq_logp, old_seq_logp, advantages[:, None].to(dev), one, cfg.clip_range, n_seq)
        entropy = float(entropy_sum(f.processed, f.mask, False)) * n_seq / n_tok
        return loss, {"approx_kl": float(pg["approx_kl"]), "clipfrac": float(pg["clipfrac"]), "entropy": entropy,
                      "policy_loss": float(loss.detach()) * n_seq, "value_loss": 0.0,
                      "loss": float(loss.detach()) * n_seq}
