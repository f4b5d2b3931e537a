"""``MultiTurnEnv``: a conversation as a token-level Gymnasium MDP, token-in/token-out.

One episode is a conversation of up to ``max_turns`` agent turns.  The agent
acts one token at a time; its turn ends at an end-of-turn token (the chat
template's turn end, e.g. SmolLM2's ``<|im_end|>``, or EOS; configurable) or
after ``max_turn_tokens`` tokens.  Then the *responder* (a scripted user, a
game, a tool, another model; :mod:`textgym.responders`) answers, and the env
appends the reply **as tokens**, wrapped in the chat template's turn markers
(:class:`textgym.turns.TurnFormat`).  The context only ever grows by appended
tokens: what the policy conditions on next is exactly what is in the
observation, and nothing already in it is decoded and re-encoded.

* **Observation** ``Dict(input_ids, attention_mask, agent_mask)``, each
  ``Box(.., shape=(P+T,), int64)``: the prompt left-padded into the first
  ``P = max_prompt_length`` slots, then the conversation (agent tokens and
  reply tokens in order), then padding (mask 0).  ``agent_mask`` is 1 exactly
  on the agent's own tokens (its actions); reply and marker tokens are
  observations, not actions.  Position ids are ``cumsum(attention_mask) - 1``.
* **Action** ``Discrete(V)``: the agent's next token.  Out of range: ``ValueError``.
* **Reward**: the responder's reward for a turn, paid on the step that ends
  that turn (its last token); 0 on every other step.
* **Episode end**: ``terminated`` when the responder says the conversation is
  over (``Reply.done``); ``truncated`` after ``max_turns`` agent turns, or when
  the token budget ``T = max_new_tokens`` (agent turns and replies together)
  cannot hold the next reply plus one agent token, or is used up mid-turn.
  Agents bootstrap on truncation, not on termination.
* **info**: ``messages`` (the conversation as ``{"role", "content"}`` dicts; the
  agent's turns decoded for reading only), ``turn_rewards``, ``turn`` (agent
  turns completed), ``prompt``, ``sample_index``, ``prompt_truncated_tokens``,
  ``reply_truncated`` (replies cut to ``max_reply_chars`` / ``max_reply_tokens``
  this episode); at the end also ``score`` (the sum of the turn rewards).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from textgym.conversation import ConversationBatch
from textgym.env import resolve_stop_ids
from textgym.prompts import PromptFormat, SampleOrder, TaskData
from textgym.responders import Responder, as_responder
from textgym.turns import TurnFormat

__all__ = ["MultiTurnEnv", "multiturn_observation_space", "build_conversations", "PLAIN_PROMPT"]

#: The first turn without a chat template (matches :meth:`TurnFormat.plain`'s markers).
PLAIN_PROMPT = "user: {prompt} | assistant:"


def multiturn_observation_space(vocab_size: int, length: int) -> spaces.Dict:
    """``input_ids``, ``attention_mask`` and ``agent_mask``, each ``(length,)`` int64."""
    return spaces.Dict(
        {
            "input_ids": spaces.Box(0, vocab_size - 1, shape=(length,), dtype=np.int64),
            "attention_mask": spaces.Box(0, 1, shape=(length,), dtype=np.int64),
            "agent_mask": spaces.Box(0, 1, shape=(length,), dtype=np.int64),
        }
    )


def build_conversations(
    tokenizer: Any,
    samples: Sequence[Mapping[str, Any]] | Any,
    responder: Responder | Any,
    num_rows: int,
    *,
    max_prompt_length: int = 128,
    max_new_tokens: int = 256,
    max_turns: int = 4,
    max_turn_tokens: int = 64,
    end_of_turn_ids: Sequence[int] | None = None,
    turn_format: TurnFormat | None = None,
    prompt_format: PromptFormat | str = "auto",
    truncation_side: str = "left",
    vocab_size: int | None = None,
    max_reply_tokens: int = 128,
    max_reply_chars: int = 4000,
    reply_overflow: str = "truncate",
    skip_special_tokens: bool = True,
) -> ConversationBatch:
    """The :class:`ConversationBatch` behind both env classes (arguments as documented on :class:`MultiTurnEnv`)."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if prompt_format == "auto":
        prompt_format = "chat" if has_template else PLAIN_PROMPT
    if turn_format is None:
        turn_format = TurnFormat.from_chat_template(tokenizer) if has_template else TurnFormat.plain()
    data = TaskData(samples, tokenizer, max_prompt_length, prompt_format=prompt_format, truncation_side=truncation_side)
    data.maybe_encode_all()
    v = int(vocab_size if vocab_size is not None else len(tokenizer))
    if end_of_turn_ids is None:
        close = turn_format.close_text_ids(tokenizer)
        eos = getattr(tokenizer, "eos_token_id", None)
        end_of_turn_ids = ([int(close[0])] if len(close) == 1 else []) + ([eos] if eos is not None else [])
        if not end_of_turn_ids:
            raise ValueError("the tokenizer has no EOS and no single-token turn end; pass end_of_turn_ids=[...]")
    eot = resolve_stop_ids(tokenizer, end_of_turn_ids, v)
    return ConversationBatch(
        tokenizer, data, as_responder(responder), num_rows,
        max_new_tokens=max_new_tokens, max_turns=max_turns, max_turn_tokens=max_turn_tokens,
        end_of_turn_ids=eot, turn_format=turn_format, vocab_size=v, max_reply_tokens=max_reply_tokens,
        max_reply_chars=max_reply_chars, reply_overflow=reply_overflow, skip_special_tokens=skip_special_tokens,
    )  # fmt: skip


