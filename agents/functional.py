"""Pure RL math shared by every textgym algorithm: masked statistics, GAE, KL estimators, KL controllers.

Every function here is stateless (the controllers hold one float) and works on
``torch`` tensors laid out ``(N, T)``: ``N`` episodes (rows), ``T`` generated
token slots.  A *mask* is ``(N, T)`` bool or 0/1 float with 1 on the real
(generated) tokens of each row; for token-level text generation the real
tokens of a row are a prefix ``[0, L_i)`` of its ``T`` slots.

Sources:
  * GAE: Schulman, Moritz, Levine, Jordan, Abbeel, "High-Dimensional
    Continuous Control Using Generalized Advantage Estimation", ICLR 2016, eq. 16.
  * KL estimators k1/k2/k3: J. Schulman, "Approximating KL Divergence",
    http://joschu.net/blog/kl-approx.html (2020).
  * Adaptive KL coefficient: Ziegler et al., "Fine-Tuning Language Models from
    Human Preferences", 2019, section 2.2 (proportional controller on log KL).
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "masked_sum",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "compute_gae",
    "kl_estimate",
    "KL_ESTIMATORS",
    "AdaptiveKLController",
    "FixedKLController",
    "make_kl_controller",
    "explained_variance",
    "clipped_policy_loss",
    "clipped_value_loss",
    "kl_penalized_rewards",
]

#: Names accepted by :func:`kl_estimate`.
KL_ESTIMATORS = ("k1", "k2", "abs", "k3")


def _as_float_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(dtype=like.dtype if like.is_floating_point() else torch.float32)


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` over entries where ``mask`` is 1; masked entries never leak (even if NaN/inf).

    Args:
        x: any float tensor.
        mask: same shape, bool or 0/1.
        dim: reduce one dimension, or all (``None``).
    """
    m = mask.bool()
    z = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return z.sum() if dim is None else z.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1 (0 when there are none, never NaN).

    Args:
        x: float tensor, e.g. ``(N, T)``.
        mask: same shape, bool or 0/1.
        dim: reduce one dimension, or all (``None``).

    Returns:
        A scalar (``dim=None``) or ``x`` reduced over ``dim``.
    """
    n = _as_float_mask(mask, x).sum() if dim is None else _as_float_mask(mask, x).sum(dim)
    return masked_sum(x, mask, dim) / n.clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over the masked entries (a scalar).

    With ``unbiased=True`` Bessel's correction ``n / (n - 1)`` is applied when
    ``n >= 2``; with ``n <= 1`` the (biased) value 0 is returned, never NaN.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = _as_float_mask(mask, x).sum()
        var = torch.where(n >= 2, var * n / (n - 1).clamp(min=1), var)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` with mean and variance over the masked entries.

    Masked-out entries are returned as 0.  One valid entry gives 0 (var 0, no
    NaN); with ``shift_mean=False`` the mean is added back (scale only).

    Args:
        x: float tensor ``(N, T)``.
        mask: ``(N, T)`` bool or 0/1.
        shift_mean: subtract the mean (default) or only rescale.
        eps: added to the variance.

    Returns:
        ``(N, T)`` tensor like ``x``.
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask, unbiased=True)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(mask.bool(), out, torch.zeros((), dtype=out.dtype, device=out.device))


@torch.no_grad()
def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    bootstrap_values: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over token slots (Schulman et al. 2016, eq. 16).

    For a row with real tokens ``0..L-1``::

        delta_t = r_t + gamma * V_{t+1} - V_t,      V_L := bootstrap value
        A_t     = delta_t + gamma * lam * A_{t+1},  A_L := 0
        R_t     = A_t + V_t                          (the value target)

    ``bootstrap_values[i]`` is ``V(s_L)`` of the state after the last token
    when the episode was *truncated* and must be 0 when it *terminated* (no
    future reward after a stop token).

    Args:
        rewards: ``(N, T)`` float, per-token rewards (0 on padding).
        values: ``(N, T)`` float, ``V(s_t)`` of the state before token ``t``.
        mask: ``(N, T)`` bool/0-1, real tokens; must be a prefix of each row.
        bootstrap_values: ``(N,)`` float, ``V(s_L)`` (truncated) or 0 (terminated).
        gamma: discount per token.
        lam: GAE lambda.

    Returns:
        ``(advantages, returns)``, each ``(N, T)`` float32, 0 on padding.

    Raises:
        ValueError: shape mismatch.
    """
    if rewards.shape != values.shape or rewards.shape != mask.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same (N, T) shape")
    if bootstrap_values.shape != rewards.shape[:1]:
        raise ValueError(f"bootstrap_values must be ({rewards.shape[0]},), got {tuple(bootstrap_values.shape)}")
    m = mask.bool()
    r = torch.where(m, rewards.float(), 0.0)
    v = torch.where(m, values.float(), 0.0)
    n, t_max = r.shape
    adv = torch.zeros_like(r)
    next_adv = torch.zeros(n, dtype=r.dtype, device=r.device)  # A_{t+1}
    next_val = bootstrap_values.float().clone()  # V_{t+1}; V_L = bootstrap at each row's end
    for t in reversed(range(t_max)):
        real = m[:, t]
        # a padding slot t passes the bootstrap through to the last real token, unchanged
        delta = r[:, t] + gamma * next_val - v[:, t]
        a_t = delta + gamma * lam * next_adv
        adv[:, t] = torch.where(real, a_t, 0.0)
        next_adv = torch.where(real, a_t, next_adv)
        next_val = torch.where(real, v[:, t], next_val)
    returns = torch.where(m, adv + v, 0.0)
    return adv, returns


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-sample estimate of ``KL(pi || pi_ref)`` from the log-probabilities of tokens sampled from ``pi``.

    With ``r = logp - ref_logp`` (log of ``pi(a) / pi_ref(a)``), after Schulman's
    "Approximating KL divergence":

    * ``"k1"``: ``r`` - unbiased, high variance, can be negative per token.
    * ``"k2"``: ``r**2 / 2`` - biased (exact to second order), low variance, >= 0.
    * ``"abs"``: ``|r|`` - biased, >= 0.
    * ``"k3"``: ``exp(-r) - 1 + r`` - unbiased and >= 0 (a Bregman divergence).

    Args:
        logp: float tensor, log pi(a) of the sampled tokens (any shape).
        ref_logp: same shape, log pi_ref(a).
        kind: one of :data:`KL_ESTIMATORS`.

    Returns:
        Tensor of the same shape (nats).

    Raises:
        ValueError: unknown ``kind`` or shape mismatch.
    """
    if logp.shape != ref_logp.shape:
        raise ValueError(f"logp {tuple(logp.shape)} and ref_logp {tuple(ref_logp.shape)} must have the same shape")
    r = logp - ref_logp
    if kind == "k1":
        return r
    if kind == "k2":
        return 0.5 * r * r
    if kind == "abs":
        return r.abs()
    if kind == "k3":
        return torch.expm1(-r) + r
    raise ValueError(f"unknown KL estimator {kind!r}; choose one of {KL_ESTIMATORS}")


def kl_penalized_rewards(
    env_rewards: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
    kl_coef: float, estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token RLHF reward ``r_t = env_reward_t - kl_coef * KL_t`` on real tokens, 0 elsewhere.

    For sparse rewards the env pays the episode score on its last real token
    (the stop token when it terminated), so the score lands there; padding
    after a row's end gets neither KL nor reward (Ziegler et al. 2019, eq. 2,
    spread per token as in Stiennon et al. 2020).

    Args:
        env_rewards, logprobs, ref_logprobs: ``(N, T)`` float.
        mask: ``(N, T)`` bool, real tokens.
        kl_coef: ``beta``.
        estimator: see :func:`kl_estimate`.

    Returns:
        ``(rewards, kl)``, each ``(N, T)``, 0 on padding; ``kl`` is the applied per-token estimate.
    """
    m = mask.bool()
    kl = torch.where(m, kl_estimate(logprobs, ref_logprobs, estimator), 0.0)
    rewards = torch.where(m, env_rewards - kl_coef * kl, 0.0)
    return rewards, kl


