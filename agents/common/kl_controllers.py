"""KL coefficient controllers: the ``kl_coef`` an algorithm applies, fixed or steered towards a target KL.

* :class:`FixedKLController`: a constant ``kl_coef``.
* :class:`AdaptiveKLController`: Ziegler et al., "Fine-Tuning Language Models from
  Human Preferences", 2019, section 2.2 (a proportional controller on the KL).

A controller holds one float (``kl_coef``) and is checkpointed with the algorithm
(:meth:`state_dict`).  The KL estimate it reacts to is :func:`textgym.agents.functional.kl_estimate`.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["FixedKLController", "AdaptiveKLController", "make_kl_controller"]


class FixedKLController:
    """A constant KL coefficient.

    Args:
        kl_coef: the coefficient (>= 0).
    """

    def __init__(self, kl_coef: float):
        if kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
        self.kl_coef = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        """No-op; returns ``kl_coef``."""
        return self.kl_coef

    def state_dict(self) -> dict[str, Any]:
        return {"kl_coef": self.kl_coef}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kl_coef = float(state["kl_coef"] if "kl_coef" in state else state["value"])  # "value": older checkpoints


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. (2019) proportional controller that steers the KL towards a target.

    ``e = clip(KL / target - 1, -0.2, 0.2)``;  ``kl_coef <- kl_coef * (1 + e * n_steps / horizon)``.
    KL above the target raises ``kl_coef``; below it lowers it.

    Args:
        init_kl_coef: starting ``kl_coef`` (> 0).
        target: target KL (nats per episode, the same quantity as ``stats/kl_ref``).
        horizon: how many episodes (``n_steps`` units) a full correction takes.

    Raises:
        ValueError: non-positive ``init_kl_coef``, ``target`` or ``horizon``.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float = 10_000):
        if init_kl_coef <= 0 or target <= 0 or horizon <= 0:
            raise ValueError(f"init_kl_coef, target and horizon must be > 0, got {init_kl_coef}, {target}, {horizon}")
        super().__init__(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move ``kl_coef`` after observing ``current_kl`` over ``n_steps`` episodes; returns the new ``kl_coef``."""
        if not math.isfinite(current_kl):
            return self.kl_coef
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.kl_coef *= 1.0 + error * n_steps / self.horizon
        return self.kl_coef


def make_kl_controller(kl_coef: float, target_kl_ref: float | None, horizon: float) -> FixedKLController:
    """A :class:`FixedKLController` (``target_kl_ref=None``) or an :class:`AdaptiveKLController`."""
    if target_kl_ref is None:
        return FixedKLController(kl_coef)
    return AdaptiveKLController(kl_coef, target_kl_ref, horizon)
