"""``MultiTurnVectorEnv``: ``N`` conversations stepped together, the responder called once per step for all turn ends.

Row ``i`` behaves exactly like a :class:`textgym.MultiTurnEnv` reset with seed
``seed + i`` and given the same actions (both run the same
:class:`textgym.conversation.ConversationBatch`; tested).  Observations are
``(N, P+T)`` int64 arrays ``input_ids`` / ``attention_mask`` / ``agent_mask``;
actions ``(N,)``; rewards ``(N,)`` float64.

Autoreset modes (``gymnasium.vector.AutoresetMode``), as in :class:`textgym.TextGenVectorEnv`:
``NEXT_STEP`` (default: the step after a row ends resets it, its action is
ignored, reward 0), ``SAME_STEP`` (reset in the same step; the last
observation and info in ``info["final_obs"]`` / ``info["final_info"]``) and
``DISABLED`` (a finished row stays finished, with its flags, until
``reset(options={"reset_mask": m})``: the mode for episode-synchronous rollouts).

Infos follow Gymnasium's vector convention (``info[key]`` an array over rows,
``info["_" + key]`` the rows that have it): ``turn`` on every row;
``messages`` and ``turn_rewards`` on rows whose turn ended or that reset;
``score`` on rows that ended; ``prompt`` and ``sample_index`` on rows that reset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from textgym.multiturn import build_conversations, multiturn_observation_space
from textgym.prompts import RowOrders
from textgym.responders import Responder
from textgym.vector_env import _put

__all__ = ["MultiTurnVectorEnv"]


class MultiTurnVectorEnv(RowOrders, VectorEnv):
    """Native batched :class:`textgym.MultiTurnEnv` (see the module docstring).

    Args:
        tokenizer, samples, responder: as for :class:`textgym.MultiTurnEnv`.
        num_envs: ``N``.
        autoreset_mode: an ``AutoresetMode`` or its value.
        shuffle: visit samples in shuffled epochs.
        copy: return copies of the observation arrays (default ``True``).
        render_mode: ``None`` or ``"ansi"``.
        **kwargs: the conversation arguments of :class:`textgym.MultiTurnEnv`.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        tokenizer: Any,
        samples: Sequence[Mapping[str, Any]] | Any,
        responder: Responder | Any,
        num_envs: int = 8,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        shuffle: bool = True,
        copy: bool = True,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(
                f"autoreset_mode must be one of {[m.value for m in AutoresetMode]}, got {autoreset_mode!r}"
            ) from None
        self.conv = build_conversations(tokenizer, samples, responder, num_envs, **kwargs)
        self.tokenizer, self.responder = tokenizer, self.conv.responder
        self.num_envs, self.copy, self.render_mode = int(num_envs), copy, render_mode
        self.vocab_size = self.conv.vocab_size
        self.max_prompt_length, self.max_new_tokens = self.conv.p, self.conv.t
        self.autoreset_mode = mode
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.single_observation_space = multiturn_observation_space(self.vocab_size, self.conv.p + self.conv.t)
        self.single_action_space = spaces.Discrete(self.vocab_size)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        n = self.num_envs
        self._init_row_orders(len(self.conv.data), shuffle)
        self._done = np.ones(n, dtype=bool)
        self._needs_reset = np.zeros(n, dtype=bool)
        self._term = np.zeros(n, dtype=bool)
        self._trunc = np.zeros(n, dtype=bool)

    # ------------------------------------------------------------------ reset
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset all rows, or those in ``options["reset_mask"]``.

        Args:
            seed: an int (row ``i`` gets ``seed + i``), ``N`` seeds (``None`` keeps a row's generator), or ``None``.
            options: ``reset_mask`` (``(N,)`` bool), ``sample_indices`` or ``prompts`` (``N`` entries, ``None`` allowed).

        Raises:
            ValueError: a seed list or option of the wrong length; a partial first reset.
            IndexError: a sample index out of range.
        """
        options = dict(options or {})
        rows = self._begin_reset(seed, options)  # seeds, checks (RowOrders)
        infos: dict[str, Any] = {}
        self._reset_rows(rows, infos, options)
        self._put_turn(infos)
        return self._obs(), infos

    def _reset_rows(self, rows: np.ndarray, infos: dict[str, Any], options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        indices, prompts = options.get("sample_indices"), options.get("prompts")
        m = len(self.conv.data)
        for r in rows.tolist():
            if prompts is not None and prompts[r] is not None:
                self.conv.start(r, self._rngs[r], None, prompt=str(prompts[r]))
                continue
            if indices is not None and indices[r] is not None:
                i = int(indices[r])
                if not 0 <= i < m:
                    raise IndexError(f"sample index {i} out of range [0, {m})")
            else:
                i = self._orders[r].next(self._rngs[r])
            self.conv.start(r, self._rngs[r], i)
        self._done[rows] = self._needs_reset[rows] = self._term[rows] = self._trunc[rows] = False
        n = self.num_envs
        _put(infos, "prompt", rows, [self.conv.raw_prompts[r] for r in rows], n)
        _put(infos, "sample_index", rows, self.conv.index[rows], n, np.int64)
        self._put_conversation(infos, rows)

    def _put_conversation(self, infos: dict[str, Any], rows: np.ndarray) -> None:
        n = self.num_envs
        _put(infos, "messages", rows, [[dict(m) for m in self.conv.messages[r]] for r in rows], n)
        _put(infos, "turn_rewards", rows, [list(self.conv.turn_rewards[r]) for r in rows], n)

    def _put_turn(self, infos: dict[str, Any]) -> None:
        infos["turn"] = self.conv.turn.copy()
        infos["_turn"] = np.ones(self.num_envs, dtype=bool)

    # ------------------------------------------------------------------ step
    def step(self, actions: Any):
        """Append one token per active row; rows whose turn ends get their replies (one responder call).

        Returns:
            ``(observations, rewards (N,) float64, terminated (N,), truncated (N,), infos)``.

        Raises:
            RuntimeError: before ``reset``.
            ValueError: wrong shape, non-integer actions, an active row's action outside ``[0, V)``.
            textgym.responders.ResponderError: the responder failed.
        """
        if not self._started:
            raise RuntimeError("step() called before reset()")
        n = self.num_envs
        a = np.asarray(actions)
        if a.shape != (n,):
            raise ValueError(f"actions must have shape ({n},), got {a.shape}")
        if a.dtype.kind not in "iu":
            if a.dtype.kind == "f" and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:
                raise ValueError(f"actions must be integer token ids, got dtype {a.dtype}")
        infos: dict[str, Any] = {}
        mode = self.autoreset_mode
        reset_now = self._needs_reset.copy() if mode == AutoresetMode.NEXT_STEP else np.zeros(n, dtype=bool)
        active = ~self._done & ~reset_now
        bad = active & ((a < 0) | (a >= self.vocab_size))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise ValueError(f"action {int(a[r])} of env {r} is not a token id in [0, {self.vocab_size})")
        if reset_now.any():
            self._reset_rows(np.flatnonzero(reset_now), infos)

        # 1. the conversation step (write tokens, end turns, one responder call, append replies)
        rows = np.flatnonzero(active)
        res = self.conv.step(rows, a[rows].astype(np.int64))
        term, trunc = res.terminated, res.truncated
        ended = term | trunc
        ended_rows = np.flatnonzero(ended)
        turn_rows = np.flatnonzero(res.turn_ended)
        if len(turn_rows):
            self._put_conversation(infos, turn_rows)
        if len(ended_rows):
            _put(infos, "score", ended_rows, [float(sum(self.conv.turn_rewards[r])) for r in ended_rows], n, np.float64)
        self._put_turn(infos)

        # 2. bookkeeping per autoreset mode
        if mode == AutoresetMode.NEXT_STEP:
            self._needs_reset = ended
        elif mode == AutoresetMode.DISABLED:
            self._done |= ended
            self._term |= term
            self._trunc |= trunc
            term, trunc = self._term.copy(), self._trunc.copy()
        elif len(ended_rows):  # SAME_STEP
            final_obs = np.full(n, None, dtype=object)
            for r in ended_rows:
                final_obs[r] = self.conv.obs(int(r))
            final_info = dict(infos)
            infos = {"final_obs": final_obs, "_final_obs": ended.copy(), "final_info": final_info,
                     "_final_info": ended.copy()}  # fmt: skip
            self._reset_rows(ended_rows, infos)
            self._put_turn(infos)
        return self._obs(), res.rewards, term, trunc, infos

    def _obs(self) -> dict[str, np.ndarray]:
        return self.conv.obs(None, copy=self.copy)

    def render(self) -> tuple[str, ...] | None:
        """With ``render_mode="ansi"``: one string per row, the conversation so far."""
        if self.render_mode != "ansi":
            return None
        return tuple(self.conv.render(r) for r in range(self.num_envs))

    @property
    def finished(self) -> np.ndarray:
        """``(N,)`` bool: rows whose conversation ended and was not reset yet."""
        return self._done | self._needs_reset

    @property
    def data(self):
        """The task's samples."""
        return self.conv.data
