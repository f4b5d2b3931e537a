"""Pure RL math shared by every textgym algorithm: masked statistics, GAE, KL estimators, losses, returns.

The group baselines of the critic-free algorithms (RLOO, GRPO and its variants) live in
:mod:`textgym.agents.group_functional` and are re-exported here.

Every function here is stateless and works on
``torch`` tensors laid out ``(N, T)``: ``N`` episodes (rows), ``T`` generated
token slots.  A *mask* is ``(N, T)`` bool or 0/1 float with 1 on the real
(generated) tokens of each row; for token-level text generation the real
tokens of a row are a prefix ``[0, L_i)`` of its ``T`` slots.

Sources:
  * GAE: Schulman, Moritz, Levine, Jordan, Abbeel, "High-Dimensional
    Continuous Control Using Generalized Advantage Estimation", ICLR 2016, eq. 16.
  * KL estimators k1/k2/k3: J. Schulman, "Approximating KL Divergence",
    http://joschu.net/blog/kl-approx.html (2020).
  * Discounted returns: Williams, "Simple Statistical Gradient-Following
    Algorithms for Connectionist Reinforcement Learning", Machine Learning 1992;
    n-step returns: Mnih et al., "Asynchronous Methods for Deep Reinforcement
    Learning", ICML 2016, Algorithm S3.
  * Decoupled ("clip-higher") ratio clip: Yu et al., "DAPO: An Open-Source LLM
    Reinforcement Learning System at Scale", 2025, eq. 10.
  * Top-p action mask: Ramamurthy et al., "Is Reinforcement Learning (Not) for
    Natural Language Processing", ICLR 2023 (NLPO), after Holtzman et al. 2020.
"""

from __future__ import annotations


import torch

from textgym.agents.group_functional import group_advantages, informative_groups, overlong_penalty, rloo_baseline

__all__ = [
    "masked_sum",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "compute_gae",
    "kl_estimate",
    "KL_ESTIMATORS",
    "LOG_RATIO_BOUND",
    "explained_variance",
    "clipped_policy_loss",
    "clipped_value_loss",
    "kl_penalized_rewards",
    "discounted_returns",
    "nstep_returns",
    "rloo_baseline",
    "group_advantages",
    "informative_groups",
    "overlong_penalty",
    "top_p_mask",
]

#: Names accepted by :func:`kl_estimate`.
KL_ESTIMATORS = ("k1", "k2", "abs", "k3")

