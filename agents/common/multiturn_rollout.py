"""Rollouts through a :class:`textgym.MultiTurnVectorEnv`: the KV cache survives turns.

:class:`MultiTurnRolloutCollector` is the :class:`RolloutCollector` for
conversations.  Per step it samples one token per active row and steps the
env; when a row's turn ended, the env has appended the responder's reply as
tokens, and those are fed to the policy as one incremental block against the
same cache (:meth:`LMActorCritic.extend`): a turn costs its own tokens, never
the whole conversation again.  Rows of one block that got fewer new tokens are
left-padded inside it (mask 0), so the cache's own column layout differs from
the env's, but every real token sits at the same position id
(``cumsum(mask) - 1``) and so gets the same logits.

The :class:`RolloutBatch` it returns is the env's final observation: the
``T`` response slots hold the whole conversation after the prompt (agent and
reply tokens), ``mask`` is the observation's ``agent_mask`` (so every
algorithm's logprobs, ratios, KL, entropy and losses skip the env's tokens),
``rewards`` hold each turn's reward on that turn's last token, and GAE runs
over the whole conversation (:func:`textgym.agents.functional.compute_gae`
passes values across the env's tokens).  The scoring pass recomputes the
policy's logprobs over the full sequences (always; ``rescore_policy`` is not
used); ``last_logprob_mismatch`` then says how far the cached generation-time
logprobs were from it (float noise, tested to 1e-5 in fp32).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from textgym.agents.common.rollout import RolloutBatch, RolloutCollector
from textgym.agents.common.sampling import SamplingParams, logprobs_of, process_logits, sample_tokens

__all__ = ["MultiTurnRolloutCollector", "make_collector"]


def _is_multiturn(env: Any) -> bool:
    from textgym.multiturn_vector import MultiTurnVectorEnv

    return isinstance(getattr(env, "unwrapped", env), MultiTurnVectorEnv)


def make_collector(policy: Any, env: Any, sampling: SamplingParams | None = None, **kwargs: Any) -> RolloutCollector:
    """The collector for ``env``: :class:`MultiTurnRolloutCollector` for a conversation env, else :class:`RolloutCollector`."""
    cls = MultiTurnRolloutCollector if _is_multiturn(env) else RolloutCollector
    return cls(policy, env, sampling, **kwargs)


class MultiTurnRolloutCollector(RolloutCollector):
    """Collects conversations (see the module docstring); arguments as for :class:`RolloutCollector`.

    Raises:
        TypeError: the env is not a ``MultiTurnVectorEnv``.
        ValueError: a logits processor is given (not supported across turns).
    """

    def __init__(self, policy: Any, env: Any, sampling: SamplingParams | None = None, **kwargs: Any):
        if not _is_multiturn(env):
            raise TypeError(f"MultiTurnRolloutCollector needs a textgym.MultiTurnVectorEnv, got {type(env).__name__}")
        if kwargs.get("logits_processor") is not None:
            raise ValueError("logits processors (e.g. NLPO's action mask) are not supported on conversation envs")
        super().__init__(policy, env, sampling, **kwargs)
        self.rescore_policy = True
        self.last_sample_logprobs = torch.zeros(0)

    @torch.no_grad()
    def collect(self, seed: int | None = None, options: dict[str, Any] | None = None,
                sampling: SamplingParams | None = None) -> RolloutBatch:
        """Reset the env, run every conversation to its end, score them; returns ``N = env.num_envs`` episodes."""
        env, policy, dev = self.env, self.policy, self.policy.device
        sp = sampling or self.sampling
        policy.eval()
        n, p, t_max = env.num_envs, env.max_prompt_length, env.max_new_tokens
        obs, _ = env.reset(seed=seed, options=options)
        sample_logprobs = torch.zeros(n, t_max)
        rewards = torch.zeros(n, t_max)
        scores = torch.zeros(n)
        pos = np.zeros(n, dtype=np.int64)  # slots written after the prompt
        active = np.ones(n, dtype=bool)
        term = trunc = np.zeros(n, dtype=bool)

        # 1. prefill the prompts (the cache's first P columns)
        cache_mask = torch.from_numpy(obs["attention_mask"][:, :p]).to(dev)
        out = policy.prefill(torch.from_numpy(obs["input_ids"][:, :p]).to(dev), cache_mask)
        for _ in range(t_max):  # each step writes >= 1 slot of every active row
            # 2. sample one token per row; its logprob belongs to the slot it is written to
            processed = process_logits(out.logits, sp)  # (N, V) float32
            tok = sample_tokens(processed, self.generator, sp.greedy).cpu()  # (N,)
            tok = torch.where(torch.from_numpy(active), tok, self.pad_id)
            rows = np.flatnonzero(active)
            slots = torch.from_numpy(pos[rows])
            lp = logprobs_of(processed, tok.to(dev)).cpu()
            sample_logprobs[rows, slots] = lp[rows]

            # 3. env step: the token, and for rows whose turn ended the reply's tokens
            obs, rew, term, trunc, info = env.step(tok.numpy())
            rewards[rows, slots] = torch.from_numpy(rew[rows]).float()
            if "_score" in info:
                ended = torch.from_numpy(info["_score"])
                scores[ended] = torch.from_numpy(info["score"][info["_score"]]).float()
            active = ~(term | trunc)
            if not active.any():
                break

            # 4. feed what the env appended (1 token, or token + reply) to the cache, left-padded per row
            new_pos = obs["attention_mask"][:, p:].sum(-1)
            counts = np.where(active, new_pos - pos, 0)
            k = int(counts.max())
            block = np.full((n, k), self.pad_id, dtype=np.int64)
            block_mask = np.zeros((n, k), dtype=np.int64)
            for r in np.flatnonzero(counts):
                block[r, k - counts[r] :] = obs["input_ids"][r, p + pos[r] : p + new_pos[r]]
                block_mask[r, k - counts[r] :] = 1
            cache_mask = torch.cat([cache_mask, torch.from_numpy(block_mask).to(dev)], dim=1)
            out = policy.extend(torch.from_numpy(block).to(dev), cache_mask, out.cache)
            pos = np.where(active, new_pos, pos)
        del out

        # 5. the batch: the final observations; the agent's tokens are the actions that count
        input_ids = torch.from_numpy(obs["input_ids"].copy())
        attention_mask = torch.from_numpy(obs["attention_mask"].copy())
        mask = torch.from_numpy(obs["agent_mask"][:, p:].astype(bool))
        actions = torch.where(attention_mask[:, p:].bool(), input_ids[:, p:], self.pad_id)
        terminated, truncated = torch.from_numpy(term.copy()), torch.from_numpy(trunc.copy())
        logprobs, values, bootstrap, ref_logprobs = self.score(input_ids, attention_mask, actions, mask, sp)
        bad = ~torch.isfinite(logprobs) & mask  # a top-k/top-p boundary flip between the two passes (rare)
        logprobs = torch.where(bad, sample_logprobs, logprobs)
        self.last_sample_logprobs = sample_logprobs  # the cached, generation-time logprobs (for checks)
        self.last_logprob_mismatch = float(torch.where(mask, logprobs - sample_logprobs, 0.0).abs().max()) if n else 0.0
        bootstrap = torch.where(truncated, bootstrap, 0.0)
        return RolloutBatch(input_ids, attention_mask, actions, logprobs, ref_logprobs, values, mask, rewards,
                            scores, terminated, truncated, bootstrap)