def explained_variance(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """``1 - Var[target - pred] / Var[target]`` over masked entries (nan when Var[target] is 0)."""
    var_t = masked_var(target, mask, unbiased=False)
    if float(var_t) == 0.0:
        return float("nan")
    return float(1.0 - masked_var(target - pred, mask, unbiased=False) / var_t)


def clipped_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
    clip_range: float, normalizer: float | torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate (Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7), as a loss.

    ``ratio = exp(logp - old_logp)``; per token
    ``-min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)``, summed over real
    tokens and divided by ``normalizer`` (the number of real tokens of the
    whole minibatch, so micro-batch losses add up to the minibatch token mean).

    Args:
        logp, old_logp, advantages: ``(N, T)`` float.
        mask: ``(N, T)`` bool.
        clip_range: ``eps``.
        normalizer: divisor of the sums (token count of the full minibatch).

    Returns:
        ``(loss, sums)``: scalar loss; ``sums`` holds the masked *sums* (not
        means) of ``approx_kl`` (Schulman's k3 of the ratio: ``(r - 1) - log r``)
        and ``clipfrac``, and ``ratio`` ``(N, T)`` detached.
    """
    log_ratio = torch.where(mask, logp - old_logp, 0.0)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * advantages
    loss = masked_sum(-torch.minimum(unclipped, clipped), mask) / normalizer
    with torch.no_grad():
        sums = {
            "approx_kl": masked_sum((ratio - 1.0) - log_ratio, mask),
            "clipfrac": masked_sum(((ratio - 1.0).abs() > clip_range).float(), mask),
            "ratio": ratio.detach(),
        }
    return loss, sums


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       clip_range: float | None, normalizer: float | torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)`` summed over real tokens / ``normalizer``.

    ``clip_range=None`` gives the plain squared error.  Returns ``(loss, {"clipfrac": masked sum})``.
    """
    err = (values - returns) ** 2
    if clip_range is not None:
        v_clip = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
        err_clip = (v_clip - returns) ** 2
        clipfrac = masked_sum((err_clip > err).float().detach(), mask)
        err = torch.maximum(err, err_clip)
    else:
        clipfrac = torch.zeros(())
    return 0.5 * masked_sum(err, mask) / normalizer, {"clipfrac": clipfrac}


class FixedKLController:
    """A constant KL coefficient ``beta``.

    Args:
        kl_coef: ``beta`` (>= 0).
    """

    def __init__(self, kl_coef: float):
        if kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        """No-op; returns ``beta``."""
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. (2019) proportional controller that steers the KL towards a target.

    ``e = clip(KL / target - 1, -0.2, 0.2)``;  ``beta <- beta * (1 + e * n_steps / horizon)``.
    KL above the target raises ``beta``; below it lowers ``beta``.

    Args:
        init_kl_coef: starting ``beta`` (> 0).
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
        """Move ``beta`` after observing ``current_kl`` over ``n_steps`` episodes; returns the new ``beta``."""
        if not math.isfinite(current_kl):
            return self.value
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


def make_kl_controller(kl_coef: float, target_kl_ref: float | None, horizon: float) -> FixedKLController:
    """A :class:`FixedKLController` (``target_kl_ref=None``) or an :class:`AdaptiveKLController`."""
    if target_kl_ref is None:
        return FixedKLController(kl_coef)
    return AdaptiveKLController(kl_coef, target_kl_ref, horizon)
