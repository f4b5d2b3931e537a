"""``ConversationBatch``: the token buffer and turn logic shared by :class:`MultiTurnEnv` and its vector version.

``N`` conversations live in three ``(N, P + T)`` int64 arrays: ``input_ids``,
``attention_mask`` and ``agent_mask``.  The prompt is left-padded into the
first ``P`` slots (by :class:`textgym.prompts.TaskData`, as in the one-turn
env); from slot ``P`` on the conversation only ever grows: each agent action
is written at the next slot (``agent_mask`` 1), and when an agent turn ends the
responder's reply is appended as tokens wrapped in the turn markers
(``agent_mask`` 0).  Nothing already written is ever decoded and re-encoded:
the only decoding is of an ended agent turn, into ``info["messages"]``, for
the responder and for people to read.

The single env is a batch of one and the vector env a batch of ``N``, so the
two behave identically by construction (and are tested to).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from textgym.prompts import TaskData, decode_completion
from textgym.responders import Responder, ResponderError, call_responder
from textgym.turns import TurnFormat

__all__ = ["ConversationBatch", "StepResult"]


class StepResult:
    """What one step did to the stepped rows (arrays over all ``N`` rows; only stepped rows are set)."""

    __slots__ = ("rewards", "terminated", "truncated", "turn_ended")

    def __init__(self, n: int):
        self.rewards = np.zeros(n, dtype=np.float64)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        self.turn_ended = np.zeros(n, dtype=bool)


class ConversationBatch:
    """``N`` conversations' tokens, messages and turn counters.

    Args:
        tokenizer: the env's tokenizer.
        data: the task's :class:`TaskData` (prompts in ``P`` slots).
        responder: the other side.
        num_rows: ``N``.
        max_new_tokens: ``T``, the token budget after the prompt for agent turns and replies together.
        max_turns: agent turns per conversation.
        max_turn_tokens: tokens per agent turn (the turn ends there without an end-of-turn token).
        end_of_turn_ids: actions that end the agent's turn.
        turn_format: the turn markers.
        vocab_size: ``V``.
        max_reply_tokens: a reply's content is cut to this many tokens (counted in
            ``info["reply_truncated_tokens"]``).
        max_reply_chars: a text reply is cut to this many characters before tokenizing.
        reply_overflow: ``"truncate"`` (cut as above) or ``"raise"`` (a too-long text reply is an error).
        skip_special_tokens: for decoding agent turns into messages.
    """

    def __init__(
        self,
        tokenizer: Any,
        data: TaskData,
        responder: Responder,
        num_rows: int,
        *,
        max_new_tokens: int,
        max_turns: int,
        max_turn_tokens: int,
        end_of_turn_ids: np.ndarray,
        turn_format: TurnFormat,
        vocab_size: int,
        max_reply_tokens: int,
        max_reply_chars: int,
        reply_overflow: str,
        skip_special_tokens: bool,
    ):
        if reply_overflow not in ("truncate", "raise"):
            raise ValueError(f"reply_overflow must be 'truncate' or 'raise', got {reply_overflow!r}")
        for key, value in (("max_new_tokens", max_new_tokens), ("max_turns", max_turns),
                           ("max_turn_tokens", max_turn_tokens), ("max_reply_tokens", max_reply_tokens),
                           ("max_reply_chars", max_reply_chars)):  # fmt: skip
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        self.tokenizer, self.data, self.responder = tokenizer, data, responder
        self.n = int(num_rows)
        self.p, self.t = data.max_prompt_length, int(max_new_tokens)
        self.max_turns, self.max_turn_tokens = int(max_turns), int(max_turn_tokens)
        self.vocab_size = int(vocab_size)
        self.is_eot = np.zeros(self.vocab_size, dtype=bool)
        self.is_eot[end_of_turn_ids] = True
        self.turn_format = turn_format
        self.max_reply_tokens, self.max_reply_chars = int(max_reply_tokens), int(max_reply_chars)
        self.reply_overflow = reply_overflow
        self.skip_special_tokens = skip_special_tokens
        n, length = self.n, self.p + self.t
        self.ids = np.full((n, length), data.pad_token_id, dtype=np.int64)
        self.mask = np.zeros((n, length), dtype=np.int64)
        self.agent = np.zeros((n, length), dtype=np.int64)
        self.pos = np.zeros(n, dtype=np.int64)  # tokens written after the prompt
        self.turn = np.zeros(n, dtype=np.int64)  # agent turns completed
        self.turn_start = np.zeros(n, dtype=np.int64)  # where the current agent turn starts (after P)
        self.index = np.full(n, -1, dtype=np.int64)
        self.states: list[Any] = [None] * n
        self.messages: list[list[dict[str, str]]] = [[] for _ in range(n)]
        self.turn_rewards: list[list[float]] = [[] for _ in range(n)]
        self.raw_prompts: list[str] = [""] * n
        self.prompt_texts: list[str] = [""] * n
        self.truncated_prompt_tokens = np.zeros(n, dtype=np.int64)
        self.reply_cut = np.zeros(n, dtype=np.int64)  # replies cut (characters or tokens) this episode

    # ------------------------------------------------------------------ start
    def start(self, row: int, rng: np.random.Generator, sample_index: int | None, prompt: str | None = None) -> None:
        """Start row ``row`` on sample ``sample_index`` (or a one-off ``prompt``); resets the responder for it."""
        data = self.data
        if prompt is not None:
            sample: dict[str, Any] = {data.prompt_key: str(prompt)}
            enc = data.encode_text(data.format(sample))
            self.index[row], self.raw_prompts[row] = -1, str(prompt)
        else:
            i = int(sample_index)
            sample = dict(data.sample(i))
            enc = data.encode(i)
            self.index[row], self.raw_prompts[row] = i, data.prompt(i)
        self.ids[row].fill(data.pad_token_id)
        self.mask[row].fill(0)
        self.agent[row].fill(0)
        self.ids[row, : self.p], self.mask[row, : self.p] = enc.input_ids, enc.attention_mask
        self.prompt_texts[row] = enc.text
        self.truncated_prompt_tokens[row] = enc.truncated_tokens
        self.pos[row] = self.turn[row] = self.turn_start[row] = self.reply_cut[row] = 0
        self.messages[row] = [{"role": "user", "content": self.raw_prompts[row]}]
        self.turn_rewards[row] = []
        try:
            self.states[row] = self.responder.reset(sample, rng)
        except Exception as exc:
            raise ResponderError(f"responder {self.responder.name!r} raised {type(exc).__name__} in reset: {exc}") from exc

    # ------------------------------------------------------------------ step
    def step(self, rows: np.ndarray, actions: np.ndarray) -> StepResult:
        """Append one action to each of ``rows`` (all active), end turns, ask the responder, append replies.

        Args:
            rows: ``(K,)`` row indices.
            actions: ``(K,)`` token ids, already checked to lie in ``[0, V)``.
        """
        res = StepResult(self.n)
        if len(rows) == 0:
            return res
        p = self.p
        cols = p + self.pos[rows]
        self.ids[rows, cols] = actions
        self.mask[rows, cols] = 1
        self.agent[rows, cols] = 1
        self.pos[rows] += 1
        eot = self.is_eot[actions]
        turn_len = self.pos[rows] - self.turn_start[rows]
        ends = eot | (turn_len >= self.max_turn_tokens) | (self.pos[rows] >= self.t)
        if not ends.any():
            return res
        ended, closed = rows[ends], eot[ends]
        for r, c in zip(ended.tolist(), closed.tolist()):
            a, b = p + self.turn_start[r], p + self.pos[r] - (1 if c else 0)
            text = decode_completion(self.tokenizer, self.ids[r, a:b], self.skip_special_tokens)
            self.messages[r].append({"role": "assistant", "content": text})
        replies = call_responder(
            self.responder,
            [self.states[r] for r in ended.tolist()],
            [list(self.messages[r]) for r in ended.tolist()],
            rows=ended.tolist(),
            vocab_size=self.vocab_size,
            max_reply_chars=self.max_reply_chars,
            overflow=self.reply_overflow,
        )
        res.turn_ended[ended] = True
        for r, c, reply in zip(ended.tolist(), closed.tolist(), replies):
            res.rewards[r] = reply.reward
            self.turn_rewards[r].append(reply.reward)
            self.turn[r] += 1
            if reply.done:
                self.reply_cut[r] += int(reply.cut_chars > 0)
                if reply.text or reply.token_ids is not None:
                    self.messages[r].append({"role": reply.role, "content": self._reply_text(reply)})
                res.terminated[r] = True
                continue
            if self.turn[r] >= self.max_turns:
                res.truncated[r] = True
                continue
            appended = self._append_reply(r, reply, c)
            if not appended:
                res.truncated[r] = True
        return res

    def _reply_text(self, reply: Any) -> str:
        if reply.token_ids is not None:
            return decode_completion(self.tokenizer, reply.token_ids, self.skip_special_tokens)
        return reply.text

    def _append_reply(self, r: int, reply: Any, agent_closed: bool) -> bool:
        """Append ``reply`` to row ``r``; ``False`` (nothing appended) if it does not fit with one more agent token."""
        tf, tok = self.turn_format, self.tokenizer
        content = reply.token_ids if reply.token_ids is not None else tf.content_ids(tok, reply.text)
        cut = max(0, len(content) - self.max_reply_tokens)
        if cut:
            content = content[: self.max_reply_tokens]
        self.reply_cut[r] += int(cut > 0 or reply.cut_chars > 0)
        close_ids = tf.close_text_ids(tok)
        last = int(self.ids[r, self.p + self.pos[r] - 1])
        closed = agent_closed and (len(close_ids) == 0 or (len(close_ids) == 1 and int(close_ids[0]) == last))
        ids, _ = tf.wrap(tok, reply.role, content, closed)
        text = reply.text if reply.token_ids is None and not cut else decode_completion(tok, content, False)
        self.messages[r].append({"role": reply.role, "content": text})
        start = self.p + self.pos[r]
        if self.pos[r] + len(ids) + 1 > self.t:
            return False
        self.ids[r, start : start + len(ids)] = ids
        self.mask[r, start : start + len(ids)] = 1
        self.pos[r] += len(ids)
        self.turn_start[r] = self.pos[r]
        return True

    # ------------------------------------------------------------------ views
    def obs(self, row: int | None = None, copy: bool = True) -> dict[str, np.ndarray]:
        """The observation of one row (``(P+T,)`` arrays) or of all rows (``(N, P+T)``)."""
        sel = slice(None) if row is None else row
        out = {"input_ids": self.ids[sel], "attention_mask": self.mask[sel], "agent_mask": self.agent[sel]}
        return {k: v.copy() for k, v in out.items()} if copy else out

    def info(self, row: int) -> dict[str, Any]:
        """The info dict of one row (fresh copies of its lists)."""
        return {
            "prompt": self.raw_prompts[row],
            "sample_index": int(self.index[row]),
            "turn": int(self.turn[row]),
            "messages": [dict(m) for m in self.messages[row]],
            "turn_rewards": list(self.turn_rewards[row]),
            "prompt_truncated_tokens": int(self.truncated_prompt_tokens[row]),
            "reply_truncated": int(self.reply_cut[row]),
        }

    def render(self, row: int) -> str:
        """The conversation of ``row`` as text (prompt, then everything after it), for ``render_mode="ansi"``."""
        after = decode_completion(self.tokenizer, self.ids[row, self.p : self.p + self.pos[row]], False)
        return self.prompt_texts[row] + after

