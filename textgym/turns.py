"""Turn markers: how a reply is wrapped into tokens between two agent turns, without touching the context.

In a conversation the context only grows: after the agent's turn the env
appends ``close + opener(role) + content + closer + assistant header`` as
tokens, and the agent's next turn starts after them.  :class:`TurnFormat` holds
those pieces as text and tokenizes each piece once:

* from a chat template (:meth:`TurnFormat.from_chat_template`): the pieces are
  read off the template's own rendering of a short conversation, so for
  SmolLM2's ChatML an agent turn ``...<|im_end|>`` is followed by
  ``\\n<|im_start|>user\\n`` + reply + ``<|im_end|>\\n<|im_start|>assistant\\n``;
* plain (:meth:`TurnFormat.plain`) for tokenizers without one.

The reply's *content* is tokenized on its own with special tokens split
(``split_special_tokens=True``), so a reply that contains ``<|im_end|>`` as
text (an echo of model output, a hostile tool) cannot forge a turn marker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TurnFormat"]

_A, _B, _C = "\x00AGENT\x00", "\x00USERCONTENT\x00", "\x00REPLY\x00"


@dataclass
class TurnFormat:
    """The text around a reply.

    Attributes:
        agent_close: text that closes an agent turn (e.g. ``"<|im_end|>"``); when
            the agent's turn already ended with a token whose text is this
            (its end-of-turn token), it is not appended again.
        reply_open: text before the reply content; ``{role}`` is replaced by the reply's role.
        reply_close: text after the content, up to and including the next assistant header.
    """

    agent_close: str = ""
    reply_open: str = " | {role}: "
    reply_close: str = " | assistant:"
    #: the tokenizer whose chat template the pieces come from (other roles are rendered with it); ``None``: plain
    template_tokenizer: Any = field(default=None, repr=False, compare=False)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def plain(cls, reply_open: str = " | {role}: ", reply_close: str = " | assistant:") -> TurnFormat:
        """A template-free format: ``reply_open.format(role) + content + reply_close``.

        The default separators are on one line and use only characters of the
        ``tiny-char`` alphabet, so they tokenize without unknown tokens everywhere."""
        return cls("", reply_open, reply_close)

    @classmethod
    def from_chat_template(cls, tokenizer: Any) -> TurnFormat:
        """Read the pieces off ``tokenizer.chat_template`` (a user reply; other roles are rendered on demand).

        Raises:
            ValueError: the tokenizer has no chat template, or the template does
                not render the content verbatim.
        """
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("TurnFormat.from_chat_template needs a tokenizer with a chat template")
        fmt = cls("", "", "", template_tokenizer=tokenizer)
        fmt.agent_close, opener, fmt.reply_close = fmt._pieces("user")
        fmt.reply_open = opener.replace("user", "{role}")  # for display; other roles are rendered by the template
        return fmt

    def _pieces(self, role: str) -> tuple[str, str, str]:
        tok = self.template_tokenizer
        msgs = [{"role": "user", "content": _B}, {"role": "assistant", "content": _A}, {"role": role, "content": _C}]
        full = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        closed = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=False)
        if _A not in full or _C not in full or _A not in closed:
            raise ValueError("the chat template does not render message contents verbatim; pass a TurnFormat")
        between = full[full.index(_A) + len(_A) :]
        agent_close = closed[closed.index(_A) + len(_A) :]
        opener, closer = between.split(_C, 1)
        # the agent's own closing marker (e.g. "<|im_end|>") without the trailing separator ("\n")
        stripped = agent_close.rstrip()
        close = stripped if stripped and opener.startswith(stripped) else ""
        return close, opener[len(close) :] if close else opener, closer

    # ------------------------------------------------------------------ tokens
    def _encode(self, tokenizer: Any, text: str, split_special: bool) -> np.ndarray:
        if not text:
            return np.zeros(0, dtype=np.int64)
        kwargs = {"add_special_tokens": False}
        if split_special:
            kwargs["split_special_tokens"] = True
        return np.asarray(tokenizer(text, **kwargs)["input_ids"], dtype=np.int64)

    def marker_ids(self, tokenizer: Any, role: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(agent_close, reply_open, reply_close)`` token ids for ``role`` (tokenized once, cached)."""
        key = ("markers", role)
        if key not in self._cache:
            if self.template_tokenizer is not None and role != "user":
                close, opener, closer = self._pieces(role)
            else:
                close, opener, closer = self.agent_close, self.reply_open.replace("{role}", role), self.reply_close
            self._cache[key] = tuple(self._encode(tokenizer, t, False) for t in (close, opener, closer))
        return self._cache[key]

    def close_text_ids(self, tokenizer: Any) -> np.ndarray:
        """Token ids of :attr:`agent_close`."""
        return self.marker_ids(tokenizer, "user")[0]

    def content_ids(self, tokenizer: Any, text: str) -> np.ndarray:
        """Token ids of a reply's content (special-token text split, so no marker can be forged)."""
        return self._encode(tokenizer, text, True)

    def wrap(
        self, tokenizer: Any, role: str, content: np.ndarray, agent_closed: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The tokens appended after an agent turn: ``(before_content, content_and_after)`` pieces joined.

        Args:
            content: the reply's content ids.
            agent_closed: the agent's turn ended with its end-of-turn token, so
                :attr:`agent_close` is not repeated.

        Returns:
            ``(ids, content_slice)``: all ids to append, and ``[start, stop)`` of the content inside them.
        """
        close, opener, closer = self.marker_ids(tokenizer, role)
        head = opener if agent_closed else np.concatenate([close, opener])
        ids = np.concatenate([head, content, closer]).astype(np.int64)
        return ids, np.array([len(head), len(head) + len(content)], dtype=np.int64)
