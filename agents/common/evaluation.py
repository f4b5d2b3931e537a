"""Evaluating a text-generation policy: score, KL to the reference, diversity and fluency on fixed prompts.

:func:`evaluate_policy` rolls a policy out on a fixed, seeded set of an env's
prompts and reports what RL4LMs-style evaluations of text generation report
(Ramamurthy et al., "Is Reinforcement Learning (Not) for Natural Language
Processing?", ICLR 2023):

* the task score (mean, std and a 95% confidence half-width),
* the KL divergence to the reference (starting) model, per episode,
* diversity: distinct-1 / distinct-2 (:func:`distinct_n`, Li et al. 2016),
* fluency: perplexity of the policy's LM on held-out real text
  (:func:`perplexity`, texts from :func:`load_perplexity_texts`),
* the mean completion length, the fraction of episodes ended by a stop token,
  and a few sample generations.

The same env configuration and ``seed`` always give the same prompts and the
same sampling noise, so "before" and "after" evaluations are paired.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from textgym.agents.functional import kl_estimate, masked_sum
from textgym.agents.common.fluency import TEXT_COLUMNS, load_perplexity_texts, perplexity
from textgym.agents.common.multiturn_rollout import MultiTurnRolloutCollector, make_collector
from textgym.agents.common.rollout import RolloutBatch, check_env
from textgym.agents.common.sampling import SamplingParams

__all__ = ["EvalResult", "distinct_n", "perplexity", "load_perplexity_texts", "evaluate_policy", "eval_sample_indices",
           "evaluate_episodes", "TEXT_COLUMNS", "wilson_interval", "conversation_text"]

#: z-value of a two-sided 95% normal confidence interval.
Z95 = 1.959963984540054


# ---------------------------------------------------------------------------------------------- diversity
def _ngram_tokens(item: Any) -> list[Any]:
    if isinstance(item, str):
        return item.split()
    if isinstance(item, torch.Tensor):
        return item.reshape(-1).tolist()
    return list(np.asarray(item).reshape(-1).tolist())


def distinct_n(completions: Sequence[str] | Sequence[Sequence[int]], n: int) -> float:
    """Distinct-n: unique n-grams divided by the total number of n-grams over the whole set.

    Li et al., "A Diversity-Promoting Objective Function for Neural Conversation
    Models", NAACL 2016.  The n-grams of all completions are pooled (a repeated
    n-gram counts once in the numerator however many completions contain it);
    n-grams never cross completion boundaries.

    Args:
        completions: strings (split on whitespace) or sequences of token ids
            (lists, NumPy arrays or tensors).
        n: the n-gram order (>= 1).

    Returns:
        A float in ``[0, 1]``; ``0.0`` when the set has no n-gram at all.

    Raises:
        TypeError: ``completions`` is a single string (pass a list of strings).
        ValueError: ``n < 1``.
    """
    if isinstance(completions, str):
        raise TypeError("distinct_n needs a sequence of completions, got one string; wrap it in a list")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    total, unique = 0, set()
    for item in completions:
        toks = _ngram_tokens(item)
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


# ---------------------------------------------------------------------------------------------- evaluation
@dataclass
class EvalResult:
    """What :func:`evaluate_policy` returns.

    Attributes:
        metrics: metric name -> value (see :func:`evaluate_policy`).
        samples: the first episodes as ``{"prompt", "completion", "score"}`` dicts,
            plus ``"references"`` (list of str) when the sample has references; a
            conversation adds ``"messages"`` (``role`` / ``content`` dicts), ``"turns"`` and
            ``"solved"``, and its ``"completion"`` is :func:`conversation_text`.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """The result as a JSON string (``{"metrics": ..., "samples": ...}``)."""
        return json.dumps(dataclasses.asdict(self), indent=2)


