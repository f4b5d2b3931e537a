"""The responder protocol (the other side of a multi-turn conversation) and the responder registry.

A *responder* answers the agent after each of its turns in a
:class:`textgym.MultiTurnEnv`: a scripted user, a game, a tool, another model.
Like the reward protocol (:mod:`textgym.reward_api`) this module is core, so
envs can resolve a responder by name; task packages register their own.

Protocol
--------
::

    class MyResponder(Responder):
        name = "my-responder"
        def reset(self, sample, rng):          # once per episode
            return state                       # anything: the episode's private state
        def respond(self, states, conversations):   # batched over the rows whose turn just ended
            return [Reply(text="higher", reward=0.0, done=False), ...]

* ``reset(sample, rng)`` gets the episode's data sample (a mapping) and the
  env's ``numpy.random.Generator`` (so seeded envs give seeded games) and
  returns the per-episode state; one responder object serves every row of a
  vector env.
* ``respond(states, conversations)`` gets, for ``B`` rows, their states and
  their conversations so far as messages (``{"role", "content"}``; the last
  one is the agent's turn that just ended, decoded for reading only) and
  returns ``B`` replies.  A reply is a :class:`Reply`, a plain string (a reply
  with reward 0 that does not end the conversation) or a ``(text, reward,
  done)`` tuple.  ``Reply.token_ids`` instead of ``text`` appends those ids
  as they are.
* The env appends the reply as tokens inside the chat template's turn markers;
  a reply with ``done=True`` ends the episode (``terminated``) and is not appended.

Faults
------
:func:`call_responder` checks every reply before the env touches its context.
A responder that raises, returns the wrong number of replies, ``None``, a
non-string text, out-of-range token ids or a non-finite reward gets a
:class:`ResponderError` naming the responder, the row and what was wrong.  An
oversized text reply is cut to ``max_reply_chars`` characters (the env then
also caps its tokens, see ``max_reply_tokens``); the number of cut
characters is reported, and ``overflow="raise"`` turns the cut into an error.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textgym.named_registry import look_up, register_in

__all__ = [
    "Reply", "Responder", "ResponderError", "FunctionResponder", "call_responder", "as_responder",
    "register_responder", "make_responder", "list_responders",
]  # fmt: skip


class ResponderError(RuntimeError):
    """A responder raised, or returned something that is not a valid reply."""


@dataclass(frozen=True)
class Reply:
    """One answer of the responder.

    Attributes:
        text: the reply's content (wrapped in the turn markers by the env), or ``None`` with ``token_ids``.
        token_ids: the reply's content as token ids (appended as given), or ``None`` with ``text``.
        reward: reward for the agent's turn that this replies to (paid on that turn's last token).
        done: ``True`` ends the conversation (the env reports ``terminated``).
        role: the reply's chat role (``None``: the responder's :attr:`Responder.role`).
    """

    text: str | None = None
    token_ids: Sequence[int] | None = None
    reward: float = 0.0
    done: bool = False
    role: str | None = None


class Responder(abc.ABC):
    """Base class of responders (see the module docstring for the protocol).

    Attributes:
        name: used in error messages and logs.
        role: the chat role of the replies (``"user"``, ``"tool"``, ...).
    """

    name: str = "responder"
    role: str = "user"

    def reset(self, sample: Mapping[str, Any], rng: np.random.Generator) -> Any:
        """Start an episode on ``sample``; returns its state (default: the sample)."""
        return sample

    @abc.abstractmethod
    def respond(self, states: list[Any], conversations: list[list[dict[str, str]]]) -> list[Any]:
        """Replies for ``B`` rows (see the module docstring; every subclass implements it)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class FunctionResponder(Responder):
    """A responder from a per-row function ``fn(state, messages) -> reply`` (state = the sample)."""

    def __init__(self, fn: Callable[[Any, list[dict[str, str]]], Any], name: str | None = None, role: str = "user"):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function-responder")
        self.role = role

    def respond(self, states, conversations):
        return [self.fn(s, c) for s, c in zip(states, conversations)]


def as_responder(obj: Responder | Callable[..., Any] | str) -> Responder:
    """A :class:`Responder` from an instance, a registered name, or a per-row function."""
    if isinstance(obj, Responder):
        return obj
    if isinstance(obj, str):
        return make_responder(obj)
    if callable(obj):
        return FunctionResponder(obj)
    raise TypeError(f"expected a Responder, a registered responder name or a function, got {type(obj).__name__}")


