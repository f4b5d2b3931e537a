"""Group Relative Policy Optimization (GRPO; Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical
Reasoning in Open Language Models", 2024, section 4.1), critic-free.

Each rollout holds ``k = group_size`` completions ``o_1..o_k`` of every prompt
(adjacent rows, see :mod:`textgym.agents.common.groups`).  With ``R_i`` the episode
return (the env's score; no KL in the reward), every token of completion ``i``
gets the group-normalised advantage

    A_i = (R_i - mean(R_1..R_k)) / (std(R_1..R_k) + eps)

(0 for a group whose rewards are all equal), and the loss is the clipped ratio
objective plus the KL to the reference as a loss term (eq. 3), with the
unbiased, non-negative k3 estimator (eq. 4) of the *current* policy::

    L = - 1/G sum_i 1/|o_i| sum_t [ min(rho_t A_i, clip(rho_t, 1 - eps_c, 1 + eps_c) A_i) - beta * k3_t ],
    rho_t = pi(o_t | .) / pi_old(o_t | .),   k3_t = pi_ref/pi - log(pi_ref/pi) - 1.

``beta`` is ``config.beta``, the weight of the KL *loss term* (fixed, or adapted by
the controller towards ``target_kl_ref``); the penalty algorithms (PPO, RLOO, ...)
put the KL in the reward instead and call its weight ``kl_coef``.

Options give today's variants (presets registered as ``dr-grpo``, ``dapo``, ``gspo``, see
:mod:`textgym.agents.algorithms.grpo_variants`):

* ``scale_rewards=False``: advantages ``R_i - mean(R)`` without the std (Dr. GRPO, Liu et al. 2025);
* ``loss_aggregation``: ``"sequence"`` (the paper's ``1/|o_i|``), ``"token"`` (mean over the minibatch's
  tokens, DAPO, Yu et al. 2025) or ``"constant"`` (token sums over ``n x T``, ``T`` the token budget:
  Dr. GRPO's length-unbiased normaliser);
* ``clip_range_low`` / ``clip_range_high``: DAPO's decoupled "clip-higher";
* ``dynamic_sampling``: drop the groups whose rewards are all equal and refill the batch (DAPO);
* ``overlong_buffer``: DAPO's soft penalty over the last tokens of the budget;
* ``importance_sampling_level="sequence"``: one ratio per completion,
  ``exp(mean_t log rho_t)``, clipped per sequence (GSPO, Zheng et al. 2025).

Read :meth:`GRPO.update` top to bottom: its numbered steps are the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from textgym.agents.common import distributed
from textgym.agents.functional import clipped_policy_loss, kl_estimate, masked_mean, masked_sum
from textgym.agents.group_functional import group_advantages, overlong_penalty
from textgym.agents.common.groups import GroupConfig, GroupedAlgorithm, refill_informative_groups
from textgym.agents.common.rollout import RolloutBatch, check_env
from textgym.agents.common.updates import entropy_sum, loss_metrics, optimize_epochs, optimizer_metrics, optimizer_step
from textgym.agents.common.updates import policy_forward, rollout_metrics, update_kl_coef

__all__ = ["GRPO", "GRPOConfig", "LOSS_AGGREGATIONS"]


@dataclass
class GRPOConfig(GroupConfig):
    """GRPO settings (group sampling and epochs: :class:`GroupConfig`; the rest: :class:`OnPolicyConfig`).

    Attributes:
        beta: weight of the KL-to-reference term in the *loss* (0.04 in Shao et al.; the initial
            value when ``target_kl_ref`` makes it adaptive).
        kl_estimator: ``"k3"`` (the paper's) or ``"k2"``; estimators without a KL gradient
            in expectation (``"k1"``, ``"abs"``) are rejected.
        adv_eps: added to the group's reward standard deviation.
        ent_coef: weight of an entropy bonus (0 in the paper).
        loss_aggregation: ``"sequence"`` (mean over each completion's tokens, then over
            completions; Shao et al. eq. 3), ``"token"`` (mean over all tokens of the minibatch; DAPO) or
            ``"constant"`` (token sums divided by completions x the token budget ``T``; Dr. GRPO).
        scale_rewards: divide the group-centred rewards by the group's std (``False``: Dr. GRPO).
        clip_range_low, clip_range_high: the ratio is clipped to ``[1 - low, 1 + high]`` (``None``:
            ``clip_range``; DAPO's clip-higher: 0.2 / 0.28).
        importance_sampling_level: ``"token"`` (a ratio per token) or ``"sequence"`` (GSPO: one ratio per
            completion, ``exp`` of the mean token log-ratio, clipped per completion).
        dynamic_sampling: drop the groups whose rewards are all equal and collect new rollouts to refill the
            batch (DAPO); after ``max_extra_rollouts`` more env batches the remaining slots keep all-equal
            groups, so the batch size never changes.  Logged: ``stats/dropped_groups``, ``stats/extra_rollouts``.
        max_extra_rollouts: the bound on those extra env batches per iteration.
        overlong_buffer: DAPO's soft overlong penalty: a completion's reward falls linearly by up to
            ``overlong_penalty`` over the last ``overlong_buffer`` tokens of the budget (``None``: off).
        overlong_penalty: the penalty at the budget (1.0 in the paper).

    Rescoring: with ``n_epochs=1`` and ``minibatch_size=None`` (the default) the ratio is 1 by
    construction, so ``rescore_policy`` defaults to off (see :class:`OnPolicyHyperparameters`).
    """

    kl_field = "beta"  # the controller starts from config.beta
    #: what a config error says about a key GRPO does not have
    key_hints = {"kl_coef": "GRPO's KL to the reference is a loss term, weighted by `beta` (kl_coef is the "
                            "reward penalty of ppo, nlpo, a2c, reinforce, rloo)"}

    beta: float = 0.04
    kl_estimator: str = "k3"
    adv_eps: float = 1e-4
    ent_coef: float = 0.0
    loss_aggregation: str = "sequence"
    scale_rewards: bool = True
    clip_range_low: float | None = None
    clip_range_high: float | None = None
    importance_sampling_level: str = "token"
    dynamic_sampling: bool = False
    max_extra_rollouts: int = 4
    overlong_buffer: int | None = None
    overlong_penalty: float = 1.0

    choice_fields = {"loss_aggregation": ("sequence", "token", "constant"),
                     "importance_sampling_level": ("token", "sequence")}
    size_fields = (*GroupConfig.size_fields, "overlong_buffer")

    def __post_init__(self):
        super().__post_init__()
        if self.kl_estimator not in ("k3", "k2"):
            raise ValueError(f"GRPO puts the KL in the loss, where only 'k3' (the paper's) or 'k2' give its "
                             f"gradient; got kl_estimator={self.kl_estimator!r}")
        if not self.adv_eps > 0:
            raise ValueError(f"adv_eps must be > 0, got {self.adv_eps}")
        for name in ("clip_range_low", "clip_range_high"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 or None (None: clip_range), got {getattr(self, name)}")
        if isinstance(self.max_extra_rollouts, bool) or not isinstance(self.max_extra_rollouts, int) \
                or self.max_extra_rollouts < 0:
            raise ValueError(f"max_extra_rollouts must be an integer >= 0, got {self.max_extra_rollouts!r}")
        if not self.overlong_penalty >= 0:
            raise ValueError(f"overlong_penalty must be >= 0, got {self.overlong_penalty}")

    @property
    def clip_bounds(self) -> tuple[float | None, float | None]:
        """``(eps_low, eps_high)``: the ratio is clipped to ``[1 - eps_low, 1 + eps_high]``."""
        low, high = self.clip_range_low, self.clip_range_high
        return (self.clip_range if low is None else low, self.clip_range if high is None else high)


#: accepted values of ``GRPOConfig.loss_aggregation``
LOSS_AGGREGATIONS = GRPOConfig.choice_fields["loss_aggregation"]


class GRPO(GroupedAlgorithm):
    """GRPO: group-normalised advantages, clipped ratio, k3 KL to the reference in the loss (see the module docstring).

    Built as every :class:`GroupedAlgorithm` (arguments and errors there), with a :class:`GRPOConfig`.

    Example::

        env = gym.make_vec("textgym/TokenCount-v0", num_envs=32, vectorization_mode="vector_entry_point",
                           autoreset_mode="Disabled")
        algo = GRPO("tiny-char", env, GRPOConfig(group_size=8, learning_rate=2e-3))
        algo.learn(iterations=50)
    """

    config_class = GRPOConfig
    config: GRPOConfig

    def __init__(self, policy: Any, env: Any, config: GRPOConfig | None = None):
        buffer, budget = getattr(config, "overlong_buffer", None), getattr(check_env(env), "max_new_tokens", None)
        if buffer is not None and budget is not None and buffer > budget:
            raise ValueError(f"overlong_buffer ({buffer}) is longer than the env's max_new_tokens ({budget}): "
                             f"set it to at most {budget} tokens (e.g. {max(1, budget // 5)}, a fifth as in DAPO)")
        super().__init__(policy, env, config)

    def completion_returns(self, batch: RolloutBatch) -> torch.Tensor:
        """``(N,)`` each completion's return: the env's rewards summed, plus DAPO's overlong penalty if set."""
        returns = batch.rewards.sum(-1)  # (N,)
        if self.config.overlong_buffer is not None:
            returns = returns + overlong_penalty(batch.lengths, batch.mask.shape[1], self.config.overlong_buffer,
                                                 self.config.overlong_penalty)
        return returns

    def collect_rollouts(self) -> RolloutBatch:
        """The rollout; with ``dynamic_sampling``, all-equal groups replaced by groups of extra rollouts."""
        cfg = self.config
        batch = super().collect_rollouts()
        self.sampling_stats: dict[str, float] = {}
        if cfg.dynamic_sampling:
            batch, self.sampling_stats = refill_informative_groups(
                batch, super().collect_rollouts, self.completion_returns, cfg.group_size, cfg.max_extra_rollouts)
            self._conversations = []  # a conversation env's messages no longer line up with the rows
            # the left-out groups' tokens were generated too: they count in the budget (every rank's)
            self.num_timesteps += int(distributed.all_sum(torch.tensor(self.sampling_stats["stats/discarded_tokens"])))
        return batch

    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """One GRPO update on a batch of ``N / k`` groups of ``k`` completions; returns metrics."""
        cfg = self.config
        # 1. rollout: k completions of each prompt in adjacent rows (GroupedAlgorithm.reset_options); with
        #    dynamic sampling, all-equal groups were replaced by new ones (collect_rollouts)
        mask = batch.mask  # (N, T) bool, real tokens

        # 2. rewards: each completion's return (the env's rewards summed, + the overlong penalty; no KL here)
        returns = self.completion_returns(batch)  # (N,)

        # 3. advantages: centred within each group and divided by its std (not with scale_rewards=False)
        adv = group_advantages(returns, cfg.group_size, cfg.adv_eps, cfg.scale_rewards)  # (N,)
        advantages = torch.where(mask, adv[:, None], 0.0)  # (N, T)

        # 4. loss weights: 1/|o_i| per token and one unit per completion ("sequence"), else 1 per token
        lengths = mask.sum(-1, keepdim=True).clamp(min=1)  # (N, 1)
        weights = torch.where(mask, 1.0 / lengths if cfg.loss_aggregation == "sequence" else 1.0, 0.0)  # (N, T)

        # 5. optimise: epochs x minibatches of clipped-ratio (per token, or per completion) + beta * KL steps
        beta = self.kl_ctl.kl_coef  # config.beta, or the adaptive controller's current value
        avg, early_stop = optimize_epochs(
            self, batch, lambda rows: self.optimize_minibatch(batch, advantages, weights, beta, rows))

        # 6. KL coefficient: the adaptive controller sees the rollout's KL to the reference (per episode)
        kl = torch.where(mask, kl_estimate(batch.logprobs, batch.ref_logprobs, cfg.kl_estimator), 0.0)
        update_kl_coef(self, kl)

        # 7. metrics
        groups = returns.reshape(-1, cfg.group_size)
        return {
            **rollout_metrics(batch, kl, beta, cfg.kl_estimator),
            **loss_metrics(avg),
            "loss/kl": avg["kl_loss"],
            "stats/approx_kl": avg["approx_kl"],
            "stats/clipfrac": avg["clipfrac"],
            "stats/kl_ref_update": avg["kl"],
            "stats/group_reward_std": float(groups.std(-1).mean()),
            "stats/zero_advantage_groups": float((groups.amax(-1) == groups.amin(-1)).float().mean()),
            **getattr(self, "sampling_stats", {}),
            **optimizer_metrics(avg),
            "stats/early_stopped": float(early_stop),
        }

    def optimize_minibatch(self, batch: RolloutBatch, advantages: torch.Tensor, weights: torch.Tensor, beta: float,
                           rows: torch.Tensor) -> dict[str, float]:
        """One optimizer step on ``rows`` (micro-batched); the loss is normalised by the minibatch's
        completions (``"sequence"``), tokens (``"token"``) or completions x the token budget (``"constant"``);
        returns the means of :meth:`compute_loss`'s sums."""
        agg = self.config.loss_aggregation
        normalizer = (float(len(rows)) if agg == "sequence" else float(len(rows) * batch.mask.shape[1])
                      if agg == "constant" else batch.mask[rows].sum().clamp(min=1))
        return optimizer_step(self, rows, lambda c: self.compute_loss(batch.index(c), advantages[c], weights[c], beta,
                                                                     normalizer), normalizer)

    def compute_loss(self, mb: RolloutBatch, advantages: torch.Tensor, weights: torch.Tensor, beta: float,
                     normalizer: torch.Tensor | float) -> tuple[torch.Tensor, dict[str, float]]:
        """GRPO loss of a (micro-)batch: weighted token sums of ``clipped surrogate + beta * KL - ent_coef * H``.

        With ``importance_sampling_level="sequence"`` (GSPO) the surrogate has one term per completion,
        on ``exp(mean_t (logp_t - old_logp_t))``, weighted by the completion's summed token weights.

        Args:
            mb: the rows of the batch.
            advantages: ``(n, T)`` float32, each row's group advantage on its real tokens.
            weights: ``(n, T)`` float32 per-token loss weights (0 on padding).
            beta: the KL coefficient.
            normalizer: see :meth:`optimize_minibatch`.

        Returns:
            ``(loss, sums)``: the loss (with grad) and the weighted sums of ``approx_kl``,
            ``clipfrac``, ``kl`` (the k3 KL to the reference under the current policy),
            ``entropy``, ``policy_loss``, ``kl_loss``, ``value_loss`` (0), ``loss``.
        """
        cfg, dev = self.config, self.policy.device
        f = policy_forward(self.collector, mb, with_values=False)  # logp (n, t), processed (n, t, V)
        t, m = f.t, f.mask
        w = weights[:, :t].to(dev)
        logp, old_logp, adv = f.logp, mb.logprobs[:, :t].to(dev), advantages[:, :t].to(dev)
        pg_mask, pg_w = m, w
        if cfg.importance_sampling_level == "sequence":  # GSPO: log of the geometric mean of the token ratios
            logp, old_logp = masked_mean(logp, m, dim=1)[:, None], masked_mean(old_logp, m, dim=1)[:, None]  # (n, 1)
            adv, pg_w = masked_mean(adv, m, dim=1)[:, None], w.sum(1, keepdim=True)  # (n, 1): A_i, its weight
            pg_mask = pg_w > 0
        pg_loss, pg = clipped_policy_loss(logp, old_logp, adv, pg_mask, cfg.clip_bounds, normalizer, weights=pg_w)
        kl_sum = masked_sum(kl_estimate(f.logp, mb.ref_logprobs[:, :t].to(dev), cfg.kl_estimator) * w, m)
        kl_loss = kl_sum / normalizer
        entropy = entropy_sum(f.processed, m, cfg.ent_coef != 0, weights=w) / normalizer
        loss = pg_loss + beta * kl_loss - cfg.ent_coef * entropy
        nz = float(normalizer)
        return loss, {"approx_kl": float(pg["approx_kl"]), "clipfrac": float(pg["clipfrac"]),
                      "kl": float(kl_sum.detach()), "entropy": float(entropy.detach()) * nz,
                      "policy_loss": float(pg_loss.detach()) * nz, "kl_loss": float(kl_loss.detach()) * nz,
                      "value_loss": 0.0, "loss": float(loss.detach()) * nz}
