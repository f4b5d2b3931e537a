"""``Algorithm``: what every textgym RL algorithm offers, native (PPO, GRPO, ...) or stable-baselines3's.

The pipeline, the comparison harness and users drive an algorithm only through
these members, so the native :class:`~textgym.agents.common.base.OnPolicyAlgorithm`
subclasses and the :class:`~textgym.agents.algorithms.sb3_algos.SB3Algorithm`
adapters are interchangeable there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

__all__ = ["Algorithm", "ALGORITHM_MEMBERS"]

#: the names :class:`Algorithm` requires (tests check every registered algorithm against them)
ALGORITHM_MEMBERS = ("config", "iteration", "num_timesteps", "saves_checkpoints",
                     "learn", "evaluate", "predict", "save", "load")


@runtime_checkable
class Algorithm(Protocol):
    """An RL algorithm on a textgym vector env.

    Attributes:
        config: its settings dataclass.
        iteration: updates done so far.
        num_timesteps: generated tokens so far.
        saves_checkpoints: ``True`` when ``learn`` writes ``run_dir/checkpoint`` itself every
            ``config.save_every`` iterations; ``False`` when its caller saves (the SB3 adapters).
    """

    config: Any
    iteration: int
    num_timesteps: int
    saves_checkpoints: ClassVar[bool]

    def learn(self, total_timesteps: int | None = None, *, iterations: int | None = None,
              callback: Callable[[Any, dict[str, Any]], Any] | None = None) -> Any:
        """Train for a token budget or a number of iterations; returns the algorithm."""
        ...

    def evaluate(self, env: Any, n_episodes: int = 64, *, greedy: bool = False,
                 seed: int | None = None) -> dict[str, float]:
        """Episodes on ``env`` without learning: ``score_mean``, ``kl_ref``, ``length_mean``, ..."""
        ...

    def predict(self, observation: dict[str, np.ndarray], deterministic: bool = False) -> tuple[np.ndarray, None]:
        """The next token of each row of an env observation (SB3-style)."""
        ...

    def save(self, path: Any) -> Any:
        """Write a resumable checkpoint to the folder ``path``."""
        ...

    @classmethod
    def load(cls, path: Any, env: Any, **config_overrides: Any) -> Any:
        """Rebuild the algorithm from :meth:`save`'s folder on ``env``."""
        ...