#: Bound on the per-token log-ratio ``log pi(a) - log pi_ref(a)`` in :func:`kl_estimate` (nats).
#: float32 ``exp`` overflows to ``inf`` above 88.7, so k3's ``exp(-r)`` did for ``r < -88.7`` (and the
#: squares in whitening overflow already above about 44); at 20 nats the probability ratio is already
#: ``e**20 ~ 4.9e8`` (a token the other model all but never picks), so a larger ratio says nothing the
#: penalty could use, while every estimate, its square and its sum over a batch stay finite.
LOG_RATIO_BOUND = 20.0


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
        mask: ``(N, T)`` bool/0-1, real tokens: a prefix of each row, or (a
            conversation) the agent's tokens with env tokens between turns, which
            are skipped: ``V_{t+1}`` of a turn's last token is the value before
            the next turn's first token, so GAE runs over the whole conversation.
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

    ``r`` is first clamped to ``[-LOG_RATIO_BOUND, LOG_RATIO_BOUND]`` (20 nats, see
    :data:`LOG_RATIO_BOUND`), so every estimate is finite for any finite log-probabilities
    (k3 at most ``e**20 - 21 ~ 4.9e8`` per token); outside the bound the estimate is
    constant and has no gradient.

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
    r = (logp - ref_logp).clamp(-LOG_RATIO_BOUND, LOG_RATIO_BOUND)
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
    clip_range: float | tuple[float, float] | None, normalizer: float | torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate (Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7), as a loss.

    ``ratio = exp(logp - old_logp)``; per token
    ``-min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)``, summed over real
    tokens and divided by ``normalizer`` (the number of real tokens of the
    whole minibatch, so micro-batch losses add up to the minibatch token mean).
    ``eps_low = eps_high = eps`` is PPO's clip; ``eps_high > eps_low`` is DAPO's
    "clip-higher" (Yu et al. 2025, eq. 10).  A sequence-level ratio (RLOO, GSPO)
    is the same call on ``(N, 1)`` tensors.

    Args:
        logp, old_logp, advantages: ``(N, T)`` float.
        mask: ``(N, T)`` bool.
        clip_range: ``eps``, or ``(eps_low, eps_high)`` (``None`` or ``float("inf")``: no clipping).
        normalizer: divisor of the sums (token count of the full minibatch).
        weights: optional ``(N, T)`` per-token weights (>= 0) of the loss and of the
            ``approx_kl`` / ``clipfrac`` sums (e.g. ``1 / |o_i|`` for GRPO's
            per-sequence mean); ``None``: 1.

    Returns:
        ``(loss, sums)``: scalar loss; ``sums`` holds the masked (weighted) *sums*
        (not means) of ``approx_kl`` (Schulman's k3 of the ratio: ``(r - 1) - log r``)
        and ``clipfrac``, and ``ratio`` ``(N, T)`` detached.
    """
    low, high = clip_range if isinstance(clip_range, tuple) else (clip_range, clip_range)
    low, high = (float("inf") if c is None else c for c in (low, high))
    log_ratio = torch.where(mask, logp - old_logp, 0.0)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - low, 1.0 + high) * advantages
    w = 1.0 if weights is None else weights
    loss = masked_sum(-torch.minimum(unclipped, clipped) * w, mask) / normalizer
    with torch.no_grad():
        sums = {
            "approx_kl": masked_sum(((ratio - 1.0) - log_ratio) * w, mask),
            "clipfrac": masked_sum(((ratio < 1.0 - low) | (ratio > 1.0 + high)).float() * w, mask),
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


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Monte-Carlo return of every token: ``G_t = sum_{k >= t} gamma^(k - t) r_k`` over the row's real tokens.

    The REINFORCE return (Williams 1992); it equals GAE with ``V = 0``,
    ``lambda = 1`` and no bootstrap, which is how it is computed.

    Args:
        rewards: ``(N, T)`` float, per-token rewards.
        mask: ``(N, T)`` bool/0-1, real tokens (a prefix of each row).
        gamma: discount per token, in ``[0, 1]``.

    Returns:
        ``(N, T)`` float32, 0 on padding.
    """
    zeros = torch.zeros(rewards.shape[0], dtype=torch.float32, device=rewards.device)
    returns, _ = compute_gae(rewards, torch.zeros_like(rewards, dtype=torch.float32), mask, zeros, gamma, 1.0)
    return returns


@torch.no_grad()
def nstep_returns(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, bootstrap_values: torch.Tensor,
                  gamma: float, n: int) -> torch.Tensor:
    """n-step bootstrapped targets (Mnih et al. 2016, A3C): for a row with real tokens ``0..L-1``::

        R_t = sum_{k < m} gamma^k r_{t+k} + gamma^m V_{t+m},    m = min(n, L - t),

    with ``V_L`` = ``bootstrap_values`` (``V(s_L)`` after a truncated episode, 0
    after a terminated one).  ``n >= T`` gives the Monte-Carlo return plus the
    discounted bootstrap.

    Args:
        rewards, values: ``(N, T)`` float (``values[i, t]`` = ``V(s_t)``).
        mask: ``(N, T)`` bool/0-1, real tokens (a prefix of each row).
        bootstrap_values: ``(N,)`` float.
        gamma: discount per token.
        n: steps before bootstrapping (>= 1).

    Returns:
        ``(N, T)`` float32, 0 on padding.

    Raises:
        ValueError: ``n < 1`` or shape mismatch.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if rewards.shape != values.shape or rewards.shape != mask.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same (N, T) shape")
    m = mask.bool()
    r = torch.where(m, rewards.float(), 0.0)
    n_rows, t_max = r.shape
    lengths = m.sum(-1)  # (N,)
    sums = torch.zeros_like(r)
    for k in range(min(n, t_max)):  # rewards after a row's end are 0, so the window stops at L by itself
        sums[:, : t_max - k] += gamma**k * r[:, k:]
    # V_0..V_{L-1}, then V_L = bootstrap at index L (a padding slot, or the extra column when L = T)
    v_ext = torch.cat([torch.where(m, values.float(), 0.0), torch.zeros(n_rows, 1, device=r.device)], 1)
    v_ext.scatter_(1, lengths[:, None], bootstrap_values.float()[:, None])
    t = torch.arange(t_max, device=r.device)[None, :]
    end = torch.minimum(t + n, lengths[:, None])  # (N, T): t + m
    boot = gamma ** (end - t).float() * v_ext.gather(1, end)
    return torch.where(m, sums + boot, 0.0)


def top_p_mask(logits: torch.Tensor, p: float) -> torch.Tensor:
    """The top-p (nucleus) set of each distribution: the smallest set of most likely tokens with mass ``>= p``.

    NLPO's action mask (Ramamurthy et al. 2023) applies this to the masking
    policy's logits; sampling's top-p
    (:func:`textgym.agents.common.sampling.process_logits`) uses it too.  The most likely
    token is always kept; ``-inf`` logits are never kept.

    Args:
        logits: ``(..., V)`` float (temperature already applied, if any).
        p: probability mass in ``(0, 1]``.

    Returns:
        ``(..., V)`` bool, True on kept tokens.

    Raises:
        ValueError: ``p`` outside ``(0, 1]``.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top-p mass must be in (0, 1], got {p}")
    z = logits.float()
    if p >= 1.0:
        return torch.isfinite(z)
    sorted_z, order = torch.sort(z, dim=-1, descending=True)
    probs = torch.softmax(sorted_z, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # probability of strictly more likely tokens
    keep_sorted = mass_before < p  # the top token has mass_before 0: always kept
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return keep & torch.isfinite(z)
