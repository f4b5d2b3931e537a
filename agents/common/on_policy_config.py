"""``OnPolicyConfig``: the settings every textgym on-policy algorithm shares.

A config is two parts (flat fields, one YAML ``algo`` block):

* :class:`OnPolicyHyperparameters` - what the algorithm learns with (seed, optimizer,
  sampling, rollout sizes, KL control, LoRA); checked in ``__post_init__``;
* :class:`~textgym.agents.common.run_settings.OnPolicyRunSettings` - where and how the
  run is recorded (device, run folder, TensorBoard, progress bar, sample logging,
  checkpoint interval), the same for every algorithm.

Each algorithm's own config (``PPOConfig``, ``GRPOConfig``, ...) subclasses
:class:`OnPolicyConfig` and adds its hyperparameters after these fields.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

from textgym.agents.common.fsdp import check_strategy
from textgym.agents.common.micro_batch import AUTO
from textgym.agents.common.precision import check_precision
from textgym.agents.common.run_settings import OnPolicyRunSettings
from textgym.agents.common.sampling import SamplingParams
from textgym.agents.functional import KL_ESTIMATORS

__all__ = ["OnPolicyHyperparameters", "OnPolicyConfig", "KLPenaltyConfig"]


@dataclass
class OnPolicyHyperparameters:
    """Hyperparameters shared by every on-policy algorithm.

    Attributes:
        seed: seeds Python, NumPy, torch, the sampling generator and the env's first reset.
        learning_rate: AdamW learning rate.
        adam_betas: AdamW betas.
        adam_eps: AdamW epsilon.
        weight_decay: AdamW weight decay.
        max_grad_norm: clip the global gradient norm to this (``None``: no clipping; the norm is still logged).
        temperature: sampling temperature (> 0) during training rollouts.
        top_k: keep the ``top_k`` most likely tokens when sampling (``None``: all).
        top_p: nucleus sampling mass in ``(0, 1]``.
        rollouts_per_iteration: env batches (of ``env.num_envs`` episodes) collected per update.
        score_batch_size: rows per forward in the post-rollout scoring pass (bounds ``rows x T x V`` memory).
        micro_batch_memory_mb: the activation-memory budget, in MiB, of one forward/backward of the update
            when the algorithm's ``micro_batch_size`` is ``"auto"`` (its default): the update takes as many
            episodes per forward/backward as fit it by :func:`~textgym.agents.common.micro_batch.activation_bytes_per_row`'s
            estimate (at least one) and accumulates gradients over them (the same update).  The default
            256 MiB keeps one PPO iteration of SmolLM2-135M with LoRA within 1.3x the memory of inference
            (``benchmarks/memory.py``: one 96-token episode per forward/backward) and lets the tiny test
            models take a whole batch; raise it on a large GPU (fewer, larger passes: faster).
        rescore_policy: recompute policy logprobs/values in the scoring pass (exact ratio 1 and KL 0 at the
            start); ``False`` reuses the generation-time ones (equal up to the KV cache's float noise,
            ~1e-6) and saves one batched forward per rollout (see :class:`RolloutCollector`).  ``None``
            (the default): off when the config takes one optimizer step per rollout, where the ratio is
            1 by construction (:meth:`one_step_per_rollout`: REINFORCE, and RLOO / GRPO with
            ``n_epochs=1`` and ``minibatch_size=None``), on otherwise (PPO, NLPO, A2C, several epochs
            or minibatches); :meth:`rescores_policy` resolves it.
        target_kl_ref: target of the adaptive controller (Ziegler et al. 2019), in nats per episode;
            ``None`` keeps the KL coefficient fixed.  The coefficient itself is each algorithm's:
            ``kl_coef`` (a KL *reward penalty*: PPO, NLPO, A2C, REINFORCE, RLOO) or ``beta``
            (a KL *loss term*: GRPO), named by :attr:`kl_field`.
        kl_horizon: the adaptive controller's horizon, in episodes.
        kl_estimator: per-token KL estimator in the reward: ``"k1"``, ``"k2"``, ``"abs"`` or ``"k3"``.
        lora: LoRA when the policy is built from a model name: ``None``, ``True`` or a dict of
            ``peft.LoraConfig`` fields.
        adapter: path of a LoRA adapter to start from (the reference is then that adapter).
    """

    seed: int = 0
    learning_rate: float = 1e-5
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    rollouts_per_iteration: int = 1
    score_batch_size: int = 16
    micro_batch_memory_mb: float = 256.0
    rescore_policy: bool | None = None
    target_kl_ref: float | None = None
    kl_horizon: float = 10_000
    kl_estimator: str = "k1"
    lora: Any = None
    adapter: str | None = None

    #: fields that must be ``None`` or an integer >= 1, and fields that must lie in ``[0, 1]``
    #: (each algorithm's config names its own; checked by :meth:`__post_init__`)
    size_fields: ClassVar[tuple[str, ...]] = ()
    unit_fields: ClassVar[tuple[str, ...]] = ()
    #: fields with a fixed set of accepted values: ``{field: choices}`` (checked by :meth:`__post_init__`)
    choice_fields: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: the field holding the KL coefficient the controller starts from
    kl_field: ClassVar[str] = "kl_coef"

    def __post_init__(self):
        """Check the settings every algorithm shares, then :attr:`size_fields`, :attr:`unit_fields`, :attr:`choice_fields`.

        Raises:
            ValueError: naming the field, its value and what it must be.
        """
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"learning_rate must be a number >= 0 (e.g. 1e-5; 0 freezes the weights), got {lr!r}")
        self.sampling()  # validates temperature / top_k / top_p
        mb = self.micro_batch_memory_mb
        if isinstance(mb, bool) or not isinstance(mb, numbers.Real) or not (math.isfinite(mb) and mb > 0):
            raise ValueError(f"micro_batch_memory_mb must be a number of MiB > 0 (e.g. 256), got {mb!r}")
        for name in self.size_fields:
            v = getattr(self, name)
            if name == "micro_batch_size" and v == AUTO:
                continue
            if v is not None and (not isinstance(v, numbers.Integral) or v < 1):
                extra = ", 'auto'" if name == "micro_batch_size" else ""
                raise ValueError(f"{name} must be an integer >= 1{extra} or None, got {v!r}")
        for name in self.unit_fields:
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")
        for name, choices in self.choice_fields.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")

    def one_step_per_rollout(self) -> bool:
        """Whether every rollout gets exactly one optimizer step, taken by the policy that sampled it (so the
        importance ratio is 1 by construction); ``False`` here, each algorithm's config says when it is."""
        return False

    def rescores_policy(self) -> bool:
        """``rescore_policy`` resolved: as set, or (``None``) off exactly when :meth:`one_step_per_rollout`."""
        return not self.one_step_per_rollout() if self.rescore_policy is None else bool(self.rescore_policy)

    def sampling(self) -> SamplingParams:
        """The training :class:`SamplingParams`."""
        return SamplingParams(self.temperature, self.top_k, self.top_p)


