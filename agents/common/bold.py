"""BOLD-style generation bias: per-group sentiment of continuations of a stratified sample of prompts.

:func:`bold_bias` samples prompts per (domain, category) (:func:`bold_sample`), continues
them with the policy's sampler (:func:`generate_continuations`), scores the continuations
and reports per-group means and each domain's largest gap; see :mod:`textgym.agents.common.bias`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from textgym.agents.common.bias_stats import BoldResult, Gap, GroupStat, group_stats, largest_gap

__all__ = ["stratified_sample", "bold_sample", "generate_continuations", "bold_bias", "SCORERS"]

#: Sentiment scorers of :func:`bold_bias`: name -> textgym reward name.
SCORERS = {"sentiment": "sentiment", "vader": "sentiment-vader"}


def stratified_sample(rows: Iterable[Mapping[str, Any]], by: Sequence[str], per_group: int, seed: int = 0
                      ) -> list[dict[str, Any]]:
    """``per_group`` rows of every group (rows with equal ``by`` columns), all of a smaller group.

    Each group is shuffled with its own ``random.Random(f"{seed}:{key}")`` (``key``: the
    group's values joined by ``/``), so a group's sample depends only on its own rows and
    the seed.  Rows come back grouped, groups sorted by key.

    Raises:
        ValueError: ``per_group < 1``.
    """
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}")
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(str(r[k]) for k in by), []).append(dict(r))
    out = []
    for key in sorted(groups):
        items = groups[key]
        random.Random(f"{seed}:{'/'.join(key)}").shuffle(items)
        out.extend(items[:per_group])
    return out


def bold_sample(rows: Iterable[Mapping[str, Any]], per_group: int, seed: int = 0,
                domains: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """A stratified sample of BOLD prompts: ``per_group`` of every (domain, category) (:func:`stratified_sample`).

    Raises:
        ValueError: ``per_group < 1`` or a domain in ``domains`` that the rows lack (the message lists them).
    """
    rows = list(rows)
    have = sorted({str(r["domain"]) for r in rows})
    if domains is not None:
        unknown = [d for d in domains if d not in have]
        if unknown:
            raise ValueError(f"unknown BOLD domain(s) {unknown}; the data has {have}")
        rows = [r for r in rows if r["domain"] in domains]
    return stratified_sample(rows, ("domain", "category"), per_group, seed)


@torch.no_grad()
def generate_continuations(policy: Any, prompts: Sequence[str], *, max_new_tokens: int = 20,
                           temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
                           greedy: bool = False, batch_size: int = 32, seed: int = 0,
                           max_prompt_length: int = 64) -> list[str]:
    """Continue raw-text ``prompts`` with the policy's batched KV-cache sampler (no chat template).

    The rollout collector's generation loop without its scoring pass (a probe needs
    no log-probabilities or values): left-padded prompts, one
    :meth:`~textgym.agents.common.policy.LMActorCritic.prefill`, then one
    ``decode_step`` per token, tokens drawn with
    :func:`~textgym.agents.common.sampling.process_logits` /
    :func:`~textgym.agents.common.sampling.sample_tokens`; a row stops at EOS.

    Args:
        policy: an :class:`~textgym.agents.common.policy.LMActorCritic` with a tokenizer.
        prompts: the texts to continue.
        max_new_tokens: tokens generated at most.
        temperature, top_k, top_p, greedy: the sampling distribution.
        batch_size: prompts per batch.
        seed: seed of the sampling noise (one ``torch.Generator`` for all batches).
        max_prompt_length: longer prompts keep their last ``max_prompt_length`` tokens.

    Returns:
        One continuation per prompt, EOS removed.
    """
    from textgym.agents.common.sampling import SamplingParams, process_logits, sample_tokens
    from textgym.prompts import decode_completions

    tok, dev = policy.tokenizer, policy.device
    sp = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    was_training = policy.training
    policy.eval()
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        enc = [list(tok(p, add_special_tokens=False)["input_ids"])[-max_prompt_length:] or [eos]
               for p in prompts[start : start + batch_size]]
        width = max(len(e) for e in enc)
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for row, e in enumerate(enc):  # left padding
            ids[row, width - len(e) :] = torch.tensor(e)
            mask[row, width - len(e) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        step = policy.prefill(ids, mask)  # logits (N, V)
        active = torch.ones(len(enc), dtype=torch.bool, device=dev)
        new = torch.full((len(enc), max_new_tokens), pad, dtype=torch.long, device=dev)
        keep = torch.zeros((len(enc), max_new_tokens), dtype=torch.bool, device=dev)
        for t in range(max_new_tokens):
            tokens = sample_tokens(process_logits(step.logits, sp), gen, sp.greedy)  # (N,)
            ended = tokens == eos if eos is not None else torch.zeros_like(active)
            new[:, t] = torch.where(active, tokens, pad)
            keep[:, t] = active & ~ended
            active = active & ~ended
            if not bool(active.any()) or t == max_new_tokens - 1:
                break
            mask = torch.cat([mask, active.long()[:, None]], dim=1)
            step = policy.decode_step(torch.where(active, tokens, pad), mask, step.cache)
        out.extend(decode_completions(tok, [n[k].cpu() for n, k in zip(new, keep)]))
    policy.train(was_training)
    return out


def bold_bias(policy: Any, rows: Iterable[Mapping[str, Any]], *, per_group: int = 8,
              domains: Sequence[str] | None = None, scorers: Mapping[str, Any] | Sequence[str] = ("sentiment", "vader"),
              max_new_tokens: int = 20, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
              batch_size: int = 32, seed: int = 0) -> BoldResult:
    """BOLD-style generation bias: per-group sentiment of continuations, and each domain's largest gap.

    Steps: (1) :func:`bold_sample` draws ``per_group`` prompts of each (domain,
    category); (2) :func:`generate_continuations` continues them (sampling,
    seeded); (3) every scorer scores the *continuation only* (the prompt's own
    wording differs between groups and would otherwise enter the score);
    (4) per domain, :func:`group_stats` and :func:`largest_gap`.

    Args:
        policy: an :class:`~textgym.agents.common.policy.LMActorCritic`.
        rows: BOLD prompt rows (``domain``, ``category``, ``prompt``), e.g.
            ``textgym.envs.datasets.load("bold-prompts", "test")``.
        per_group: prompts per group.
        domains: the domains to probe (default: all in ``rows``).
        scorers: names from :data:`SCORERS` (``"sentiment"``: textgym's classifier,
            P(positive); ``"vader"``: VADER, (compound + 1) / 2), or ``{name: reward function}``.
        max_new_tokens, temperature, top_k, top_p, batch_size: generation.
        seed: sample, sampling-noise and bootstrap seed.

    Returns:
        :class:`BoldResult`.

    Raises:
        ValueError: bad ``per_group`` / domain / scorer name.
    """
    from textgym.reward_api import call_reward, make

    if not isinstance(scorers, Mapping):
        unknown = [s for s in scorers if s not in SCORERS]
        if unknown:
            raise ValueError(f"unknown scorer(s) {unknown}; choose from {sorted(SCORERS)}")
        import textgym.rewards  # noqa: F401  (registers the built-in rewards)

        scorers = {s: make(SCORERS[s]) for s in scorers}
    sample = bold_sample(rows, per_group, seed, domains)
    prompts = [r["prompt"] for r in sample]
    texts = generate_continuations(policy, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                                   top_k=top_k, top_p=top_p, batch_size=batch_size, seed=seed)
    scored = {name: call_reward(fn, prompts, texts)[0].astype(np.float64) for name, fn in scorers.items()}
    groups: dict[str, dict[str, list[GroupStat]]] = {}
    gaps: dict[str, dict[str, Gap]] = {}
    for name, values in scored.items():
        per_domain: dict[str, dict[str, list[float]]] = {}
        for r, v in zip(sample, values):
            per_domain.setdefault(r["domain"], {}).setdefault(r["category"], []).append(float(v))
        groups[name] = {d: group_stats(g, seed) for d, g in per_domain.items()}
        gaps[name] = {d: largest_gap(g, seed) for d, g in per_domain.items()}
    samples = [{"domain": r["domain"], "category": r["category"], "prompt": p, "continuation": t,
                **{name: float(scored[name][i]) for name in scored}}
               for i, (r, p, t) in enumerate(zip(sample, prompts, texts))]
    settings = {"per_group": per_group, "domains": sorted({r["domain"] for r in sample}), "n_prompts": len(sample),
                "max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k, "top_p": top_p,
                "seed": seed, "scorers": list(scored)}
    return BoldResult(groups, gaps, samples, settings)
