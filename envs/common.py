"""Helpers shared by the task modules: tokenizer resolution and the env factories.

Each task module defines a *factory* ``make_<task>(**overrides) -> (tokenizer,
samples, reward_fn, settings)`` (settings: a :class:`textgym.EnvSettings`);
:func:`entry_points` turns it into the ``entry_point`` / ``vector_entry_point``
pair that Gymnasium registers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textgym.env_settings import EnvSettings
from textgym.registration import build_env

__all__ = ["resolve_tokenizer", "entry_points", "split_env_kwargs", "ENV_KWARGS"]

#: Keyword arguments every task passes straight to the env classes: the fields of :class:`EnvSettings`.
ENV_KWARGS = EnvSettings.names()


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


def entry_points(factory: Callable[..., Any], build: Callable[..., Any] = build_env
                 ) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(make_env, make_vector_env)`` callables for Gymnasium's registry from a task factory.

    ``build(factory, num_envs, **kwargs)`` makes the env (default :func:`textgym.registration.build_env`;
    conversation tasks pass :func:`textgym.registration.build_multiturn_env`).
    """

    def make_env(**kwargs: Any):
        return build(factory, None, **kwargs)

    def make_vector_env(num_envs: int = 8, **kwargs: Any):
        return build(factory, num_envs, **kwargs)

    make_env.__doc__ = f"Single env of {factory.__name__}; see its docstring for the keyword arguments."
    make_vector_env.__doc__ = f"Vector env of {factory.__name__}; see its docstring for the keyword arguments."
    return make_env, make_vector_env
