"""Group sampling for RLOO and GRPO: ``k`` completions of each prompt in one rollout.

Each reset of the training env presents ``num_envs // k`` prompts, each
repeated ``k = group_size`` times in adjacent rows (rows ``[j k, (j+1) k)``
form group ``j``), through ``env.reset(options={"sample_indices": [...]})``.
The prompts come from one shuffled-epoch order over the whole data set
(:class:`textgym.prompts.SampleOrder`, the env's own rule, with a generator
seeded from the algorithm's seed), so the groups walk through the data set
without repeats within an epoch, and the order is checkpointed with the
algorithm (``extra_state``), so a resumed run draws the same prompts.

:func:`refill_informative_groups` is DAPO's dynamic sampling (Yu et al., "DAPO: An
Open-Source LLM Reinforcement Learning System at Scale", 2025, eq. 11 and
Algorithm 1): groups whose rewards are all equal are dropped and replaced by
groups of new rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from textgym.agents.common.base import OnPolicyAlgorithm, OnPolicyConfig
from textgym.agents.common.rollout import RolloutBatch, check_env
from textgym.agents.group_functional import informative_groups
from textgym.prompts import SampleOrder

__all__ = ["GroupConfig", "PromptGroups", "GroupedAlgorithm", "check_group_size", "refill_informative_groups"]


@dataclass
class GroupConfig(OnPolicyConfig):
    """Settings of the group-sampling algorithms (RLOO, GRPO); the shared ones are in :class:`OnPolicyConfig`.

    Attributes:
        group_size: samples per prompt ``k >= 2``; ``env.num_envs`` must be a multiple of it.
        n_epochs: passes over each rollout batch.
        minibatch_size: episodes per optimizer step (``None``: the whole batch).
        micro_batch_size: episodes per forward/backward (gradients accumulated; ``None``: the whole minibatch;
            ``"auto"``, the default: as many as fit ``micro_batch_memory_mb``).
        clip_range: ratio clip ``eps`` (``None``: no clipping).
        target_kl: stop the epochs early once a minibatch's ``approx_kl`` exceeds it (``None``: never).
    """

    group_size: int = 4
    n_epochs: int = 1
    minibatch_size: int | None = None
    micro_batch_size: int | str | None = "auto"
    clip_range: float | None = 0.2
    target_kl: float | None = None

    size_fields = ("n_epochs", "minibatch_size", "micro_batch_size")

    def __post_init__(self):
        super().__post_init__()
        if self.n_epochs is None:
            raise ValueError("n_epochs must be an integer >= 1, got None")
        check_group_size(None, self.group_size)
        if self.clip_range is not None and not self.clip_range > 0:
            raise ValueError(f"clip_range must be > 0 or None, got {self.clip_range}")

    def one_step_per_rollout(self) -> bool:
        """One epoch of one minibatch: the ratio is 1 by construction, so ``rescore_policy`` defaults to off."""
        return self.n_epochs == 1 and self.minibatch_size is None


def check_group_size(num_envs: int | None, group_size: Any) -> None:
    """Raise ``ValueError`` unless ``group_size`` is an integer >= 2 that divides ``num_envs`` (if given).

    Raises:
        ValueError: with what to change.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 2:
        raise ValueError(f"group_size must be an integer >= 2 (samples per prompt), got {group_size!r}")
    if num_envs is not None and num_envs % group_size:
        raise ValueError(f"num_envs ({num_envs}) must be a multiple of group_size ({group_size}): each rollout "
                         f"holds num_envs // group_size prompts x group_size samples; build the env with "
                         f"num_envs={max(1, num_envs // group_size) * group_size} or change group_size")


