"""The parts of an update every textgym algorithm shares: the policy forward, optimizer steps, metrics.

* :func:`policy_forward`: one forward of the policy over a (micro-)batch of
  finished episodes, giving the log-probabilities of the taken tokens under the
  sampling distribution (the rollout's logits processor, temperature, top-k,
  top-p), the values and the processed logits.
* :func:`optimize_rows`: one optimizer step on a set of rows, gradients
  accumulated over micro-batches, the global norm clipped, and the step
  skipped (weights and optimizer state untouched) when a loss or the gradient
  norm is not finite.
* :func:`minibatch_epochs`: epochs over shuffled minibatches of
  :func:`optimize_rows` steps with an early stop on a target ``approx_kl``.
* :func:`penalized_rewards`, :func:`optimizer_step`, :func:`optimize_epochs`,
  :func:`update_kl_coef`: the steps above with an algorithm's own settings (its KL controller,
  optimizer, ``micro_batch_size``, ``max_grad_norm``, ``n_epochs``, ...), the
  preambles the algorithms' ``update`` steps share.
* :func:`average_minibatches`, :func:`rollout_metrics`, :func:`optimizer_metrics`:
  the metric names every algorithm logs (``reward/score``, ``stats/kl_ref``,
  ``stats/grad_norm``, ...).

A loss function handed to :func:`optimize_rows` returns ``(loss, sums)``: the
micro-batch's share of the minibatch loss (its sum divided by the minibatch's
*normaliser*: token count, sequence count, ...) and statistics as sums over
the same units, which :func:`optimize_rows` divides by that normaliser.
Statistics named in :data:`MAX_STATS` are combined by ``max`` instead.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import torch

from textgym.agents.common import distributed, fsdp
from textgym.agents.functional import kl_penalized_rewards, masked_sum
from textgym.agents.common.rollout import RolloutBatch, RolloutCollector, content_span
from textgym.agents.common.sampling import entropy_of, logprobs_of

__all__ = ["MAX_STATS", "ForwardOutput", "policy_forward", "entropy_sum", "actor_critic_loss", "optimize_rows",
           "minibatch_epochs", "average_minibatches", "rollout_metrics", "optimizer_metrics", "loss_metrics",
           "actor_critic_step", "penalized_rewards", "optimizer_step", "optimize_epochs", "update_kl_coef"]

#: statistics that micro-batches combine by ``max`` (not summed, not normalised)
MAX_STATS = ("ratio_max_dev",)


class ForwardOutput(NamedTuple):
    """:func:`policy_forward`'s result for ``n`` rows and the ``t`` response slots they use.

    Attributes:
        logp: ``(n, t)`` float32, ``log pi(a_t | s_t)`` of the taken tokens (with grad).
        values: ``(n, t)`` float32 ``V(s_t)`` (with grad), or ``None`` when not asked for.
        processed: ``(n, t, V)`` float32 logits of the sampling distribution.
        mask: ``(n, t)`` bool, real tokens.
        t: the number of response slots kept.
    """

    logp: torch.Tensor
    values: torch.Tensor | None
    processed: torch.Tensor
    mask: torch.Tensor
    t: int


def policy_forward(collector: RolloutCollector, mb: RolloutBatch, with_values: bool = True) -> ForwardOutput:
    """One forward of the collector's policy over ``mb``, trimmed to the columns the rows use.

    The log-probabilities are those of the distribution the tokens were drawn
    from (:meth:`RolloutCollector.sampling_logits`), computed as in the
    rollout's scoring pass, so a policy that has not changed gives ratio 1 exactly.
    A batch that carries a trunk (the output of the policy's frozen lower layers,
    :class:`~textgym.agents.common.rollout.RolloutBatch`) runs only the layers above it.

    Args:
        collector: the training collector (its policy, sampling settings and logits processor).
        mb: ``n`` finished episodes.
        with_values: also compute ``V(s_t)``.

    Returns:
        :class:`ForwardOutput`, on the policy's device.
    """
    dev = collector.policy.device
    first, end, t = content_span(mb.attention_mask, mb.mask)
    ids, am = mb.input_ids[:, first:end].to(dev), mb.attention_mask[:, first:end].to(dev)
    actions = mb.actions[:, :t].to(dev)
    trunk = mb.trunk[:, first:end] if mb.trunk is not None else None  # (n, S', d)
    out = collector.policy.score(ids, am, t, with_values=with_values, trunk=trunk)  # logits (n, t, V), values (n, t+1)
    processed = collector.sampling_logits(out.logits, ids, am, actions)
    values = out.values[:, :t] if with_values else None  # V(s_0..s_{t-1})
    return ForwardOutput(logprobs_of(processed, actions), values, processed, mb.mask[:, :t].to(dev), t)


def entropy_sum(processed: torch.Tensor, mask: torch.Tensor, with_grad: bool,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over real tokens of the sampling distribution's entropy (nats); differentiable only if ``with_grad``.

    Args:
        processed: ``(n, t, V)`` logits of the sampling distribution.
        mask: ``(n, t)`` bool.
        with_grad: keep the graph (an entropy bonus is in the loss).
        weights: optional ``(n, t)`` per-token weights.

    Returns:
        A scalar tensor.
    """
    with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
        h = entropy_of(processed)
        return masked_sum(h if weights is None else h * weights, mask)