def eval_sample_indices(num_samples: int, n_episodes: int, seed: int) -> np.ndarray:
    """Which data samples the ``n_episodes`` evaluation episodes use: ``(n_episodes,)`` int64.

    A permutation of ``range(num_samples)`` drawn with ``numpy.random.default_rng(seed)``,
    repeated cyclically when ``n_episodes > num_samples`` (so every prompt is
    used before any repeats).  Depends only on the data size and ``seed``.
    """
    perm = np.random.default_rng(seed).permutation(num_samples)
    return np.resize(perm, n_episodes).astype(np.int64)


def evaluate_episodes(policy: Any, env: Any, sampling: SamplingParams, n_episodes: int, *, seed: int,
                      kl_estimator: str = "k1", **collector_options: Any) -> dict[str, float]:
    """The evaluator of ``Algorithm.evaluate`` (native algorithms and SB3 adapters alike).

    Collects ``n_episodes`` episodes of ``policy`` on ``env`` in the env's own order (whole
    env batches, the surplus dropped) with a fresh collector whose sampling generator is
    seeded with ``seed``, so the training RNGs are untouched.  :func:`evaluate_policy` is
    the pipeline's evaluation on fixed prompts (with diversity, perplexity and samples).

    Args:
        policy: the :class:`~textgym.agents.common.policy.ActorCriticPolicy`.
        env: a vector env with ``autoreset_mode="Disabled"`` (it is reset).
        sampling: the sampling distribution.
        n_episodes: episodes to summarise (>= 1).
        seed: the sampling generator's seed.
        kl_estimator: the estimator summed into ``kl_ref``.
        **collector_options: more :class:`RolloutCollector` arguments (``score_batch_size``, ``logits_processor``, ...).

    Returns:
        ``score_mean``, ``score_std``, ``kl_ref`` (mean per-episode sum of ``kl_estimator``;
        not meaningful with greedy sampling), ``kl_ref_k3``, ``length_mean``, ``terminated_frac``, ``n_episodes``.

    Raises:
        ValueError: ``n_episodes < 1``.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    collector = make_collector(policy, env, sampling, seed=seed, **collector_options)
    batches, n = [], 0
    while n < n_episodes:
        batches.append(collector.collect())
        n += batches[-1].mask.shape[0]
    b = RolloutBatch.cat(batches).index(slice(0, n_episodes))
    kl = masked_sum(kl_estimate(b.logprobs, b.ref_logprobs, kl_estimator), b.mask, dim=1)
    kl3 = masked_sum(kl_estimate(b.logprobs, b.ref_logprobs, "k3"), b.mask, dim=1)
    return {"score_mean": float(b.scores.mean()), "score_std": float(b.scores.std(unbiased=False)),
            "kl_ref": float(kl.mean()), "kl_ref_k3": float(kl3.mean()),
            "length_mean": float(b.lengths.float().mean()), "terminated_frac": float(b.terminated.float().mean()),
            "n_episodes": float(n_episodes)}


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927): ``(low, high)``, inside ``[0, 1]``.

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes / n``;
    unlike the normal interval it is not empty at 0 or n successes.

    Raises:
        ValueError: ``n < 1`` or ``successes`` outside ``[0, n]``.
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got successes={successes}, n={n}")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends (centre - half is 1e-17 off at 0)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def conversation_text(messages: Sequence[dict[str, str]]) -> str:
    """A conversation after its first user message as one line: ``"assistant: 5 | user: higher. | ..."``."""
    return " | ".join(f"{m['role']}: {m['content'].strip()}" for m in messages[1:])


def _completion_texts(env: Any, batch: RolloutBatch) -> list[str]:
    """Completions as the env decodes them: the generated tokens without the final stop token."""
    from textgym.prompts import decode_completions

    ends = (batch.lengths - batch.terminated.long()).tolist()
    rows = [a[:e].numpy() for a, e in zip(batch.actions, ends)]
    return decode_completions(env.tokenizer, rows, getattr(env, "skip_special_tokens", True))


def evaluate_policy(policy: Any, env: Any, *, n_episodes: int = 64, seed: int = 0, greedy: bool = False,
                    temperature: float | None = None, top_k: int | None = None, top_p: float = 1.0,
                    perplexity_texts: Sequence[str] | None = None, max_length: int = 128, num_samples: int = 8,
                    reference: bool = True, logits_processor: Any = None) -> EvalResult:
    """Roll out ``n_episodes`` episodes on fixed prompts (no learning) and summarise them.

    The prompts are data samples ``eval_sample_indices(len(env.data), n_episodes, seed)``
    (distinct while the data has enough samples), run ``env.num_envs`` at a
    time through a :class:`~textgym.agents.common.rollout.RolloutCollector` whose
    sampling generator is seeded with ``seed``; the env is reset with ``seed``.
    So the same env configuration and seed give the same prompts and the same
    random numbers on every call: before/after evaluations compare the same
    held-out prompts.  The env is reset (use a separate eval env, e.g. the test
    split, to keep a training env's data position).

    Args:
        policy: an :class:`~textgym.agents.common.policy.ActorCriticPolicy` (e.g. ``LMActorCritic``).
        env: a ``TextGenVectorEnv`` or ``MultiTurnVectorEnv`` with ``autoreset_mode="Disabled"``.
        n_episodes: episodes to run (>= 2, for the confidence interval).
        seed: env reset seed, prompt-selection seed and sampling seed.
        greedy: take the arg-max token instead of sampling.
        temperature, top_k, top_p: the sampling distribution (default: temperature 1, untruncated).
        perplexity_texts: texts for :func:`perplexity` of the policy's LM (``None``: not measured).
        max_length: token limit per text for the perplexity.
        num_samples: episodes returned in ``samples`` (the first ones).
        reference: report the KL to the policy's reference model; ``False`` leaves
            ``kl_ref`` / ``kl_ref_k3`` out (e.g. for a policy whose reference is itself).
        logits_processor: a :class:`~textgym.agents.common.rollout.LogitsProcessor` on the policy's
            logits (e.g. the allowed-token mask of a maskable algorithm; ``None``: none).

    Returns:
        :class:`EvalResult` whose ``metrics`` are

        * ``score_mean``, ``score_std`` (population std), ``score_ci95``: the normal-approximation
          95% half-width ``1.96 * s / sqrt(n)`` with the sample std ``s``;
        * ``kl_ref``: the mean over episodes of the summed per-token k1 estimator
          ``log pi(a_t|s_t) - log pi_ref(a_t|s_t)`` (nats per episode, Schulman's
          "Approximating KL divergence"), and ``kl_ref_k3`` (the k3 estimator,
          ``exp(-r) - 1 + r``); both are estimates of ``KL(pi || pi_ref)`` only when
          sampling (with ``greedy`` they score the greedy tokens);
        * ``distinct_1``, ``distinct_2``: over the completions as text (whitespace tokens);
        * ``length_mean`` (generated tokens, stop token included; a conversation: the
          agent's tokens over all its turns), ``terminated_frac``;
        * on a conversation env (:class:`textgym.MultiTurnVectorEnv`) also ``success_rate``
          (share of episodes the responder ended with a positive reward on that last turn:
          solved), its Wilson 95% interval ``success_ci95_low`` / ``success_ci95_high``
          (:func:`wilson_interval`) and ``turns_mean`` (agent turns per episode);
        * ``perplexity`` when ``perplexity_texts`` is given; ``n_episodes``.

    Raises:
        TypeError / ValueError: see :func:`~textgym.agents.common.rollout.check_env`; ``n_episodes < 2``;
            bad sampling parameters; see :func:`perplexity`.
        FloatingPointError: a non-finite score or KL (the reward or the model produced NaN).
    """
    if n_episodes < 2:
        raise ValueError(f"n_episodes must be >= 2 (the 95% interval needs a sample std), got {n_episodes}")
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    inner = check_env(env)
    sp = SamplingParams(1.0 if temperature is None else temperature, top_k, top_p, greedy)
    # the generation-time logprobs are the policy's (an evaluation takes no update step, so no rescoring pass:
    # a full forward per batch saved; they match a rescoring pass to ~1e-6 per token)
    collector = make_collector(policy, inner, sp, seed=seed, logits_processor=logits_processor, rescore_policy=False)
    multiturn = isinstance(collector, MultiTurnRolloutCollector)
    n_env = inner.num_envs

    # 1. rollouts on the fixed prompts, num_envs at a time (the last batch is filled up and cut)
    indices = eval_sample_indices(len(inner.data), n_episodes, seed)
    batches, conversations = [], []
    for s in range(0, n_episodes, n_env):
        chunk = indices[s : s + n_env]
        rows = np.resize(chunk, n_env).tolist()
        b = collector.collect(seed=seed if s == 0 else None, options={"sample_indices": rows})
        batches.append(b.index(slice(0, len(chunk))))
        if multiturn:
            conversations += collector.last_conversations[: len(chunk)]
    batch = RolloutBatch.cat(batches) if len(batches) > 1 else batches[0]

    # 2. scores
    scores = batch.scores.double()
    if not bool(torch.isfinite(scores).all()):
        raise FloatingPointError("the env returned a non-finite score; check the reward function")
    metrics: dict[str, float] = {
        "score_mean": float(scores.mean()),
        "score_std": float(scores.std(unbiased=False)),
        "score_ci95": float(Z95 * scores.std(unbiased=True) / math.sqrt(n_episodes)),
    }

    # 3. KL to the reference, summed per episode
    if reference:
        kl1 = masked_sum(kl_estimate(batch.logprobs, batch.ref_logprobs, "k1"), batch.mask, dim=1)
        kl3 = masked_sum(kl_estimate(batch.logprobs, batch.ref_logprobs, "k3"), batch.mask, dim=1)
        metrics["kl_ref"], metrics["kl_ref_k3"] = float(kl1.double().mean()), float(kl3.double().mean())
        if not (math.isfinite(metrics["kl_ref"]) and math.isfinite(metrics["kl_ref_k3"])):
            raise FloatingPointError("non-finite KL to the reference; check the policy and reference weights")

    # 4. conversations: success rate (Wilson 95% interval) and turns
    if multiturn:
        solved = sum(c["solved"] for c in conversations)
        metrics["success_rate"] = solved / n_episodes
        metrics["success_ci95_low"], metrics["success_ci95_high"] = wilson_interval(solved, n_episodes)
        metrics["turns_mean"] = float(np.mean([c["turns"] for c in conversations]))
        completions = [" ".join(m["content"] for m in c["messages"] if m["role"] == "assistant")
                       for c in conversations]  # the agent's own text, for distinct-n
    else:
        completions = _completion_texts(inner, batch)

    # 5. diversity and length
    metrics["distinct_1"] = distinct_n(completions, 1)
    metrics["distinct_2"] = distinct_n(completions, 2)
    lengths = batch.mask.sum(1) if multiturn else batch.lengths  # a conversation: the agent's tokens only
    metrics["length_mean"] = float(lengths.double().mean())
    metrics["terminated_frac"] = float(batch.terminated.double().mean())

    # 6. fluency on real text
    if perplexity_texts is not None:
        tok = getattr(policy, "tokenizer", None) or inner.tokenizer
        metrics["perplexity"] = perplexity(policy, tok, perplexity_texts, max_length=max_length)
    metrics["n_episodes"] = float(n_episodes)

    # 7. samples (a conversation: its messages, and the turns after the prompt as the completion)
    samples = []
    for i in range(min(num_samples, n_episodes)):
        idx = int(indices[i])
        sample: dict[str, Any] = {"prompt": inner.data.prompt(idx), "completion": completions[i],
                                  "score": float(batch.scores[i])}
        if multiturn:
            c = conversations[i]
            sample.update(completion=conversation_text(c["messages"]), messages=c["messages"], turns=c["turns"],
                          solved=c["solved"])
        refs = inner.data.references(idx)
        if refs:
            sample["references"] = refs
        samples.append(sample)
    return EvalResult(metrics, samples)
