"""Online DPO (Guo et al., "Direct Language Model Alignment from Online AI Feedback", 2024): DPO on pairs the
current policy samples and a reward labels, every iteration.

Each rollout holds ``k = group_size`` completions of every prompt (adjacent
rows, see :mod:`textgym.agents.common.groups`).  The env's reward (a metric, a
classifier, a reward model, or anything registered) labels them: in each
group the highest-scored completion is *chosen*, the lowest *rejected*
(a group whose scores are all equal carries no preference: dropped and counted
in ``stats/tied_groups``).  The loss is DPO's (or IPO's) on those pairs, with
the sequence log-probabilities of the current policy and of the reference
(the frozen reference model, or the adapter-disabled base with LoRA: the
rollout already scored it)::

    h = (log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r)),    L = -log sigmoid(beta h)

(see :mod:`textgym.agents.common.preference_losses`).  No value head, no
KL penalty in the reward: ``beta`` ties the policy to the reference (the KL
controller adapts it towards ``target_kl_ref`` when that is set).  Read
:meth:`OnlineDPO.update` top to bottom: its numbered steps are the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from textgym.agents.common.groups import GroupConfig, GroupedAlgorithm
from textgym.agents.common.preference_losses import dpo_loss
from textgym.agents.common.rollout import RolloutBatch
from textgym.agents.common.updates import (average_minibatches, entropy_sum, loss_metrics, minibatch_epochs,
                                           optimizer_metrics, optimizer_step, policy_forward, rollout_metrics,
                                           update_kl_coef)
from textgym.agents.functional import kl_estimate, masked_sum

__all__ = ["OnlineDPO", "OnlineDPOConfig", "preference_pairs"]


@dataclass
class OnlineDPOConfig(GroupConfig):
    """Online DPO settings (group sampling and epochs: :class:`GroupConfig`; the rest: :class:`OnPolicyConfig`).

    Attributes:
        group_size: completions per prompt; the best and the worst form the pair (2: the paper's setting).
        beta: DPO's inverse temperature, the tie to the reference (the initial value when adaptive).
        loss_type: ``"dpo"`` (sigmoid) or ``"ipo"`` (squared).
        label_smoothing: DPO's assumed share of flipped labels, in ``[0, 0.5)``.
        clip_range: unused (DPO has no ratio); kept ``None``.
    """

    kl_field = "beta"
    #: fields a per-model starting preset of ``textgym compare`` must leave alone: ``beta`` is DPO's inverse
    #: temperature here (it must stay > 0), not the KL weight a random-init preset zeroes
    preset_exempt = ("beta",)
    key_hints = {"kl_coef": "online DPO ties the policy to the reference with `beta` (DPO's inverse temperature)"}

    group_size: int = 2
    beta: float = 0.1
    loss_type: str = "dpo"
    label_smoothing: float = 0.0
    clip_range: float | None = None
    rescore_policy: bool = False  # the loss never reads the rollout's policy log-probs

    choice_fields = {"loss_type": ("dpo", "ipo")}

    def __post_init__(self):
        super().__post_init__()
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")


def preference_pairs(scores: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices of each group's best (chosen) and worst (rejected) completion; tied groups left out.

    Args:
        scores: ``(N,)`` the completions' scores, groups of ``group_size`` adjacent rows.
        group_size: ``k``.

    Returns:
        ``(chosen, rejected)``: ``(P,)`` int64 row indices, one pair per group whose scores are not all
        equal (the first maximum / minimum on ties within a group).
    """
    groups = scores.reshape(-1, group_size)                      # (G, k)
    best, worst = groups.argmax(-1), groups.argmin(-1)            # (G,)
    keep = groups.amax(-1) > groups.amin(-1)                      # (G,) bool
    offset = torch.arange(groups.shape[0]) * group_size
    return (offset + best)[keep], (offset + worst)[keep]


class OnlineDPO(GroupedAlgorithm):
    """Online DPO (see the module docstring); constructed like every :class:`GroupedAlgorithm`."""

    config: OnlineDPOConfig
    config_class = OnlineDPOConfig
    micro_batch_unit_rows = 2  # the update's micro-batches count pairs: two sequences each

    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """DPO on the best-vs-worst pair of each of the batch's ``N / k`` groups; returns metrics."""
        cfg = self.config
        # 1. rollout: the GroupedAlgorithm's reset options put k completions of each prompt in adjacent rows
        mask = batch.mask                                         # (N, T) bool
        n = mask.shape[0]

        # 2. labels: each completion's score (its env rewards summed); best vs worst of every group
        scores = batch.rewards.sum(-1)                            # (N,)
        chosen, rejected = preference_pairs(scores, cfg.group_size)  # (P,), (P,)

        # 3. reference: the sequence log-probs the rollout's reference pass gave
        ref_seq = masked_sum(batch.ref_logprobs, mask, dim=1)     # (N,)

        # 4. optimise: epochs x minibatches of pairs, one DPO step each
        beta = self.kl_ctl.kl_coef
        n_pairs = len(chosen)
        if n_pairs:
            self.minibatch_log, early_stop = minibatch_epochs(
                n_pairs, cfg.n_epochs, cfg.minibatch_size, self.update_generator,
                lambda pairs: optimizer_step(self, pairs, lambda c: self.compute_loss(
                    batch, chosen[c], rejected[c], ref_seq, beta, n_pairs_mb=float(len(pairs))), float(len(pairs))),
                cfg.target_kl)
        else:  # every group tied: no preference, no step
            self.minibatch_log, early_stop = [], False

        # 5. beta: the adaptive controller sees the rollout's KL to the reference (per episode)
        kl = torch.where(mask, kl_estimate(batch.logprobs, batch.ref_logprobs, cfg.kl_estimator), 0.0)  # (N, T)
        update_kl_coef(self, kl)

        # 6. metrics
        avg = average_minibatches(self.minibatch_log)  # no step: every statistic reads 0
        return {
            **rollout_metrics(batch, kl, 0.0, cfg.kl_estimator),
            **loss_metrics(avg),
            "stats/beta": beta,
            "rewards/accuracy": avg["accuracy"],
            "rewards/margin": avg["margin"],
            "stats/pairs": float(n_pairs),
            "stats/tied_groups": float(n // cfg.group_size - n_pairs),
            **optimizer_metrics(avg),
            "stats/early_stopped": float(early_stop),
        }

    def compute_loss(self, batch: RolloutBatch, chosen: torch.Tensor, rejected: torch.Tensor, ref_seq: torch.Tensor,
                     beta: float, n_pairs_mb: float) -> tuple[torch.Tensor, dict[str, float]]:
        """DPO loss of a micro-batch of pairs, summed and divided by the minibatch's pair count ``n_pairs_mb``.

        Args:
            batch: the rollout.
            chosen, rejected: ``(p,)`` row indices of the pairs.
            ref_seq: ``(N,)`` reference sequence log-probs of every row.
            beta: the current ``beta``.
            n_pairs_mb: pairs in the enclosing minibatch (the normaliser).

        Returns:
            ``(loss, sums)``: the loss (with grad) and sums over pairs of ``policy_loss``, ``loss``,
            ``accuracy`` (implicit reward of chosen > rejected), ``margin``, ``entropy`` (per-token mean
            times pairs), ``value_loss`` (0).
        """
        cfg, dev = self.config, self.policy.device
        rows = torch.cat([chosen, rejected])                      # (2p,)
        f = policy_forward(self.collector, batch.index(rows), with_values=False)  # logp (2p, t)
        seq = masked_sum(f.logp, f.mask, dim=1)                   # (2p,) log pi(y | x)
        p = len(chosen)
        ref = ref_seq[rows].to(dev)
        losses, r_c, r_r = dpo_loss(seq[:p], seq[p:], ref[:p], ref[p:], beta=beta, loss_type=cfg.loss_type,
                                    label_smoothing=cfg.label_smoothing)   # (p,) each
        loss = losses.sum() / n_pairs_mb
        tokens = float(f.mask.sum().clamp(min=1))
        entropy = float(entropy_sum(f.processed, f.mask, False)) / tokens * p
        total = float(losses.detach().sum())
        return loss, {"policy_loss": total, "loss": total, "value_loss": 0.0, "entropy": entropy,
                      "accuracy": float((r_c > r_r).float().sum()), "margin": float((r_c - r_r).sum()),
                      "approx_kl": 0.0}