def actor_critic_loss(collector: RolloutCollector, mb: RolloutBatch, advantages: torch.Tensor,
                      returns: torch.Tensor | None, normalizer: float | torch.Tensor, vf_coef: float,
                      ent_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The vanilla policy-gradient loss with a critic, token sums / ``normalizer``:

        - A_t log pi(a_t | s_t)  +  vf_coef * 0.5 (V(s_t) - R_t)^2  -  ent_coef * H(pi(. | s_t))

    (REINFORCE with a baseline, Williams 1992, section 4; A2C, Mnih et al. 2016,
    Algorithm S3).  ``returns=None`` drops the value term (no critic).

    Args:
        collector: the training collector (policy, sampling settings, logits processor).
        mb: the rows of the batch.
        advantages: ``(n, T)`` float, ``A_t`` (no gradient flows through them).
        returns: ``(n, T)`` float value targets ``R_t``, or ``None``.
        normalizer: the minibatch's real-token count.
        vf_coef, ent_coef: weights of the value loss and the entropy bonus.

    Returns:
        ``(loss, sums)``: the loss (with grad) and, as floats multiplied back by
        ``normalizer``, ``policy_loss``, ``value_loss``, ``entropy``, ``loss``.
    """
    dev = collector.policy.device
    f = policy_forward(collector, mb, with_values=returns is not None)
    t, m = f.t, f.mask
    pg_loss = -masked_sum(advantages[:, :t].to(dev) * f.logp, m) / normalizer
    vf_loss = torch.zeros((), device=dev)
    if returns is not None:
        vf_loss = 0.5 * masked_sum((f.values - returns[:, :t].to(dev)) ** 2, m) / normalizer
    entropy = entropy_sum(f.processed, m, ent_coef != 0) / normalizer
    loss = pg_loss + vf_coef * vf_loss - ent_coef * entropy
    nz = float(normalizer)
    return loss, {"policy_loss": float(pg_loss.detach()) * nz, "value_loss": float(vf_loss.detach()) * nz,
                  "entropy": float(entropy.detach()) * nz, "loss": float(loss.detach()) * nz}


def optimize_rows(optimizer: torch.optim.Optimizer, params: Sequence[torch.nn.Parameter], rows: torch.Tensor,
                  micro_batch_size: int | None,
                  loss_fn: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
                  normalizer: float | torch.Tensor, max_grad_norm: float | None) -> dict[str, float]:
    """One optimizer step on ``rows``, gradients accumulated over micro-batches of ``micro_batch_size`` rows.

    ``loss_fn(chunk)`` gives the micro-batch's share of the loss (its sum over
    the minibatch's units divided by ``normalizer``), so the accumulated
    gradient is the full-minibatch gradient.  A non-finite loss stops the
    accumulation; a non-finite loss or gradient norm skips the step (weights and
    optimizer state untouched).

    Args:
        optimizer: the algorithm's optimizer.
        params: the parameters whose global gradient norm is clipped to ``max_grad_norm`` (``None``: not clipped).
        rows: ``(m,)`` int64 row indices.
        micro_batch_size: rows per forward/backward (``None``: all at once).
        loss_fn: ``chunk (k,) -> (loss, sums)``, see the module docstring.
        normalizer: the divisor of the sums (> 0).

    Returns:
        The statistics' means (sums / ``normalizer``; ``MAX_STATS`` as maxima) plus
        ``weight`` (= ``normalizer``), ``grad_norm`` (0 when skipped) and ``skipped`` (0 or 1).
    """
    sums: dict[str, float] = defaultdict(float)
    why = ""  # why the step is skipped ("": it is not)
    optimizer.zero_grad(set_to_none=True)
    sharded = any(fsdp.is_sharded_param(p) for p in params)  # FSDP: the backward passes are collectives
    share = 1.0
    if sharded:  # each rank's loss as its share of the global minibatch: FSDP's reduce-scatter sums
        share = float(normalizer) / float(distributed.all_sum(float(normalizer)))
    for chunk in rows.split(micro_batch_size or len(rows)):
        loss, stats = loss_fn(chunk)
        if not bool(torch.isfinite(loss)) and not why:
            why = f"the loss is {float(loss.detach())}"
            if not sharded:
                break
        if sharded:  # every rank runs every backward (a skipped one would hang the others); a bad step is dropped
            (loss * share).backward()
        elif not why:
            loss.backward()
        if not why:
            for k, v in stats.items():
                sums[k] = max(sums[k], v) if k in MAX_STATS else sums[k] + v
    w = float(normalizer)
    if distributed.enabled():  # several processes: the global minibatch's gradient and statistics
        if bool(distributed.all_max(1.0 if why else 0.0)) and not why:
            why = "a non-finite loss on another rank"
        if not why:
            w = float(distributed.all_sum(w))
            if sharded:  # FSDP summed the shards' gradients; the replicated ones (value head) are summed here
                distributed.reduce_gradients(fsdp.replicated(params), 1.0, 1.0)
            else:
                distributed.reduce_gradients(params, float(normalizer), w)
            keys = sorted(sums)
            total = distributed.all_sum(torch.tensor([0.0 if k in MAX_STATS else sums[k] for k in keys]))
            top = distributed.all_max(torch.tensor([sums[k] if k in MAX_STATS else -torch.inf for k in keys]))
            sums = {k: float(top[i] if k in MAX_STATS else total[i]) for i, k in enumerate(keys)}
    grad_norm = float("nan")
    if not why:
        max_norm = max_grad_norm if max_grad_norm is not None else float("inf")
        if sharded:  # the global norm over every rank's shards
            grad_norm = fsdp.clip_grad_norm_(params, max_norm)
        else:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if not math.isfinite(grad_norm):
            why = f"the gradient norm is {grad_norm}"
    finite = not why
    if finite:
        optimizer.step()
    else:
        warnings.warn(f"optimizer step skipped: {why} (weights and optimizer state left unchanged; "
                      "counted in stats/skipped_steps)", RuntimeWarning, stacklevel=2)
    optimizer.zero_grad(set_to_none=True)
    out = {k: (v if k in MAX_STATS else v / w) for k, v in sums.items()}
    out.update({"weight": w, "grad_norm": grad_norm if finite else 0.0, "skipped": 0.0 if finite else 1.0})
    return out


def minibatch_epochs(n: int, n_epochs: int, minibatch_size: int | None, generator: torch.Generator,
                     step: Callable[[torch.Tensor], dict[str, float]], target_kl: float | None = None
                     ) -> tuple[list[dict[str, float]], bool]:
    """``n_epochs`` passes over ``n`` rows in shuffled minibatches, one ``step(rows)`` each.

    Args:
        n: rows in the batch.
        n_epochs: passes (>= 1).
        minibatch_size: rows per step (``None``: all ``n``).
        generator: draws each epoch's permutation (checkpointed by the algorithm).
        step: ``rows (m,) -> stats`` (e.g. a closure over :func:`optimize_rows`).
        target_kl: stop once a step's ``stats["approx_kl"]`` exceeds it (``None``: never).

    Returns:
        ``(log, early_stopped)``: the stats of every step, in order.
    """
    mb = minibatch_size or n
    log: list[dict[str, float]] = []
    for _ in range(n_epochs):
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n, mb):
            stats = step(perm[start : start + mb])
            log.append(stats)
            if target_kl is not None and stats["approx_kl"] > target_kl:
                return log, True
    return log, False


def average_minibatches(log: Iterable[dict[str, float]]) -> dict[str, float]:
    """Combine the stats of several steps: ``weight``-weighted means, plus step counts.

    Returns:
        Each statistic's weighted mean, ``grad_norm`` (mean over steps),
        ``skipped`` (count), ``steps`` (count), ``weight`` (total); a statistic
        no step produced (every step skipped on a non-finite loss) reads 0.
    """
    totals: dict[str, float] = defaultdict(float)
    steps = 0
    for stats in log:
        steps += 1
        for k, v in stats.items():
            totals[k] += v if k in ("weight", "skipped", "grad_norm") else v * stats["weight"]
    w = max(totals["weight"], 1e-12)
    out: dict[str, float] = defaultdict(float, {k: v / w for k, v in totals.items()
                                                if k not in ("weight", "skipped", "grad_norm")})
    out.update({"grad_norm": totals["grad_norm"] / max(steps, 1), "skipped": totals["skipped"],
                "steps": float(steps), "weight": totals["weight"]})
    return out


def rollout_metrics(batch: RolloutBatch, kl: torch.Tensor, kl_coef: float, estimator: str) -> dict[str, Any]:
    """What every algorithm logs about a batch of episodes and its KL to the reference.

    Args:
        batch: the episodes.
        kl: ``(N, T)`` per-token KL estimate (0 on padding), the one the algorithm applied.
        kl_coef: its coefficient ``beta`` (in the reward or in the loss).
        estimator: the estimator's name (``"k1"``, ``"k3"``, ...).

    Returns:
        ``reward/score`` (mean episode score), ``reward/score_std``, ``reward/total``
        (env rewards minus ``beta`` x KL, per episode), ``reward/kl_penalty``,
        ``stats/kl_ref`` (per episode), ``stats/kl_ref_per_token``,
        ``stats/kl_ref_estimator``, ``stats/kl_coef``, ``stats/episode_length``,
        ``stats/terminated_frac``, ``stats/truncated_frac``.
    """
    # (N, 6) per-episode values, gathered over ranks (every rank's episodes; one process: its own)
    cols = torch.stack([batch.scores.float(), kl.sum(-1).float(), batch.rewards.sum(-1).float(),
                        batch.lengths.float(), batch.terminated.float(), batch.truncated.float()], -1)
    scores, kl_episode, ret, lengths, terminated, truncated = distributed.gather_cat(cols.cpu()).unbind(-1)
    kl_tok = distributed.all_sum(torch.stack([masked_sum(kl, batch.mask).double().cpu(),
                                              batch.mask.sum().double().cpu()]))
    return {
        "reward/score": float(scores.mean()),
        "reward/score_std": float(scores.std(unbiased=False)),
        "reward/total": float((ret - kl_coef * kl_episode).mean()),
        "reward/kl_penalty": float(-kl_coef * kl_episode.mean()),
        "stats/kl_ref": float(kl_episode.mean()),
        "stats/kl_ref_per_token": float(kl_tok[0] / kl_tok[1].clamp(min=1)),
        "stats/kl_ref_estimator": estimator,
        "stats/kl_coef": kl_coef,
        "stats/episode_length": float(lengths.mean()),
        "stats/terminated_frac": float(terminated.mean()),
        "stats/truncated_frac": float(truncated.mean()),
    }


def optimizer_metrics(avg: dict[str, float]) -> dict[str, float]:
    """``stats/grad_norm``, ``stats/skipped_steps`` and ``stats/optimizer_steps`` from :func:`average_minibatches`."""
    return {"stats/grad_norm": avg["grad_norm"], "stats/skipped_steps": avg["skipped"],
            "stats/optimizer_steps": avg["steps"] - avg["skipped"]}


def loss_metrics(avg: dict[str, float]) -> dict[str, float]:
    """``loss/policy``, ``loss/value``, ``loss/total`` and ``stats/entropy`` from :func:`average_minibatches`."""
    return {"loss/policy": avg["policy_loss"], "loss/value": avg["value_loss"], "loss/total": avg["loss"],
            "stats/entropy": avg["entropy"]}


def actor_critic_step(algo: Any, batch: RolloutBatch, advantages: torch.Tensor,
                      returns: torch.Tensor | None) -> dict[str, float]:
    """One optimizer step of :func:`actor_critic_loss` on the whole batch, micro-batched (REINFORCE, A2C).

    Args:
        algo: the algorithm (its optimizer, policy, collector and config: ``micro_batch_size``,
            ``vf_coef``, ``ent_coef``, ``max_grad_norm``).
        batch: the rollout.
        advantages: ``(N, T)`` float.
        returns: ``(N, T)`` value targets, or ``None`` (no value loss).

    Returns:
        :func:`average_minibatches` of the one step (token means of the losses and entropy).
    """
    cfg = algo.config
    n_tok = batch.mask.sum().clamp(min=1)
    stats = optimizer_step(algo, torch.arange(batch.mask.shape[0]),
                           lambda c: actor_critic_loss(algo.collector, batch.index(c), advantages[c],
                                                       None if returns is None else returns[c], n_tok,
                                                       cfg.vf_coef, cfg.ent_coef), n_tok)
    return average_minibatches([stats])


def penalized_rewards(algo: Any, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The KL-penalised per-token rewards ``r_t = env_reward_t - kl_coef * KL_t`` (PPO, NLPO, A2C, REINFORCE, RLOO).

    Args:
        algo: the algorithm (its KL controller's current ``kl_coef`` and ``config.kl_estimator``).
        batch: the rollout.

    Returns:
        ``(rewards, kl, kl_coef)``: ``(N, T)`` float rewards and per-token KL estimates
        (0 on padding, see :func:`~textgym.agents.functional.kl_penalized_rewards`) and the coefficient applied.
    """
    kl_coef = algo.kl_ctl.kl_coef
    rewards, kl = kl_penalized_rewards(batch.rewards, batch.logprobs, batch.ref_logprobs, batch.mask, kl_coef,
                                       algo.config.kl_estimator)
    return rewards, kl, kl_coef


def optimizer_step(algo: Any, rows: torch.Tensor, loss_fn: Callable[[torch.Tensor], tuple[torch.Tensor, dict]],
                   normalizer: float | torch.Tensor) -> dict[str, float]:
    """:func:`optimize_rows` with the algorithm's optimizer, trainable parameters, micro-batch size (``algo.micro_batch_size``:
    ``config.micro_batch_size`` resolved, see :mod:`~textgym.agents.common.micro_batch`) and ``config.max_grad_norm``:
    one clipped optimizer step on ``rows`` (skipped, with a warning, when not finite)."""
    cfg = algo.config
    return optimize_rows(algo.optimizer, algo.policy.trainable_parameters(), rows, algo.micro_batch_size, loss_fn,
                         normalizer, cfg.max_grad_norm)


def optimize_epochs(algo: Any, batch: RolloutBatch, step: Callable[[torch.Tensor], dict[str, float]]
                    ) -> tuple[dict[str, float], bool]:
    """:func:`minibatch_epochs` over the batch's rows with the algorithm's ``config.n_epochs``, ``minibatch_size``,
    ``target_kl`` and shuffling generator (PPO, NLPO, RLOO, GRPO).

    Sets ``algo.minibatch_log`` to the per-step stats.

    Returns:
        ``(avg, early_stopped)``: :func:`average_minibatches` of the steps, and whether ``target_kl`` stopped them.
    """
    cfg = algo.config
    algo.minibatch_log, early_stop = minibatch_epochs(batch.mask.shape[0], cfg.n_epochs, cfg.minibatch_size,
                                                      algo.update_generator, step, cfg.target_kl)
    return average_minibatches(algo.minibatch_log), early_stop


def update_kl_coef(algo: Any, kl: torch.Tensor) -> None:
    """Show the algorithm's KL controller the KL that was applied: the mean over the ``N`` episodes of
    ``kl`` ``(N, T)`` summed per episode (an adaptive controller moves its coefficient towards ``target_kl_ref``)."""
    algo.kl_ctl.update(float(kl.sum(-1).mean()), kl.shape[0])
