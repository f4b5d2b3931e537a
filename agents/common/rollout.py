"""Episode-synchronous rollouts through a :class:`textgym.TextGenVectorEnv`, one cached forward per token.

:class:`RolloutCollector` runs ``N = env.num_envs`` episodes together:

1. ``env.reset()`` -> the prompts, left-padded in ``P`` slots;
2. one batched *prefill* of the prompts (builds the KV cache, gives the first
   next-token logits and ``V(s_0)``);
3. per step ``t``: process the logits (temperature / top-k / top-p), sample,
   store the logprob *of that processed distribution*, step the env with the
   tokens (the env decides rewards and episode ends), then one incremental
   forward with the cache; the attention mask is the env's observation mask,
   so rows that finished feed a masked pad token and change nothing;
4. once every row is done, a *scoring* pass: one batched full forward of the
   policy (logprobs of the sampling distribution and values, including the
   bootstrap value ``V(s_T)`` after the last token of truncated rows) and one
   of the reference model (reference logprobs).  It runs the same code path as
   the update, so the first PPO ratio is 1 and the KL to the reference is
   exactly 0 while the policy equals the reference; the generation-time
   logprobs are kept as a check (``last_logprob_mismatch``).  With
   ``rescore_policy=False`` the generation-time logprobs and values are used
   instead (one batched forward fewer; ``V(s_T)`` from one more cached step).
   A training collector (``keep_trunk=True``) of a policy with frozen lower
   layers keeps their output from the reference pass in the batch
   (``RolloutBatch.trunk``), so the update runs only the layers above them.

The env must be built with ``autoreset_mode="Disabled"`` (finished rows stay
finished until the next reset).

An optional :class:`LogitsProcessor` changes the policy's raw logits before
temperature / top-k / top-p, the same way during generation, in the scoring
pass and (through :meth:`RolloutCollector.sampling_logits`) in an algorithm's
update; NLPO's action mask is one.
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import numpy as np
import torch

from textgym.agents.common.policy import ActorCriticPolicy
from textgym.agents.common.sampling import (
    SamplingParams,
    logprobs_of,
    process_logits,
    sample_tokens,
)

__all__ = ["RolloutBatch", "RolloutCollector", "LogitsProcessor", "trim_to_content", "content_span", "response_ends",
           "check_env"]


class RolloutBatch(NamedTuple):
    """``N`` finished episodes; ``P`` prompt slots and ``T`` response slots as in the env.

    Attributes:
        input_ids: ``(N, P + T)`` int64, the final observations (prompt left-padded, then the response).
        attention_mask: ``(N, P + T)`` int64, 1 on prompt and response tokens.
        actions: ``(N, T)`` int64, generated tokens (pad id after a row's end).
        logprobs: ``(N, T)`` float32, ``log pi(a_t | s_t)`` under the sampling distribution (0 on padding),
            from the scoring pass.
        ref_logprobs: ``(N, T)`` float32, the reference's logprobs (same temperature; with top-k/top-p
            renormalised over the policy's kept set, so they are always finite).
        values: ``(N, T)`` float32, ``V(s_t)`` before token ``t`` (scoring pass).
        mask: ``(N, T)`` bool, real (generated) tokens: a prefix of each row, the stop token included
            (in a conversation: the agent's tokens; the env's reply tokens between turns are 0).
        rewards: ``(N, T)`` float32, the env's rewards per token (the score on the last token for sparse rewards).
        scores: ``(N,)`` float32, each episode's score (``info["score"]``).
        terminated: ``(N,)`` bool, ended by a stop token.
        truncated: ``(N,)`` bool, ended by the token budget.
        bootstrap_values: ``(N,)`` float32, ``V(s_T)`` after the last token for truncated rows, else 0.
        trunk: ``(N, P + T, d)``, the output of the policy's frozen lower layers
            (:attr:`~textgym.agents.common.policy.ActorCriticPolicy.frozen_layers`), which the update's forwards
            start from; 0 in columns a row's scoring chunk trimmed (padding).  ``None``: not kept.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor
    scores: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    bootstrap_values: torch.Tensor
    trunk: torch.Tensor | None = None

    @property
    def prompt_length(self) -> int:
        """``P``."""
        return self.input_ids.shape[1] - self.actions.shape[1]

    @property
    def lengths(self) -> torch.Tensor:
        """``(N,)`` int64, generated tokens per episode."""
        return self.mask.sum(-1)

    def index(self, rows: torch.Tensor | slice) -> RolloutBatch:
        """The batch restricted to ``rows`` (every field indexed on its first dimension)."""
        return RolloutBatch(*(None if f is None else f[rows] for f in self))

    @staticmethod
    def cat(batches: list[RolloutBatch]) -> RolloutBatch:
        """Concatenate batches of the same env along ``N`` (the trunk only when every batch has one)."""
        return RolloutBatch(*(None if any(f is None for f in fields) else torch.cat(fields)
                              for fields in zip(*batches)))


def check_env(env: Any) -> Any:
    """The unwrapped :class:`TextGenVectorEnv` of ``env``.

    Raises:
        TypeError: not a textgym vector env.
        ValueError: its autoreset mode is not ``"Disabled"``.
    """
    from gymnasium.vector import AutoresetMode

    from textgym.vector_env import TextGenVectorEnv

    from textgym.multiturn_vector import MultiTurnVectorEnv

    inner = getattr(env, "unwrapped", env)
    if not isinstance(inner, (TextGenVectorEnv, MultiTurnVectorEnv)):
        raise TypeError(f"rollouts need a textgym.TextGenVectorEnv, got {type(env).__name__}; build one with "
                        "gym.make_vec(id, num_envs=N, vectorization_mode='vector_entry_point', "
                        "autoreset_mode='Disabled')")
    if inner.autoreset_mode != AutoresetMode.DISABLED:
        raise ValueError(f"rollouts need autoreset_mode='Disabled' (episode-synchronous batches), the env has "
                         f"{inner.autoreset_mode.value!r}; pass autoreset_mode='Disabled' to gym.make_vec")
    return inner


class LogitsProcessor(abc.ABC):
    """Changes the policy's raw next-token logits identically in generation, scoring and the update.

    The collector calls :meth:`start` after the reset, :meth:`step` on each
    step's logits before sampling, :meth:`advance` after each env step that is
    followed by another one, and :meth:`end` when generation stops.
    :meth:`sequence` serves the scoring pass and the update (full sequences),
    :meth:`next_token` single observations (``predict``).  A processor may hold
    per-rollout state (e.g. a KV cache) between :meth:`start` and :meth:`end`.
    The processed logits are raw logits with some entries set to ``-inf``
    (or changed otherwise); the sampled token must keep a finite logit.
    """

    @abc.abstractmethod
    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """A rollout begins: the prompts, ``(N, P)`` int64 each (left-padded), on the policy's device."""

    @abc.abstractmethod
    def step(self, logits: torch.Tensor) -> torch.Tensor:
        """The current step's raw logits ``(N, V)`` -> processed ``(N, V)``."""

    @abc.abstractmethod
    def advance(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """``tokens (N,)`` were appended; ``attention_mask (N, L)`` covers everything so far (0 on finished rows)."""

    @abc.abstractmethod
    def end(self) -> None:
        """Generation is over (release per-rollout state)."""

    @abc.abstractmethod
    def sequence(self, logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 actions: torch.Tensor) -> torch.Tensor:
        """Raw logits ``(n, t, V)`` of the last ``t`` tokens of full sequences ``(n, S)`` -> processed ``(n, t, V)``.

        ``actions (n, t)`` are the tokens that were generated there (they must stay allowed).
        """

    @abc.abstractmethod
    def next_token(self, logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw next-token logits ``(N, V)`` of env observations ``(N, L)`` (prompt, response, padding) -> processed."""


def response_ends(mask: torch.Tensor) -> torch.Tensor:
    """``(N,)`` int64: one past each row's last real token (its length for a one-turn prefix mask).

    In a conversation the mask is 1 on the agent's tokens only, with the
    env's reply tokens (mask 0) between turns, so the end is not the count.
    """
    m = mask.bool()
    idx = torch.arange(1, m.shape[1] + 1, device=m.device)
    return torch.where(m, idx, 0).max(-1).values if m.shape[1] else torch.zeros(m.shape[0], dtype=torch.long)


def trim_to_content(input_ids: torch.Tensor, attention_mask: torch.Tensor, mask: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Drop columns no row uses: prompt padding shared by all rows and response slots after the longest episode.

    Args:
        input_ids, attention_mask: ``(N, P + T)`` int64.
        mask: ``(N, T)`` real-token mask of the response.

    Returns:
        ``(input_ids (N, P' + T'), attention_mask (N, P' + T'), T')`` with ``T' = max length`` (>= 1).
    """
    first, end, t_keep = content_span(attention_mask, mask)
    return input_ids[:, first:end], attention_mask[:, first:end], t_keep


def content_span(attention_mask: torch.Tensor, mask: torch.Tensor) -> tuple[int, int, int]:
    """The columns :func:`trim_to_content` keeps: ``(first, end, T')``, ``attention_mask[:, first:end]``."""
    n_resp = mask.shape[1]
    p = attention_mask.shape[1] - n_resp
    t_keep = max(int(response_ends(mask).max()), 1)
    used = attention_mask[:, :p].bool().any(0)
    first = int(used.float().argmax()) if bool(used.any()) else p - 1
    return first, p + t_keep, t_keep


class RolloutCollector:
    """Collects :class:`RolloutBatch` es with a policy on a ``TextGenVectorEnv`` (see the module docstring).

    Args:
        policy: an :class:`ActorCriticPolicy` (e.g. :class:`LMActorCritic`).
        env: a ``TextGenVectorEnv`` with ``autoreset_mode="Disabled"``.
        sampling: temperature / top-k / top-p (:class:`SamplingParams`).
        seed: seed of the sampling generator (``torch.Generator``, saved in checkpoints).
        score_batch_size: rows per forward of the scoring pass (memory: ``rows x T x V`` floats).
        rescore_policy: recompute the policy's logprobs and values in the scoring pass
            (default).  ``False`` keeps the generation-time ones (cached forwards; they
            match to ~1e-6) and saves one batched forward per rollout; the KL to the
            reference then shows float noise (~1e-7) instead of exactly 0 at the start.
            Ignored with top-k/top-p or a logits processor (the reference needs the policy's kept set).
        logits_processor: a :class:`LogitsProcessor` applied to the raw logits before
            temperature / top-k / top-p (``None``: none).
        keep_trunk: keep the output of the policy's frozen lower layers from the reference pass in the batch
            (``RolloutBatch.trunk``) for the update to start from (a training collector; costs ``N x S x d`` floats).

    Raises:
        TypeError / ValueError: see :func:`check_env`; the env's action space is larger than the policy's.
    """

    def __init__(self, policy: ActorCriticPolicy, env: Any, sampling: SamplingParams | None = None,
                 seed: int | None = None, score_batch_size: int = 16, rescore_policy: bool = True,
                 logits_processor: LogitsProcessor | None = None, keep_trunk: bool = False):
        self.policy = policy
        self.keep_trunk = bool(keep_trunk)
        self.logits_processor = logits_processor
        self.env = check_env(env)
        self.sampling = sampling or SamplingParams()
        self.score_batch_size = int(score_batch_size)
        self.rescore_policy = bool(rescore_policy)
        if self.env.vocab_size != policy.action_size:
            raise ValueError(f"the env's action space has {self.env.vocab_size} tokens but the policy's logits "
                             f"have {policy.action_size}; build the policy with action_size=env.single_action_space.n")
        self.generator = torch.Generator(device=policy.device)
        self.generator.manual_seed(0 if seed is None else int(seed))
        self.pad_id = int(self.env.data.pad_token_id)
        self.last_logprob_mismatch = 0.0  # max |generation-time - scoring-pass logprob| of the last batch

    @torch.no_grad()
    def collect(self, seed: int | None = None, options: dict[str, Any] | None = None,
                sampling: SamplingParams | None = None) -> RolloutBatch:
        """Reset the env, generate until every row has ended, score the episodes, return the batch.

        Args:
            seed: passed to ``env.reset`` (``None``: continue the env's sample order).
            options: passed to ``env.reset`` (e.g. ``{"prompts": [...]}``).
            sampling: override the collector's sampling parameters for this call.

        Returns:
            :class:`RolloutBatch` of ``N = env.num_envs`` episodes.
        """
        env, policy, dev = self.env, self.policy, self.policy.device
        sp = sampling or self.sampling
        policy.eval()
        n, p, t_max = env.num_envs, env.max_prompt_length, env.max_new_tokens
        obs, _ = env.reset(seed=seed, options=options)
        actions = torch.full((n, t_max), self.pad_id, dtype=torch.long)
        sample_logprobs = torch.zeros(n, t_max)
        sample_values = torch.zeros(n, t_max)
        mask = torch.zeros(n, t_max, dtype=torch.bool)
        rewards = torch.zeros(n, t_max)
        scores = torch.zeros(n)
        active = torch.ones(n, dtype=torch.bool)
        term = trunc = np.zeros(n, dtype=bool)

        # generation: one prefill, then one cached forward per token
        ids = torch.from_numpy(obs["input_ids"][:, :p]).to(dev)
        prompt_mask = torch.from_numpy(obs["attention_mask"][:, :p]).to(dev)
        out = policy.prefill(ids, prompt_mask)  # logits (N, V)
        proc = self.logits_processor
        if proc is not None:
            proc.start(ids, prompt_mask)
        for t in range(t_max):
            processed = process_logits(out.logits if proc is None else proc.step(out.logits), sp)  # (N, V) float32
            tok = sample_tokens(processed, self.generator, sp.greedy)  # (N,)
            tok = torch.where(active.to(dev), tok, self.pad_id)
            act_cpu = tok.cpu()
            actions[:, t] = act_cpu
            sample_logprobs[:, t] = torch.where(active, logprobs_of(processed, tok).cpu(), 0.0)
            sample_values[:, t] = torch.where(active, out.values.float().cpu(), 0.0)
            mask[:, t] = active
            obs, rew, term, trunc, info = env.step(act_cpu.numpy())  # the env decides rewards and ends
            rewards[:, t] = torch.from_numpy(rew).float()
            if "_score" in info:
                ended = torch.from_numpy(info["_score"])
                scores[ended] = torch.from_numpy(info["score"][info["_score"]]).float()
            active = torch.from_numpy(~(term | trunc))
            if not bool(active.any()):
                break
            step_mask = torch.from_numpy(obs["attention_mask"][:, : p + t + 1]).to(dev)
            out = policy.decode_step(tok, step_mask, out.cache)
            if proc is not None:
                proc.advance(tok, step_mask)
        if proc is not None:
            proc.end()
        terminated, truncated = torch.from_numpy(term.copy()), torch.from_numpy(trunc.copy())
        input_ids = torch.from_numpy(obs["input_ids"].copy())
        attention_mask = torch.from_numpy(obs["attention_mask"].copy())
        rescore = self.rescore_policy or self._truncates(sp)  # the reference needs the policy's kept set

        if rescore:
            del out
        else:  # keep the generation-time values; V(s_T) costs one more cached forward (truncated rows)
            bootstrap = torch.zeros(n)
            if bool(truncated.any()):
                bootstrap = policy.decode_step(tok, torch.from_numpy(obs["attention_mask"]).to(dev),
                                               out.cache).values.float().cpu()
            del out

        # scoring: reference (and policy) over the full sequences, batched (the update's code path); a policy that
        # is its own reference skips the reference pass: its logprobs are the reference's, the KL exactly 0
        same_ref = bool(getattr(policy, "reference_is_policy", False))
        trunk = None
        if rescore or not same_ref:
            logprobs, values, scored_bootstrap, ref_logprobs, trunk = self.score_with_trunk(
                input_ids, attention_mask, actions, mask, sp, policy=rescore, reference=not same_ref,
                keep_trunk=self.keep_trunk)
        if rescore:
            bad = ~torch.isfinite(logprobs) & mask  # a top-k/top-p boundary flip between the two passes (rare)
            logprobs = torch.where(bad, sample_logprobs, logprobs)
            bootstrap = scored_bootstrap
        else:
            logprobs, values = sample_logprobs, sample_values
        if same_ref:
            ref_logprobs = logprobs.clone()
        self.last_logprob_mismatch = float((logprobs - sample_logprobs).abs().max()) if n else 0.0
        bootstrap = torch.where(truncated, bootstrap, 0.0)
        return RolloutBatch(input_ids, attention_mask, actions, logprobs, ref_logprobs, values, mask, rewards,
                            scores, terminated, truncated, bootstrap, trunk)

    @torch.no_grad()
    def score(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, actions: torch.Tensor,
              mask: torch.Tensor, sp: SamplingParams | None = None, policy: bool = True, reference: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Policy logprobs, values and reference logprobs of finished episodes, in row chunks.

        The policy logprobs are those of the sampling distribution (temperature,
        top-k, top-p) computed by the same full forward the update uses, so the
        first PPO ratio is 1 and, while the policy equals the reference, the
        KL is exactly 0.  The reference distribution is the reference model at
        the same temperature; with top-k/top-p it is renormalised over the
        *policy's* kept tokens, so ``KL(pi_sample || pi_ref)`` is always finite.

        Args:
            input_ids, attention_mask: ``(N, P + T)`` int64.
            actions: ``(N, T)`` int64.
            mask: ``(N, T)`` bool.
            sp: sampling parameters (default: the collector's).
            policy: also run the policy (``False``: reference only; the first three outputs are zeros).
            reference: also run the reference (``False``: the last output is zeros).

        Returns:
            ``logprobs (N, T)``, ``values (N, T)``, ``bootstrap (N,)`` = ``V`` after each
            row's last token, ``ref_logprobs (N, T)``; float32, 0 on padding.
        """
        return self.score_with_trunk(input_ids, attention_mask, actions, mask, sp, policy, reference)[:4]

    @torch.no_grad()
    def score_with_trunk(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, actions: torch.Tensor,
                         mask: torch.Tensor, sp: SamplingParams | None = None, policy: bool = True,
                         reference: bool = True, keep_trunk: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`score` plus the trunk ``(N, P + T, d)`` (see :class:`RolloutBatch`) when ``keep_trunk`` and the
        policy has frozen lower layers, else ``None``.  The policy pass then starts from the trunk too."""
        sp = sp or self.sampling
        with_policy, policy, dev = policy, self.policy, self.policy.device
        if self._truncates(sp) and not with_policy:
            raise ValueError("with top-k/top-p or a logits processor the reference pass needs the policy's logits "
                             "(policy=True)")
        n, t_max = actions.shape
        logprobs, values, ref_logprobs = (torch.zeros(n, t_max) for _ in range(3))
        bootstrap = torch.zeros(n)
        keep_trunk = keep_trunk and reference and getattr(policy, "frozen_layers", 0) > 0
        trunk = None
        for s in range(0, n, self.score_batch_size):
            rows = slice(s, s + self.score_batch_size)
            first, end, t = content_span(attention_mask[rows], mask[rows])
            ids, am = input_ids[rows, first:end].to(dev), attention_mask[rows, first:end].to(dev)
            m, a = mask[rows, :t].to(dev), actions[rows, :t].to(dev)
            ref, h = None, None
            if reference:
                ref_logits, h = policy.reference_forward(ids, am, t) if keep_trunk else (
                    policy.reference_logits(ids, am, t), None)
                ref = process_logits(ref_logits, SamplingParams(sp.temperature))  # (n, t, V)
                del ref_logits
            if h is not None:  # (n, end - first, d) -> its columns of the (N, P + T, d) trunk
                if trunk is None:
                    trunk = torch.zeros(n, input_ids.shape[1], h.shape[-1], dtype=h.dtype)
                trunk[rows, first:end] = h.cpu()
            if with_policy:
                out = policy.score(ids, am, t, trunk=h)  # logits (n, t, V), values (n, t + 1)
                processed = self.sampling_logits(out.logits, ids, am, a, sp)
                if self._truncates(sp) and ref is not None:
                    ref = ref.masked_fill(torch.isinf(processed), float("-inf"))
                logprobs[rows, :t] = torch.where(m, logprobs_of(processed, a), 0.0).cpu()
                values[rows, :t] = torch.where(m, out.values[:, :t].float(), 0.0).cpu()
                lengths = response_ends(m)  # V(s_L) sits at index L of the (n, t + 1) values
                bootstrap[rows] = out.values.float().gather(1, lengths[:, None]).squeeze(1).cpu()
                del out, processed
            if ref is not None:
                ref_logprobs[rows, :t] = torch.where(m, logprobs_of(ref, a), 0.0).cpu()
        return logprobs, values, bootstrap, ref_logprobs, trunk

    def sampling_logits(self, logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        actions: torch.Tensor, sp: SamplingParams | None = None) -> torch.Tensor:
        """Logits of the distribution tokens were drawn from, for full sequences (the scoring pass and updates).

        The logits processor (if any), then temperature / top-k / top-p.

        Args:
            logits: ``(n, t, V)`` raw policy logits of the last ``t`` tokens.
            input_ids, attention_mask: ``(n, S)`` int64, the (trimmed) sequences.
            actions: ``(n, t)`` int64, the generated tokens.
            sp: sampling parameters (default: the collector's).

        Returns:
            ``(n, t, V)`` float32, ``-inf`` outside the kept set.
        """
        if self.logits_processor is not None:
            logits = self.logits_processor.sequence(logits, input_ids, attention_mask, actions)
        return process_logits(logits, sp or self.sampling)

    def _truncates(self, sp: SamplingParams) -> bool:
        """Whether the sampling distribution can drop tokens (top-k, top-p or a logits processor)."""
        return sp.truncates or self.logits_processor is not None

    def state_dict(self) -> dict[str, Any]:
        """The sampling generator's state (for exact resume)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
