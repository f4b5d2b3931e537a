"""``TextGenVectorEnv``: ``N`` text-generation episodes stepped together with numpy.

Row ``i`` behaves exactly like a :class:`textgym.TextGenEnv` reset with seed
``seed + i`` and given the same actions (tested), but all rows live in two
``(N, P+T)`` int64 arrays, a step is a handful of vectorised numpy operations,
text is decoded only for rows that end on that step, and the reward function
is called once per step for all of them (batched).

Autoreset modes (``gymnasium.vector.AutoresetMode``):

* ``NEXT_STEP`` (Gymnasium's default): the step after a row ends resets that
  row; its action is ignored and it returns the new prompt with reward 0.
* ``SAME_STEP``: a row that ends is reset in the same step; its last
  observation and info are in ``info["final_obs"]`` / ``info["final_info"]``.
* ``DISABLED``: a finished row stays finished until ``reset(options={"reset_mask": m})``
  (or a full reset): its actions are ignored, its reward is 0, and its
  ``terminated`` / ``truncated`` flags keep the values of its last step, so
  ``np.all(terminated | truncated)`` tells when a synchronous batch is done.
  This is the mode for episode-synchronous rollouts.

With ``allowed_token_ids`` (:mod:`textgym.action_mask`), ``action_masks()``
returns the ``(N, V)`` bool mask, and a row that takes a disallowed token ends
(``terminated``) with the score ``invalid_action_penalty`` and
``info["invalid_action"]`` = the token id, as in the single env.

Infos follow Gymnasium's vector convention: ``info[key]`` is an array over rows
and ``info["_" + key]`` a bool mask of the rows that have it.  ``completion``,
``references``, ``score`` and ``reward_components`` are set on rows that end;
``prompt``, ``sample_index`` and ``prompt_truncated_tokens`` on rows that reset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from textgym.env import init_task_attributes, token_observation_space
from textgym.env_settings import EnvSettings
from textgym.prompts import RowOrders, decode_completion, decode_completions
from textgym.reward_api import RewardFunction, call_reward

__all__ = ["TextGenVectorEnv"]


def _put(infos: dict[str, Any], key: str, rows: np.ndarray, values: Sequence[Any], n: int, dtype: Any = object) -> None:
    """Write ``values`` for ``rows`` into ``infos[key]`` (an ``(n,)`` array) and set its mask."""
    if key not in infos:
        infos[key] = np.zeros(n, dtype=dtype) if dtype is not object else np.full(n, None, dtype=object)
        infos["_" + key] = np.zeros(n, dtype=bool)
    arr = infos[key]
    if isinstance(values, np.ndarray):
        arr[rows] = values
    else:
        for r, v in zip(rows, values):
            arr[r] = v
    infos["_" + key][rows] = True


class TextGenVectorEnv(RowOrders, VectorEnv):
    """Native batched version of :class:`textgym.TextGenEnv` (see the module docstring).

    Args:
        tokenizer, samples, reward_fn: as for :class:`textgym.TextGenEnv`.
        num_envs: ``N``, the number of rows.
        settings: an :class:`~textgym.env_settings.EnvSettings` (default: its defaults).
        **kwargs: settings by name (``max_new_tokens=``, ``autoreset_mode=``, ``copy=``, ...: each is
            documented once, in :class:`~textgym.env_settings.EnvSettings`), replacing those of
            ``settings``; the single env's own (``EnvSettings.SINGLE_ONLY``) are refused.

    Observations: ``{"input_ids": (N, P+T) int64, "attention_mask": (N, P+T) int64}``.
    Actions: ``(N,)`` integer array.  Rewards: ``(N,)`` float64.

    Raises:
        ValueError: bad ``num_envs``, lengths, stop ids or autoreset mode.
        TypeError: a keyword that is not a setting of this env.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        tokenizer: Any,
        samples: Sequence[Mapping[str, Any]] | Any,
        reward_fn: RewardFunction | Callable[..., Any] | str,
        num_envs: int = 8,
        *,
        settings: EnvSettings | None = None,
        **kwargs: Any,
    ):
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        settings = EnvSettings.of("TextGenVectorEnv", settings, kwargs, not_for=EnvSettings.SINGLE_ONLY)
        mode = settings.autoreset_mode
        init_task_attributes(self, tokenizer, samples, reward_fn, settings)
        self.num_envs = int(num_envs)
        self._is_stop = np.zeros(self.vocab_size, dtype=bool)  # (V,) look-up table, faster than np.isin
        self._is_stop[self.stop_token_ids] = True
        self.copy = settings.copy
        self.info_completions = settings.info_completions
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        length = self.max_prompt_length + self.max_new_tokens
        self.single_observation_space = token_observation_space(self.vocab_size, length)
        self.single_action_space = spaces.Discrete(self.vocab_size)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        n = self.num_envs
        self._ids = np.full((n, length), self.data.pad_token_id, dtype=np.int64)
        self._mask = np.zeros((n, length), dtype=np.int64)
        self._t = np.zeros(n, dtype=np.int64)
        self._done = np.ones(n, dtype=bool)  # finished rows (DISABLED: until reset)
        self._needs_reset = np.zeros(n, dtype=bool)  # NEXT_STEP: reset on the next step
        self._term = np.zeros(n, dtype=bool)
        self._trunc = np.zeros(n, dtype=bool)
        self._index = np.full(n, -1, dtype=np.int64)
        self._raw_prompts: list[str] = [""] * n  # custom prompts (rows with index -1)
        self._prompt_texts: list[str] = [""] * n
        self._last_dense = np.zeros(n, dtype=np.float64)
        self._init_row_orders(len(self.data), settings.shuffle)
        self._rows = np.arange(n)
        self.num_truncated_prompts = 0

    # ------------------------------------------------------------------ reset
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset all rows, or those in ``options["reset_mask"]``.

        Args:
            seed: an int (row ``i`` gets ``seed + i``, as Gymnasium's vector
                envs do), a list of ``N`` seeds (``None`` entries keep a row's
                generator), or ``None``.
            options: ``reset_mask`` (``(N,)`` bool), ``sample_indices`` (``N``
                ints, or ``None`` entries) or ``prompts`` (``N`` strings).

        Returns:
            ``(observations, infos)``.

        Raises:
            ValueError: a seed list or option of the wrong length.
        """
        options = dict(options or {})
        rows = self._begin_reset(seed, options)  # seeds, checks (RowOrders)
        infos: dict[str, Any] = {}
        self._reset_rows(rows, infos, options)
        return self._obs(), infos

    def _reset_rows(self, rows: np.ndarray, infos: dict[str, Any], options: Mapping[str, Any] | None = None) -> None:
        p = self.max_prompt_length
        options = options or {}
        indices = options.get("sample_indices")
        prompts = options.get("prompts")
        data = self.data
        self._ids[rows, p:] = data.pad_token_id
        self._mask[rows, p:] = 0
        trunc_counts = np.zeros(len(rows), dtype=np.int64)
        if indices is None and prompts is None and data.prompt_ids is not None:
            # hot path (autoreset): next sample of each row's shuffled order, copy its tokens
            orders, rngs = self._orders, self._rngs
            idx = np.fromiter((orders[r].next(rngs[r]) for r in rows.tolist()), np.int64, len(rows))
            self._index[rows] = idx
            self._ids[rows, :p] = data.prompt_ids[idx]
            self._mask[rows, :p] = data.prompt_mask[idx]
            trunc_counts = data.truncated_tokens[idx]
            rows_iter: Any = ()
        else:
            rows_iter = enumerate(rows)
        for j, r in rows_iter:
            if prompts is not None and prompts[r] is not None:
                text = str(prompts[r])
                enc = data.encode_text(data.format({data.prompt_key: text}))
                self._ids[r, :p], self._mask[r, :p] = enc.input_ids, enc.attention_mask
                self._index[r], self._raw_prompts[r] = -1, text
                self._prompt_texts[r], trunc_counts[j] = enc.text, enc.truncated_tokens  # custom prompts only
                continue
            if indices is not None and indices[r] is not None:
                i = int(indices[r])
                if not 0 <= i < len(data):
                    raise IndexError(f"sample index {i} out of range [0, {len(data)})")
            else:
                i = self._orders[r].next(self._rngs[r])
            self._index[r] = i
            if data.prompt_ids is None:
                enc = data.encode(i)
                self._ids[r, :p], self._mask[r, :p] = enc.input_ids, enc.attention_mask
                trunc_counts[j] = enc.truncated_tokens
        if data.prompt_ids is not None and rows_iter != ():  # copy pre-tokenized rows
            idx = self._index[rows]
            from_data = idx >= 0
            if prompts is not None:
                from_data &= np.array([prompts[r] is None for r in rows])
            src, dst = idx[from_data], rows[from_data]
            self._ids[dst, :p] = data.prompt_ids[src]
            self._mask[dst, :p] = data.prompt_mask[src]
            trunc_counts[from_data] = data.truncated_tokens[src]
        self.num_truncated_prompts += int(np.count_nonzero(trunc_counts))
        self._t[rows] = 0
        self._done[rows] = False
        self._needs_reset[rows] = False
        self._term[rows] = False
        self._trunc[rows] = False
        self._last_dense[rows] = 0.0
        n = self.num_envs
        _put(infos, "prompt", rows, self._row_prompts(rows), n)
        _put(infos, "sample_index", rows, self._index[rows], n, np.int64)
        _put(infos, "prompt_truncated_tokens", rows, trunc_counts, n, np.int64)

    # ------------------------------------------------------------------ step
    def step(self, actions: Any):
        """Append one token per active row.

        Args:
            actions: ``(N,)`` integer array (entries of rows that are being
                reset or are finished are ignored).

        Returns:
            ``(observations, rewards (N,) float64, terminated (N,) bool,
            truncated (N,) bool, infos)``.

        Raises:
            RuntimeError: ``step`` before ``reset``.
            ValueError: wrong shape, non-integer actions (bools, complex, ``None``, NaN,
                +-inf), or an active row's action outside ``[0, V)``.  (An action outside
                ``allowed_token_ids`` is no error: it ends its row with the penalty score.)
        """
        if not self._started:
            raise RuntimeError("step() called before reset()")
        n, p = self.num_envs, self.max_prompt_length
        a = np.asarray(actions)
        if a.shape != (n,):
            raise ValueError(f"actions must have shape ({n},), got {a.shape}")
        if a.dtype.kind not in "iu":
            if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:  # bool, complex, object (None), NaN / inf, non-integral floats
                raise ValueError(f"actions must be integer token ids in [0, {self.vocab_size}), got dtype {a.dtype}"
                                 + (" holding NaN or inf" if a.dtype.kind == "f" and not np.isfinite(a).all() else ""))
        infos: dict[str, Any] = {}
        rewards = np.zeros(n, dtype=np.float64)
        mode = self.autoreset_mode

        reset_now = self._needs_reset if mode == AutoresetMode.NEXT_STEP else None
        active = ~self._done
        if reset_now is not None and reset_now.any():
            active &= ~reset_now
        bad = active & ((a < 0) | (a >= self.vocab_size))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise ValueError(f"action {int(a[r])} of env {r} is not a token id in [0, {self.vocab_size})")
        if reset_now is not None and reset_now.any():
            self._reset_rows(np.flatnonzero(reset_now), infos)

        # 1. write the tokens of active rows
        all_active = bool(active.all())
        rows = self._rows if all_active else np.flatnonzero(active)
        cols = p + self._t[rows]
        acts = a[rows] if not all_active else a
        self._ids[rows, cols] = acts
        self._mask[rows, cols] = 1
        self._t[rows] += 1

        # 2. episode ends (a disallowed token terminates its row)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        invalid = np.zeros(n, dtype=bool)
        if self.allowed_tokens is not None:
            invalid[rows] = ~self.allowed_tokens[acts]
        term[rows] = self._is_stop[acts] | invalid[rows]
        trunc[rows] = ~term[rows] & (self._t[rows] >= self.max_new_tokens)
        ended = term | trunc
        ended_rows = np.flatnonzero(ended)

        # 3. rewards: ended rows (or every active row for dense rewards), one batched call; rows that took a
        # disallowed token get the penalty instead
        score_rows = rows if self.reward_fn.dense else ended_rows
        if invalid.any():
            score_rows = score_rows[~invalid[score_rows]]
            self._pay_penalty(np.flatnonzero(invalid), rewards, infos)
        if len(score_rows):
            if self.info_completions or getattr(self.reward_fn, "needs_text", True):
                completions = self._decode(score_rows, term[score_rows])
            else:
                completions = [""] * len(score_rows)
            refs = self._row_refs(score_rows)
            scores, comps = call_reward(
                self.reward_fn,
                self._row_prompts(score_rows),
                completions,
                references=refs,
                columns=self._column_batch(score_rows),
                on_error=self.reward_on_error,
                sample_labels=[self._row_label(r) for r in score_rows],
            )
            scores = scores.astype(np.float64)
            if self.reward_fn.dense:
                rewards[score_rows] = scores - self._last_dense[score_rows]
                self._last_dense[score_rows] = scores
            else:
                rewards[score_rows] = scores
            sel = ended[score_rows]
            scored_ended = score_rows[sel]  # ended_rows, less those that took a disallowed token
            if len(scored_ended):
                if self.info_completions:
                    _put(infos, "completion", scored_ended, [c for c, s in zip(completions, sel) if s], n)
                    _put(infos, "references", scored_ended, [r for r, s in zip(refs, sel) if s], n)
                _put(infos, "score", scored_ended, scores[sel], n, np.float64)
                comp_info: dict[str, Any] = {}
                for k, v in comps.items():
                    _put(comp_info, k, scored_ended, v[sel], n, np.float64)
                if comp_info:
                    infos["reward_components"] = comp_info
                    infos["_reward_components"] = ended & ~invalid

        # 4. bookkeeping per autoreset mode
        if mode == AutoresetMode.NEXT_STEP:
            self._needs_reset = ended  # reset on the next step, never "stuck"
        elif mode == AutoresetMode.DISABLED:
            self._done |= ended
            self._term |= term
            self._trunc |= trunc
            term, trunc = self._term.copy(), self._trunc.copy()
        else:  # SAME_STEP
            if len(ended_rows):
                final_obs = np.full(n, None, dtype=object)
                for r in ended_rows:
                    final_obs[r] = {"input_ids": self._ids[r].copy(), "attention_mask": self._mask[r].copy()}
                final_info = {k: v for k, v in infos.items()}
                infos = {"final_obs": final_obs, "_final_obs": ended.copy(), "final_info": final_info, "_final_info": ended.copy()}
                self._reset_rows(ended_rows, infos)
        return self._obs(), rewards, term, trunc, infos

    # ------------------------------------------------------------------ helpers
    def _pay_penalty(self, rows: np.ndarray, rewards: np.ndarray, infos: dict[str, Any]) -> None:
        """Rows that took a disallowed token: score ``invalid_action_penalty``, ``info["invalid_action"]``."""
        n, penalty = self.num_envs, self.invalid_action_penalty
        if self.reward_fn.dense:  # the increments still sum to the episode's score
            rewards[rows] = penalty - self._last_dense[rows]
            self._last_dense[rows] = penalty
        else:
            rewards[rows] = penalty
        _put(infos, "score", rows, np.full(len(rows), penalty), n, np.float64)
        _put(infos, "invalid_action", rows, self._ids[rows, self.max_prompt_length + self._t[rows] - 1], n, np.int64)
        if self.info_completions:
            _put(infos, "completion", rows, self._decode(rows, np.zeros(len(rows), dtype=bool)), n)
            _put(infos, "references", rows, self._row_refs(rows), n)

    def action_masks(self) -> np.ndarray:
        """``(N, V)`` bool: each row's valid actions (``allowed_token_ids``; all ``True`` when unrestricted)."""
        if self.allowed_tokens is None:
            return np.ones((self.num_envs, self.vocab_size), dtype=bool)
        return np.repeat(self.allowed_tokens[None, :], self.num_envs, axis=0)

    def _decode(self, rows: np.ndarray, terminated: np.ndarray) -> list[str]:
        p = self.max_prompt_length
        ends = p + self._t[rows] - terminated.astype(np.int64)
        return decode_completions(
            self.tokenizer, [self._ids[r, p:e] for r, e in zip(rows, ends)], self.skip_special_tokens
        )

    def _row_prompts(self, rows: np.ndarray) -> list[str]:
        prompts = self.data.prompts
        return [self._raw_prompts[r] if i < 0 else prompts[i] for r, i in zip(rows, self._index[rows].tolist())]

    def _row_label(self, r: int) -> str:
        """How a reward error names row ``r``: the env row and the data set's sample index."""
        i = int(self._index[r])
        return f"env row {r} (sample {i})" if i >= 0 else f"env row {r} (a custom prompt)"

    def _row_refs(self, rows: np.ndarray) -> list[list[str]]:
        return [[] if i < 0 else self.data.references(i) for i in self._index[rows].tolist()]

    def _column_batch(self, rows: np.ndarray) -> dict[str, list[Any]]:
        cols = [{} if i < 0 else self.data.columns(i) for i in self._index[rows].tolist()]
        keys = set().union(*(c.keys() for c in cols)) if cols else set()
        return {k: [c.get(k) for c in cols] for k in keys}

    def _obs(self) -> dict[str, np.ndarray]:
        if self.copy:
            return {"input_ids": self._ids.copy(), "attention_mask": self._mask.copy()}
        return {"input_ids": self._ids, "attention_mask": self._mask}

    def render(self) -> tuple[str, ...] | None:
        """With ``render_mode="ansi"``: one string per row, the prompt and the completion so far."""
        if self.render_mode != "ansi":
            return None
        p = self.max_prompt_length
        return tuple(
            (self._prompt_texts[r] if self._index[r] < 0 else self.data.encode(self._index[r]).text)
            + decode_completion(self.tokenizer, self._ids[r, p : p + self._t[r]], self.skip_special_tokens)
            for r in range(self.num_envs)
        )

    @property
    def num_generated(self) -> np.ndarray:
        """``(N,)`` int64: tokens generated in each row's current episode."""
        return self._t.copy()

    @property
    def finished(self) -> np.ndarray:
        """``(N,)`` bool: rows whose episode has ended and not been reset yet."""
        return self._done | self._needs_reset

