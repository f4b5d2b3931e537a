"""Helpers shared by the task modules: tokenizer resolution and the env factories.

Each task module defines a *factory* ``make_<task>(**overrides) -> (tokenizer,
samples, reward_fn, env_kwargs)``; :func:`entry_points` turns it into the
``entry_point`` / ``vector_entry_point`` pair that Gymnasium registers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textgym.registration import build_env

__all__ = ["resolve_tokenizer", "entry_points", "ENV_KWARGS"]

#: Keyword arguments every task passes straight to the env classes.
ENV_KWARGS = (
    "max_prompt_length",
    "max_new_tokens",
    "stop_token_ids",
    "prompt_format",
    "truncation_side",
    "shuffle",
    "vocab_size",
    "reward_on_error",
    "skip_special_tokens",
    "decode_every_step",
    "render_mode",
    "autoreset_mode",
    "copy",
    "info_completions",
)


def resolve_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object from a model name/path (via :func:`textgym.models.load_tokenizer`) or as given."""
    if isinstance(tokenizer, str):
        from textgym.models import load_tokenizer  # imports transformers: only when needed

        return load_tokenizer(tokenizer)
    return tokenizer


def split_env_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``kwargs`` into ``(env kwargs, task kwargs)``."""
    env = {k: kwargs.pop(k) for k in list(kwargs) if k in ENV_KWARGS}
    return env, kwargs


def entry_points(factory: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(make_env, make_vector_env)`` callables for Gymnasium's registry from a task factory."""

    def make_env(**kwargs: Any):
        return build_env(factory, None, **kwargs)

    def make_vector_env(num_envs: int = 8, **kwargs: Any):
        return build_env(factory, num_envs, **kwargs)

    make_env.__doc__ = f"Single env of {factory.__name__}; see its docstring for the keyword arguments."
    make_vector_env.__doc__ = f"Vector env of {factory.__name__}; see its docstring for the keyword arguments."
    return make_env, make_vector_env
