"""Today's GRPO variants as named presets of :class:`~textgym.agents.algorithms.grpo.GRPO`'s options.

Each is GRPO with other defaults (every option stays settable; the update is
:meth:`GRPO.update`), registered under its own name so ``textgym train`` and
``textgym compare`` run it:

* ``dr-grpo`` - :class:`DrGRPO`: Liu et al., "Understanding R1-Zero-Like Training: A Critical
  Perspective", 2025, section 3.2.  GRPO's ``1/|o_i|`` favours long wrong answers and its division by
  the group's std weights prompts by difficulty; Dr. GRPO drops both: advantages ``R_i - mean(R)``
  (``scale_rewards=False``) and token sums divided by a constant, completions x the token budget
  (``loss_aggregation="constant"``).
* ``dapo`` - :class:`DAPO`: Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at
  Scale", 2025: clip-higher (``clip_range_low=0.2``, ``clip_range_high=0.28``, eq. 10), dynamic
  sampling (all-equal groups dropped and refilled, eq. 11), token-level loss (eq. 12), no KL term
  (``beta=0``, section 2.3).  Overlong reward shaping (eq. 13) needs the budget's scale, so it is off
  until ``overlong_buffer`` is set (the paper: 4096 of a 20480-token budget, a fifth).
* ``gspo`` - :class:`GSPO`: Zheng et al., "Group Sequence Policy Optimization", 2025, eq. 5-7: one
  importance ratio per completion, ``s_i = exp(1/|o_i| sum_t log(pi/pi_old))`` (the geometric mean of
  its token ratios), clipped per completion to ``[1 - 3e-4, 1 + 4e-4]`` (the paper's ranges, section 5.1;
  sequence ratios stay much closer to 1 than token ratios).
"""

from __future__ import annotations

from dataclasses import dataclass

from textgym.agents.algorithms.grpo import GRPO, GRPOConfig

__all__ = ["DrGRPO", "DrGRPOConfig", "DAPO", "DAPOConfig", "GSPO", "GSPOConfig"]


@dataclass
class DrGRPOConfig(GRPOConfig):
    """:class:`GRPOConfig` with Dr. GRPO's defaults: ``scale_rewards=False``, ``loss_aggregation="constant"``."""

    scale_rewards: bool = False
    loss_aggregation: str = "constant"


@dataclass
class DAPOConfig(GRPOConfig):
    """:class:`GRPOConfig` with DAPO's defaults: ``clip_range_low=0.2``, ``clip_range_high=0.28``,
    ``dynamic_sampling=True``, ``loss_aggregation="token"``, ``beta=0`` (set ``overlong_buffer`` for eq. 13)."""

    beta: float = 0.0
    loss_aggregation: str = "token"
    clip_range_low: float | None = 0.2
    clip_range_high: float | None = 0.28
    dynamic_sampling: bool = True


@dataclass
class GSPOConfig(GRPOConfig):
    """:class:`GRPOConfig` with GSPO's defaults: ``importance_sampling_level="sequence"``,
    ``clip_range_low=3e-4``, ``clip_range_high=4e-4``."""

    importance_sampling_level: str = "sequence"
    clip_range_low: float | None = 3e-4
    clip_range_high: float | None = 4e-4


class DrGRPO(GRPO):
    """Dr. GRPO (Liu et al. 2025): GRPO without the std and length normalisations (see the module docstring)."""

    config_class = DrGRPOConfig


class DAPO(GRPO):
    """DAPO (Yu et al. 2025): clip-higher, dynamic sampling, token-level loss (see the module docstring)."""

    config_class = DAPOConfig


class GSPO(GRPO):
    """GSPO (Zheng et al. 2025): sequence-level ratio and clipping (see the module docstring)."""

    config_class = GSPOConfig
