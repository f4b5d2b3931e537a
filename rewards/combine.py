"""Reward combinators: weighted sums with per-component logging, running normalisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from textgym.reward_api import RewardFunction, as_reward_function, call_reward

__all__ = ["WeightedSum", "RunningNormalizer"]


def _call(reward, prompts, completions, references, columns, on_error, penalty):
    return call_reward(reward, prompts, completions, references=references, columns=columns,
                       on_error=on_error, penalty=penalty)


class WeightedSum(RewardFunction):
    """``sum_k w_k r_k(x)`` over several rewards, returning every component for logging.

    Args:
        rewards: ``{name: reward}`` (a reward is a registered name, a
            :class:`RewardFunction` or any callable), or a sequence of rewards
            or ``(name, reward)`` pairs (names default to ``reward.name``,
            made unique with ``_2``, ``_3``...).
        weights: ``{name: weight}`` or a sequence in the same order; default 1 each.
        on_error, penalty: passed to :func:`textgym.reward_api.call_reward`
            for each component.

    Returns (when called): ``(scores, components)``: ``scores`` is ``(B,)``
    float32; ``components[name]`` is each component's unweighted ``(B,)``
    score, and a component's own components appear as ``"name/sub"``.

    The sum is dense (see :class:`textgym.reward_api.DenseRewardFunction`) when
    every component is, since prefix-score increments add up linearly.

    Raises:
        ValueError: no rewards, duplicate names in a mapping, or weights that
            do not match the rewards.
    """

    name = "weighted-sum"

    def __init__(self, rewards: Mapping[str, Any] | Sequence[Any],
                 weights: Mapping[str, float] | Sequence[float] | None = None, *,
                 on_error: str = "raise", penalty: float = 0.0):
        if isinstance(rewards, Mapping):
            items = [(str(k), as_reward_function(v)) for k, v in rewards.items()]
        else:
            items = []
            seen: dict[str, int] = {}
            for entry in rewards:
                if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
                    name, fn = entry[0], as_reward_function(entry[1])
                else:
                    fn = as_reward_function(entry)
                    name = entry if isinstance(entry, str) else fn.name
                seen[name] = seen.get(name, 0) + 1
                items.append((name if seen[name] == 1 else f"{name}_{seen[name]}", fn))
        if not items:
            raise ValueError("WeightedSum needs at least one reward")
        names = [n for n, _ in items]
        if len(set(names)) != len(names):
            raise ValueError(f"WeightedSum component names must be unique, got {names}")
        if weights is None:
            w = [1.0] * len(items)
        elif isinstance(weights, Mapping):
            unknown = set(weights) - set(names)
            if unknown:
                raise ValueError(f"weights for unknown components {sorted(unknown)}; components are {names}")
            w = [float(weights.get(n, 1.0)) for n in names]
        else:
            w = [float(x) for x in weights]
            if len(w) != len(items):
                raise ValueError(f"got {len(w)} weights for {len(items)} rewards")
        if not all(np.isfinite(w)):
            raise ValueError(f"weights must be finite, got {w}")
        self.components = dict(items)
        self.weights = dict(zip(names, w))
        self.on_error = on_error
        self.penalty = penalty
        self.dense = all(fn.dense for _, fn in items)

    def score(self, prompts, completions, *, references=None, **columns):
        total = np.zeros(len(completions), np.float64)
        parts: dict[str, np.ndarray] = {}
        for name, fn in self.components.items():
            scores, comps = _call(fn, prompts, completions, references, columns, self.on_error, self.penalty)
            total += self.weights[name] * scores.astype(np.float64)
            parts[name] = scores
            for sub, values in comps.items():
                parts[f"{name}/{sub}"] = values
        return total.astype(np.float32), parts

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={self.weights[n]:g}*{fn!r}" for n, fn in self.components.items())
        return f"WeightedSum({inner})"


class RunningNormalizer(RewardFunction):
    """Standardise a reward with its running mean and standard deviation.

    Keeps the count ``n``, mean and sum of squared deviations ``M2`` of every
    score seen, merged batch by batch with the parallel form of Welford's
    algorithm (Welford, 1962; Chan, Golub & LeVeque, 1979), and returns
    ``clip((x - mean) / (std + epsilon))`` with ``std = sqrt(M2 / n)``
    (population standard deviation; taken as 1 while ``n < 2``).  The batch is
    added to the statistics *before* it is normalised.

    Args:
        reward: the reward to normalise (name, RewardFunction or callable).
        center: subtract the mean (``False`` only divides by the std).
        scale: divide by the std (``False`` only subtracts the mean).
        epsilon: added to the std.
        clip: clip the result to ``[-clip, clip]`` (``None``: no clipping).
        update: update the statistics on each call (set ``update=False`` for
            evaluation).

    Returns (when called): ``(scores, components)`` with ``components["raw"]``
    the unnormalised ``(B,)`` score plus the inner reward's components.

    Raises:
        ValueError: ``epsilon < 0`` or ``clip <= 0``.
    """

    name = "normalized"

    def __init__(self, reward: Any, *, center: bool = True, scale: bool = True, epsilon: float = 1e-8,
                 clip: float | None = None, update: bool = True):
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        if clip is not None and clip <= 0:
            raise ValueError(f"clip must be positive or None, got {clip}")
        self.reward = as_reward_function(reward)
        self.name = f"normalized({self.reward.name})"
        self.center = center
        self.scale = scale
        self.epsilon = float(epsilon)
        self.clip = clip
        self.update = update
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    @property
    def var(self) -> float:
        """Population variance of the scores seen (1.0 while fewer than two)."""
        return self.m2 / self.count if self.count >= 2 else 1.0

    @property
    def std(self) -> float:
        """Population standard deviation of the scores seen (1.0 while fewer than two)."""
        return float(np.sqrt(self.var))

    def update_stats(self, values: np.ndarray) -> None:
        """Merge ``values`` (any shape) into the running statistics."""
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if x.size == 0:
            return
        n_b, mean_b = x.size, float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Apply the current statistics to ``values`` without updating them: float32 array."""
        x = np.asarray(values, dtype=np.float64)
        if self.center:
            x = x - self.mean
        if self.scale:
            x = x / (self.std + self.epsilon)
        if self.clip is not None:
            x = np.clip(x, -self.clip, self.clip)
        return x.astype(np.float32)

    def score(self, prompts, completions, *, references=None, **columns):
        raw, comps = call_reward(self.reward, prompts, completions, references=references, columns=columns)
        if self.update:
            self.update_stats(raw)
        return self.normalize(raw), {"raw": raw, **comps}

    def state_dict(self) -> dict[str, Any]:
        """The statistics as plain Python numbers: ``{"count", "mean", "m2"}``."""
        return {"count": int(self.count), "mean": float(self.mean), "m2": float(self.m2)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore statistics saved by :meth:`state_dict`.

        Raises:
            KeyError: a key is missing.  ValueError: negative count or M2.
        """
        count, mean, m2 = int(state["count"]), float(state["mean"]), float(state["m2"])
        if count < 0 or m2 < 0:
            raise ValueError(f"invalid normalizer state {dict(state)}")
        self.count, self.mean, self.m2 = count, mean, m2