class PromptGroups:
    """Chooses the prompts of each grouped reset (see the module docstring).

    Args:
        env: the training ``TextGenVectorEnv`` (``num_envs`` a multiple of ``group_size``).
        group_size: samples per prompt ``k >= 2``.
        seed: seeds the prompt order's generator.

    Raises:
        ValueError: see :func:`check_group_size`.
    """

    def __init__(self, env: Any, group_size: int, seed: int):
        self.env = check_env(env)
        check_group_size(self.env.num_envs, group_size)
        self.group_size = int(group_size)
        self.order = SampleOrder(len(self.env.data), self.env.shuffle)  # the env's own shuffle setting
        self.rng = np.random.default_rng(seed)

    def next_indices(self) -> list[int]:
        """The next ``num_envs`` sample indices: ``num_envs // k`` prompts, each repeated ``k`` times."""
        prompts = [self.order.next(self.rng) for _ in range(self.env.num_envs // self.group_size)]
        return [i for i in prompts for _ in range(self.group_size)]

    def state_dict(self) -> dict[str, Any]:
        """Position in the prompt order and the generator's state (for exact resume)."""
        return {"order": self.order.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.order.load_state_dict(state["order"])
        self.rng.bit_generator.state = state["rng"]


class GroupedAlgorithm(OnPolicyAlgorithm):
    """An on-policy algorithm whose rollouts hold ``config.group_size`` samples of each prompt (RLOO, GRPO).

    Args:
        policy: an :class:`LMActorCritic` or a model name (RLOO and GRPO do not use its value head).
        env: a ``TextGenVectorEnv`` with ``autoreset_mode="Disabled"`` and ``num_envs`` a multiple of ``group_size``.
        config: the algorithm's config (a :class:`GroupConfig`: it has a ``group_size``).

    Raises:
        ValueError: ``env.num_envs`` is not a multiple of ``group_size`` (checked before anything is built).
    """

    def __init__(self, policy: Any, env: Any, config: OnPolicyConfig | None = None):
        cfg = config if config is not None else self.config_class()
        check_group_size(check_env(env).num_envs, getattr(cfg, "group_size", 0))
        super().__init__(policy, env, cfg)
        self.groups = PromptGroups(self.env, cfg.group_size, self.seed)  # per rank: groups never straddle ranks

    def reset_options(self) -> dict[str, Any]:
        """Grouped prompts for the next rollout: ``{"sample_indices": [...]}``."""
        return {"sample_indices": self.groups.next_indices()}

    def extra_state(self) -> dict[str, Any]:
        return {"groups": self.groups.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.groups.load_state_dict(state["groups"])

    def _reseed(self, seed: int) -> None:
        super()._reseed(seed)
        self.groups.rng = np.random.default_rng(seed)


def refill_informative_groups(batch: RolloutBatch, collect: Callable[[], RolloutBatch],
                              returns_fn: Callable[[RolloutBatch], torch.Tensor], group_size: int,
                              max_extra_rollouts: int) -> tuple[RolloutBatch, dict[str, float]]:
    """DAPO's dynamic sampling: keep the groups whose returns are not all equal, and fill the batch back to its
    ``N`` rows with the informative groups of up to ``max_extra_rollouts`` more rollouts (``collect()``, new
    prompts).  Slots still empty after that keep all-equal groups (advantage 0), so ``N`` never changes.

    Args:
        batch: ``N`` rows, groups of ``group_size`` adjacent rows.
        collect: ``() -> RolloutBatch``, another rollout of ``N`` rows.
        returns_fn: ``batch -> (N,)`` returns the advantages are computed from.
        group_size: ``k``.
        max_extra_rollouts: the most extra collections (>= 0).

    Returns:
        ``(batch, stats)``: ``N`` rows, informative groups first, in collection order;
        ``stats/dropped_groups`` (all-equal groups collected and left out of the batch),
        ``stats/extra_rollouts`` (collections beyond the first) and ``stats/discarded_tokens``
        (generated tokens left out of the batch).
    """
    n, k = batch.mask.shape[0], group_size
    keep: list[RolloutBatch] = []  # informative groups
    spare: list[RolloutBatch] = []  # all-equal groups
    extra, have, generated = 0, 0, 0
    while True:
        ok = informative_groups(returns_fn(batch), k).repeat_interleave(k)  # (N,) bool per row
        keep.append(batch.index(ok))
        spare.append(batch.index(~ok))
        have += int(ok.sum())
        generated += int(batch.mask.sum())
        if have >= n or extra >= max_extra_rollouts:
            break
        batch = collect()
        extra += 1
    rows = RolloutBatch.cat(keep + spare).index(slice(0, n))
    n_spare = sum(int(b.mask.shape[0]) for b in spare)
    dropped = (n_spare - max(n - have, 0)) // k  # all-equal groups not used to fill the batch
    return rows, {"stats/dropped_groups": float(dropped), "stats/extra_rollouts": float(extra),
                  "stats/discarded_tokens": float(generated - int(rows.mask.sum()))}
