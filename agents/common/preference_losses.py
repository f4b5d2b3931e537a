"""Offline preference-optimization losses on sequence log-probabilities (pure functions).

Every loss here reads a policy ``pi`` against a frozen reference ``ref`` through
the *implicit reward* of a completion ``y`` for a prompt ``x``::

    r(x, y) = beta * (log pi(y | x) - log ref(y | x))

where ``log pi(y | x)`` is the sum of the completion tokens' log-probabilities
(:func:`sequence_logprobs`).  With ``h = (log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r))``
for a chosen ``y_c`` and a rejected ``y_r``:

* **DPO** (Rafailov et al. 2023, "Direct Preference Optimization"):
  ``-log sigmoid(beta * h)``; with label smoothing ``eps`` (conservative DPO)
  ``-(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)``.  At the start
  (policy = reference) ``h = 0`` and the loss is ``log 2``.
* **IPO** (Azar et al. 2023, "A General Theoretical Paradigm to Understand
  Learning from Human Preferences"): ``(h - 1 / (2 beta)) ** 2`` — a squared
  loss that stops pushing once the log-ratio gap reaches ``1 / (2 beta)``.
* **KTO** (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic
  Optimization"), from *unpaired* good / bad labels: with ``r = log pi(y) - log ref(y)``
  and a reference point ``z0`` (an estimate of ``KL(pi || ref)``, clamped at 0,
  no gradient), a desirable ``y`` costs ``w_d * (1 - sigmoid(beta (r - z0)))``,
  an undesirable one ``w_u * (1 - sigmoid(beta (z0 - r)))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sequence_logprobs", "dpo_loss", "kto_loss", "PREFERENCE_LOSSES"]

#: the ``loss_type`` values of :class:`textgym.agents.trainers.preference.PreferenceConfig`
PREFERENCE_LOSSES = ("dpo", "ipo", "kto")


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of the labelled tokens' log-probabilities per row (padding-safe).

    Args:
        logits: ``(B, L, V)`` next-token logits of a causal LM on the row's ids.
        labels: ``(B, L)`` int64, the row's ids at completion positions and
            ``-100`` elsewhere (prompt, padding); *unshifted*: position ``t``'s
            label is predicted by the logits at ``t - 1``.

    Returns:
        ``(B,)`` float32: ``sum_t log p(labels[t] | ids[<t])`` over ``labels[t] != -100``
        (0 for a row without a label).
    """
    logits = logits[:, :-1].float()                      # (B, L-1, V) predicts positions 1..L-1
    targets = labels[:, 1:]                              # (B, L-1)
    mask = targets != -100
    logp = torch.log_softmax(logits, dim=-1)             # (B, L-1, V)
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, L-1)
    return (picked * mask).sum(-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, *, beta: float, loss_type: str = "dpo",
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO or IPO loss and the implicit rewards.

    Args:
        policy_chosen, policy_rejected: ``(B,)`` sequence log-probs under the policy (differentiable).
        ref_chosen, ref_rejected: ``(B,)`` the same under the reference (no gradient needed).
        beta: the inverse temperature ``beta > 0`` (strength of the tie to the reference).
        loss_type: ``"dpo"`` (sigmoid) or ``"ipo"`` (squared).
        label_smoothing: DPO only, the assumed share ``eps`` in ``[0, 0.5)`` of flipped labels.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``(B,)`` float32; the
        rewards are ``beta * (log pi - log ref)``, detached.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen_ratio = policy_chosen.float() - ref_chosen.float()        # (B,)
    rejected_ratio = policy_rejected.float() - ref_rejected.float()  # (B,)
    h = chosen_ratio - rejected_ratio
    if loss_type == "dpo":
        losses = -(1.0 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"loss_type must be 'dpo' or 'ipo' for pairs, got {loss_type!r}")
    return losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


def kto_loss(policy: torch.Tensor, ref: torch.Tensor, desirable: torch.Tensor, kl_ref_point: torch.Tensor | float,
             *, beta: float, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example KTO loss and implicit rewards.

    Args:
        policy, ref: ``(B,)`` sequence log-probs of each completion under the policy / the reference.
        desirable: ``(B,)`` bool, ``True`` for a good completion.
        kl_ref_point: the reference point ``z0`` (a scalar; clamped at 0 and detached here).
        beta: ``> 0``.
        desirable_weight, undesirable_weight: ``w_d``, ``w_u`` (balance unequal counts of good and bad).

    Returns:
        ``(losses, rewards)``, ``(B,)`` float32; ``rewards = beta * (log pi - log ref)``, detached.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    z0 = torch.as_tensor(kl_ref_point, dtype=torch.float32, device=policy.device).detach().clamp(min=0.0)
    r = policy.float() - ref.float()                                                 # (B,)
    good = desirable_weight * (1.0 - torch.sigmoid(beta * (r - z0)))
    bad = undesirable_weight * (1.0 - torch.sigmoid(beta * (z0 - r)))
    return torch.where(desirable.bool(), good, bad), (beta * r).detach()