@dataclass(frozen=True)
class CheckedReply:
    """A validated reply: exactly one of ``text`` / ``token_ids`` set, ``reward`` finite."""

    text: str | None
    token_ids: np.ndarray | None
    reward: float
    done: bool
    role: str
    cut_chars: int


def _check(responder: Responder, row: int, raw: Any, vocab_size: int, max_reply_chars: int, overflow: str) -> CheckedReply:
    where = f"responder {responder.name!r} (row {row})"
    if isinstance(raw, str):
        raw = Reply(text=raw)
    elif isinstance(raw, tuple) and not isinstance(raw, Reply):
        if len(raw) != 3:
            raise ResponderError(f"{where} returned a tuple of {len(raw)} items; return Reply(...) or (text, reward, done)")
        raw = Reply(text=raw[0], reward=raw[1], done=raw[2])
    if not isinstance(raw, Reply):
        raise ResponderError(f"{where} returned {type(raw).__name__}; return a str, a Reply or (text, reward, done)")
    try:
        reward = float(raw.reward)
    except (TypeError, ValueError):
        raise ResponderError(f"{where} returned reward {raw.reward!r}, not a number") from None
    if not math.isfinite(reward):
        raise ResponderError(f"{where} returned a non-finite reward {reward}")
    role = raw.role or responder.role
    if (raw.text is None) == (raw.token_ids is None):
        if raw.done and raw.text is None and raw.token_ids is None:
            return CheckedReply("", None, reward, True, role, 0)
        raise ResponderError(f"{where} must set exactly one of Reply.text and Reply.token_ids")
    if raw.token_ids is not None:
        ids = np.asarray(raw.token_ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ResponderError(f"{where} returned token_ids that are not a 1-D integer sequence")
        ids = ids.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ResponderError(f"{where} returned token ids outside [0, {vocab_size})")
        return CheckedReply(None, ids, reward, bool(raw.done), role, 0)
    if not isinstance(raw.text, str):
        raise ResponderError(f"{where} returned text of type {type(raw.text).__name__}, not str")
    text, cut = raw.text, 0
    if len(text) > max_reply_chars:
        if overflow == "raise":
            raise ResponderError(
                f"{where} returned {len(text)} characters, more than max_reply_chars={max_reply_chars}; "
                "shorten the reply or build the env with reply_overflow='truncate'"
            )
        text, cut = text[:max_reply_chars], len(text) - max_reply_chars
    return CheckedReply(text, None, reward, bool(raw.done), role, cut)


def call_responder(
    responder: Responder,
    states: list[Any],
    conversations: list[list[dict[str, str]]],
    *,
    rows: Sequence[int] | None = None,
    vocab_size: int,
    max_reply_chars: int,
    overflow: str = "truncate",
) -> list[CheckedReply]:
    """Call ``responder.respond`` once for a batch and validate every reply.

    Args:
        rows: the env rows of the batch (for error messages; default ``0..B-1``).
        vocab_size: token ids in a reply must lie in ``[0, vocab_size)``.
        max_reply_chars: longer text replies are cut (or rejected, ``overflow="raise"``).

    Raises:
        ResponderError: the responder raised or returned an invalid reply.
    """
    rows = list(range(len(states))) if rows is None else list(rows)
    try:
        out = responder.respond(states, conversations)
    except ResponderError:
        raise
    except Exception as exc:
        raise ResponderError(f"responder {responder.name!r} raised {type(exc).__name__}: {exc}") from exc
    if out is None or isinstance(out, (str, Reply)) or not hasattr(out, "__len__") or len(out) != len(states):
        got = "None" if out is None else f"{len(out)} items" if hasattr(out, "__len__") else type(out).__name__
        raise ResponderError(f"responder {responder.name!r} must return one reply per row ({len(states)}), got {got}")
    return [_check(responder, r, raw, vocab_size, max_reply_chars, overflow) for r, raw in zip(rows, out)]


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., Responder]] = {}


def register_responder(name: str, factory: Callable[..., Responder] | None = None):
    """Register a responder class or factory under ``name``; usable as a decorator.

    Raises:
        ValueError: ``name`` is already registered to a different factory.
    """

    return register_in(_REGISTRY, "responder", name, factory)


def make_responder(name: str, **kwargs: Any) -> Responder:
    """Build the responder registered as ``name``.

    Raises:
        KeyError: unknown name; the message suggests close matches.
    """
    return as_responder(look_up(_REGISTRY, "responder", name)(**kwargs))


def list_responders() -> list[str]:
    """Sorted names of the registered responders."""
    return sorted(_REGISTRY)
