"""Per-episode baselines and advantages of the critic-free algorithms, computed over groups of completions.

A *group* is ``group_size`` adjacent rows of a batch that share one prompt (see
``agents/common/groups.py``); rewards come in as an ``(N,)`` tensor, one scalar per
episode, with ``N`` a multiple of ``group_size``.  Re-exported by
:mod:`textgym.agents.functional`.

Sources:
  * Leave-one-out baseline: Ahmadian et al., "Back to Basics: Revisiting
    REINFORCE Style Optimization for Learning from Human Feedback in LLMs", ACL 2024, eq. 7.
  * Group-normalised advantages: Shao et al., "DeepSeekMath", 2024, section 4.1.2; unscaled
    (group-centred only): Liu et al., "Understanding R1-Zero-Like Training: A Critical Perspective", 2025
    (Dr. GRPO), section 3.2.
  * Overlong reward shaping: Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at
    Scale", 2025, eq. 13.
"""

from __future__ import annotations

import torch

__all__ = ["rloo_baseline", "group_advantages", "informative_groups", "overlong_penalty"]


def _groups(x: torch.Tensor, group_size: int) -> torch.Tensor:
    if x.ndim != 1:
        raise ValueError(f"expected a (N,) tensor of per-episode rewards, got shape {tuple(x.shape)}")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (a group needs other samples to compare with), got {group_size}")
    if x.shape[0] % group_size:
        raise ValueError(f"{x.shape[0]} rewards do not split into groups of {group_size}; the rows of a group "
                         "must be adjacent and N a multiple of group_size")
    return x.float().reshape(-1, group_size)


def rloo_baseline(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Leave-one-out baseline: each sample's baseline is the mean reward of the other ``k - 1`` in its group.

    ``b_i = (sum_j r_j - r_i) / (k - 1)`` (Ahmadian et al. 2024, eq. 7); the
    RLOO advantage is ``r_i - b_i``.  Groups are ``k = group_size`` adjacent rows.

    Args:
        rewards: ``(N,)`` float, one reward per sample, ``N`` a multiple of ``k``.
        group_size: ``k >= 2``.

    Returns:
        ``(N,)`` float32.

    Raises:
        ValueError: ``k < 2``, ``N`` not a multiple of ``k``, or not 1-D.
    """
    g = _groups(rewards, group_size)
    return ((g.sum(-1, keepdim=True) - g) / (group_size - 1)).reshape(-1)


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4, scale: bool = True) -> torch.Tensor:
    """GRPO's advantage: ``(r_i - mean(group)) / (std(group) + eps)`` (Shao et al. 2024, section 4.1.2).

    ``std`` is the sample standard deviation (Bessel-corrected).  ``scale=False``
    gives Dr. GRPO's ``r_i - mean(group)`` (Liu et al. 2025, section 3.2: the
    division by the std weights easy and hard prompts unequally).  A group whose
    rewards are all equal gets exactly 0 (it carries no learning signal), never
    NaN and not a float-noise residue divided by ``eps``.

    Args:
        rewards: ``(N,)`` float, ``N`` a multiple of ``k``; groups are ``k`` adjacent rows.
        group_size: ``k >= 2``.
        eps: added to the standard deviation (> 0).
        scale: divide by the group's ``std + eps``.

    Returns:
        ``(N,)`` float32.

    Raises:
        ValueError: ``k < 2``, ``N`` not a multiple of ``k``, not 1-D, or ``eps <= 0``.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    g = _groups(rewards, group_size)
    adv = g - g.mean(-1, keepdim=True)  # (N / k, k)
    if scale:
        adv = adv / (g.std(-1, keepdim=True) + eps)
    return torch.where(~informative_groups(rewards, group_size)[:, None], 0.0, adv).reshape(-1)


def informative_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``(N / k,)`` bool: the groups of ``k`` adjacent rewards that are *not* all equal (DAPO's dynamic
    sampling keeps only these, Yu et al. 2025, eq. 11: an all-equal group has advantage 0 and no gradient).

    Raises:
        ValueError: as :func:`rloo_baseline`.
    """
    g = _groups(rewards, group_size)
    return g.amax(-1) != g.amin(-1)


def overlong_penalty(lengths: torch.Tensor, max_length: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), added to each completion's reward::

        0                                   if L <= max_length - buffer
        factor * (max_length - buffer - L) / buffer   if max_length - buffer < L <= max_length
        -factor                             if L > max_length

    (a linear ramp from 0 to ``-factor`` over the last ``buffer`` tokens of the budget).

    Args:
        lengths: ``(N,)`` int, generated tokens per completion.
        max_length: the token budget (``max_new_tokens``).
        buffer: the ramp's width in tokens, ``1 <= buffer <= max_length``.
        factor: the penalty at the budget (>= 0).

    Returns:
        ``(N,)`` float32, <= 0.

    Raises:
        ValueError: ``buffer`` outside ``[1, max_length]``.
    """
    if not 1 <= buffer <= max_length:
        raise ValueError(f"the overlong buffer must be between 1 and max_new_tokens ({max_length}) tokens, got {buffer}")
    over = (lengths.float() - (max_length - buffer)).clamp(min=0.0)  # (N,) tokens into the buffer
    return -factor * torch.clamp(over / buffer, max=1.0)
