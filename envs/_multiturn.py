"""Helpers shared by the conversation (multi-turn) task factories.

A conversation task's factory returns ``(tokenizer, samples, responder,
env_kwargs)``; :func:`multiturn_entry_points` turns it into the
``entry_point`` / ``vector_entry_point`` pair that Gymnasium registers
(:class:`textgym.MultiTurnEnv` / :class:`textgym.MultiTurnVectorEnv`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from textgym.envs.common import entry_points
from textgym.registration import build_multiturn_env

__all__ = ["MT_ENV_KWARGS", "multiturn_entry_points", "multiturn_env_kwargs", "held_out"]

#: Keyword arguments every conversation task passes straight to the env classes.
MT_ENV_KWARGS = (
    "max_prompt_length", "max_new_tokens", "max_turns", "max_turn_tokens", "end_of_turn_ids", "turn_format",
    "prompt_format", "truncation_side", "shuffle", "vocab_size", "max_reply_tokens", "max_reply_chars",
    "reply_overflow", "skip_special_tokens", "render_mode", "autoreset_mode", "copy",
)  # fmt: skip


def multiturn_env_kwargs(task_id: str, kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The env arguments of a factory call with the task's defaults filled in.

    Raises:
        TypeError: an argument that is neither an env argument nor the task's.
    """
    unknown = sorted(k for k in kwargs if k not in MT_ENV_KWARGS)
    if unknown:
        raise TypeError(f"{task_id} got unknown arguments {unknown}; env arguments are {list(MT_ENV_KWARGS)}")
    env = dict(defaults)
    env.update(kwargs)
    return env


def multiturn_entry_points(factory: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(make_env, make_vector_env)`` for Gymnasium's registry from a conversation task factory.

    Both callables name this module as theirs (``__module__``): that is how a registered id is told
    to be a conversation task (``textgym.app.config.is_conversation_env``).
    """
    pair = entry_points(factory, build_multiturn_env)
    for fn in pair:
        fn.__module__ = __name__
    return pair


def held_out(task: str, key: str, fraction: int = 5) -> bool:
    """Whether ``key`` belongs to the held-out test split (``1/fraction`` of keys, by SHA-256)."""
    digest = hashlib.sha256(f"textgym-multiturn-v1\0{task}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % fraction == 0
