"""Registering textgym tasks with Gymnasium, and listing them.

``register_task`` wraps ``gymnasium.register`` with both an ``entry_point``
(a :class:`textgym.TextGenEnv`) and a ``vector_entry_point`` (a
:class:`textgym.TextGenVectorEnv`), so::

    gym.make("textgym/IMDB-v0", tokenizer="tiny-gpt2")
    gym.make_vec("textgym/IMDB-v0", num_envs=64, vectorization_mode="vector_entry_point")

both work, and records a short description for :func:`list_envs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from textgym.env import TextGenEnv
from textgym.env_settings import EnvSettings
from textgym.multiturn import MultiTurnEnv
from textgym.multiturn_vector import MultiTurnVectorEnv
from textgym.vector_env import TextGenVectorEnv

__all__ = ["TaskSpec", "register_task", "list_envs", "task_spec", "build_env", "build_multiturn_env", "NAMESPACE"]

NAMESPACE = "textgym"


@dataclass(frozen=True)
class TaskSpec:
    """What :func:`list_envs` shows about a registered task.

    Attributes:
        id: the Gymnasium id, e.g. ``"textgym/IMDB-v0"``.
        task: one-line description of the task.
        data: data set name and size.
        reward: the default reward.
        license: license of the data.
        defaults: the default keyword arguments of the task's factory (for text-generation tasks
            :class:`EnvSettings` fields, e.g. ``max_prompt_length`` and ``max_new_tokens``); the one
            place a task's defaults are stated: Gymnasium's registry, the factory, ``textgym list``
            and the README's task table take them from here.
    """

    id: str
    task: str
    data: str
    reward: str
    license: str
    defaults: Mapping[str, Any] = field(default_factory=dict)


_TASKS: dict[str, TaskSpec] = {}


def build_env(
    factory: Callable[..., tuple[Any, Sequence[Mapping[str, Any]], Any, EnvSettings | Mapping[str, Any]]],
    num_envs: int | None = None,
    **kwargs: Any,
) -> TextGenEnv | TextGenVectorEnv:
    """Build a single env (``num_envs=None``) or a vector env from a task factory.

    ``factory(**kwargs)`` returns ``(tokenizer, samples, reward_fn, settings)``, the settings an
    :class:`EnvSettings` or a mapping of its fields; the task modules in ``textgym.envs`` define
    such factories.  Each env kind uses the settings it has (see ``EnvSettings.VECTOR_ONLY``).
    """
    tokenizer, samples, reward_fn, settings = factory(**kwargs)
    if not isinstance(settings, EnvSettings):
        settings = EnvSettings(**settings)
    if num_envs is None:
        return TextGenEnv(tokenizer, samples, reward_fn, settings=settings)
    return TextGenVectorEnv(tokenizer, samples, reward_fn, num_envs, settings=settings)


def build_multiturn_env(
    factory: Callable[..., tuple[Any, Sequence[Mapping[str, Any]], Any, dict[str, Any]]],
    num_envs: int | None = None,
    **kwargs: Any,
) -> MultiTurnEnv | MultiTurnVectorEnv:
    """:func:`build_env` for conversation tasks: ``factory(**kwargs)`` returns
    ``(tokenizer, samples, responder, env_kwargs)``; a :class:`MultiTurnEnv`
    (``num_envs=None``) or a :class:`MultiTurnVectorEnv` comes back."""
    tokenizer, samples, responder, env_kwargs = factory(**kwargs)
    if num_envs is None:
        env_kwargs.pop("autoreset_mode", None)
        env_kwargs.pop("copy", None)
        return MultiTurnEnv(tokenizer, samples, responder, **env_kwargs)
    return MultiTurnVectorEnv(tokenizer, samples, responder, num_envs, **env_kwargs)


def register_task(
    spec: TaskSpec,
    entry_point: str | Callable[..., Any],
    vector_entry_point: str | Callable[..., Any],
    *, max_episode_steps: int | None = None) -> None:
    """Register ``spec.id`` with Gymnasium (single and vector entry points) and remember ``spec``.

    Registering the same id twice (e.g. on module reload) replaces it.

    Raises:
        ValueError: the id is not under the ``textgym/`` namespace.
    """
    if not spec.id.startswith(NAMESPACE + "/"):
        raise ValueError(f"textgym task ids live under {NAMESPACE!r}/, got {spec.id!r}")
    if spec.id in gym.registry:
        del gym.registry[spec.id]
    gym.register(
        id=spec.id,
        entry_point=entry_point,
        vector_entry_point=vector_entry_point,
        kwargs=dict(spec.defaults),
        max_episode_steps=max_episode_steps,
        disable_env_checker=True,  # the envs are checked by the test suite instead
        order_enforce=False,
    )
    _TASKS[spec.id] = spec


def list_envs(details: bool = False) -> list[str] | list[TaskSpec]:
    """The registered textgym ids (sorted), or their :class:`TaskSpec` with ``details=True``."""
    ids = sorted(_TASKS)
    return [_TASKS[i] for i in ids] if details else ids


def task_spec(env_id: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``env_id``.

    Raises:
        KeyError: unknown id, listing the registered ones.
    """
    if env_id not in _TASKS:
        import difflib

        close = difflib.get_close_matches(env_id, list(_TASKS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown textgym env {env_id!r}.{hint} Registered: {sorted(_TASKS)}")
    return _TASKS[env_id]