class MultiTurnEnv(gym.Env[dict[str, np.ndarray], int]):
    """Token-level multi-turn conversation env (see the module docstring for the MDP).

    Args:
        tokenizer: a Hugging Face tokenizer.
        samples: mappings with a ``"prompt"`` column (the first user message) and
            whatever the responder reads (e.g. a hidden number).
        responder: a :class:`textgym.responders.Responder`, a registered
            responder name, or a per-row function ``(sample, messages) -> reply``.
        max_prompt_length: ``P``.
        max_new_tokens: ``T``, the token budget after the prompt (agent turns + replies).
        max_turns: agent turns per conversation (default 4).
        max_turn_tokens: tokens per agent turn (default 64).
        end_of_turn_ids: actions ending an agent turn (default: the chat
            template's single-token turn end, e.g. ``<|im_end|>``, plus EOS).
        turn_format: the turn markers (default: read off the chat template, or
            :meth:`TurnFormat.plain` without one).
        prompt_format: as for :class:`textgym.TextGenEnv`; ``"auto"`` (default)
            is ``"chat"`` when the tokenizer has a chat template, else :data:`PLAIN_PROMPT`.
        truncation_side, shuffle, vocab_size, skip_special_tokens: as for :class:`textgym.TextGenEnv`.
        max_reply_tokens: a reply's content is cut to this many tokens (default 128).
        max_reply_chars: a text reply is cut to this many characters before
            tokenizing (default 4000), so a 100k-character reply costs nothing.
        reply_overflow: ``"truncate"`` (default; cut replies are counted in
            ``info["reply_truncated"]``) or ``"raise"`` (a text reply over
            ``max_reply_chars`` raises :class:`~textgym.responders.ResponderError`).
        render_mode: ``None`` or ``"ansi"``.

    Raises:
        ValueError: empty data, bad lengths, ids out of range.
        textgym.responders.ResponderError: the responder raised or returned an invalid reply.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        tokenizer: Any,
        samples: Sequence[Mapping[str, Any]] | Any,
        responder: Responder | Any,
        *,
        shuffle: bool = True,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.conv = build_conversations(tokenizer, samples, responder, 1, **kwargs)
        self.tokenizer, self.responder, self.render_mode = tokenizer, self.conv.responder, render_mode
        self.vocab_size = self.conv.vocab_size
        self.max_prompt_length, self.max_new_tokens = self.conv.p, self.conv.t
        self.observation_space = multiturn_observation_space(self.vocab_size, self.conv.p + self.conv.t)
        self.action_space = spaces.Discrete(self.vocab_size)
        self.order = SampleOrder(len(self.conv.data), shuffle)
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a conversation.

        Args:
            seed: reseeds ``self.np_random`` (sample order and the responder's rng).
            options: ``{"sample_index": i}`` or ``{"prompt": "..."}``.

        Returns:
            ``(observation, info)``: the prompt, and the conversation's ``info`` (turn fields).

        Raises:
            IndexError: ``sample_index`` out of range.
        """
        super().reset(seed=seed)
        i = self.order.pick(options or {}, self.np_random, restart=seed is not None)
        if i is None:  # a one-off prompt
            self.conv.start(0, self.np_random, None, prompt=str(options["prompt"]))
        else:
            self.conv.start(0, self.np_random, i)
        self._done = False
        return self.conv.obs(0), self.conv.info(0)

    def step(self, action: int):
        """Append ``action``; at a turn end, ask the responder and append its reply.

        Returns:
            ``(observation, reward, terminated, truncated, info)``.

        Raises:
            RuntimeError: called before ``reset`` or after the episode ended.
            ValueError: ``action`` is not a token id in ``[0, V)``.
            textgym.responders.ResponderError: the responder failed.
        """
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        a = int(action)
        if a != action or not 0 <= a < self.vocab_size:
            raise ValueError(f"action {action!r} is not a token id in [0, {self.vocab_size})")
        res = self.conv.step(np.zeros(1, dtype=np.int64), np.array([a], dtype=np.int64))
        terminated, truncated = bool(res.terminated[0]), bool(res.truncated[0])
        self._done = terminated or truncated
        info = self.conv.info(0)
        if self._done:
            info["score"] = float(sum(info["turn_rewards"]))
        return self.conv.obs(0), float(res.rewards[0]), terminated, truncated, info

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the formatted prompt and the conversation so far."""
        return self.conv.render(0) if self.render_mode == "ansi" else None

    @property
    def data(self) -> TaskData:
        """The task's samples."""
        return self.conv.data