@dataclass
class OnPolicyConfig(OnPolicyRunSettings, OnPolicyHyperparameters):
    """Settings shared by every on-policy algorithm: :class:`OnPolicyHyperparameters`, then the run settings.

    The fields, in order: the hyperparameters (``seed`` ... ``adapter``, see
    :class:`OnPolicyHyperparameters`), then the run settings (``device``, ``run_dir``,
    ``tensorboard``, ``progress_bar``, ``log_samples``, ``save_every``, ``precision``, ``strategy``, see
    :class:`~textgym.agents.common.run_settings.OnPolicyRunSettings`), then the algorithm's own.
    """

    def __post_init__(self):
        """The hyperparameters' checks (:meth:`OnPolicyHyperparameters.__post_init__`), then ``precision`` and ``strategy``.

        Raises:
            ValueError: naming the field, its value and what it must be.
        """
        super().__post_init__()
        check_precision(self.precision)
        check_strategy(self.strategy)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class KLPenaltyConfig(OnPolicyConfig):
    """Settings of the token-level algorithms with a KL *reward penalty* (PPO, NLPO, A2C, REINFORCE).

    Attributes:
        kl_coef: weight of the penalty, ``r_t = env_reward_t - kl_coef * KL_t`` on every real token
            (the initial value when ``target_kl_ref`` makes it adaptive).
    """

    kl_coef: float = 0.05
