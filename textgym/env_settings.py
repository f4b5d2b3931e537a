"""``EnvSettings``: the arguments of a text-generation env, written once.

:class:`textgym.TextGenEnv`, :class:`textgym.TextGenVectorEnv`, the task
factories of ``textgym.envs`` and :func:`textgym.registration.build_env` all
take these settings, as keyword arguments (``gym.make(id, max_new_tokens=16)``,
YAML ``env.kwargs``) or as one :class:`EnvSettings` object::

    settings = EnvSettings(max_prompt_length=128, max_new_tokens=32)
    env = TextGenEnv(tokenizer, samples, reward, settings=settings)
    vec = TextGenVectorEnv(tokenizer, samples, reward, 64, settings=settings)

A bad value raises ``ValueError`` when the settings are built, before any
data is read or tokenized.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode

from textgym.prompts import PromptFormat

__all__ = ["EnvSettings"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class EnvSettings:
    """Everything a text-generation env takes besides its tokenizer, samples and reward.

    Raises:
        ValueError: a length that is not an integer >= 1, a non-bool ``shuffle``,
            an unknown ``reward_on_error``, ``render_mode`` or ``autoreset_mode``.
    """

    max_prompt_length: int = 64
    """``P``, the prompt slots of an observation.  A longer prompt is truncated (``truncation_side``),
    counted in ``info["prompt_truncated_tokens"]`` and the env's ``num_truncated_prompts``."""
    max_new_tokens: int = 32
    """``T``, the episode's token budget: the episode is truncated after ``T`` tokens without a stop."""
    stop_token_ids: Sequence[int] | None = None
    """Actions that end the episode (``terminated``); default: the tokenizer's EOS."""
    prompt_format: PromptFormat = None
    """How a sample becomes prompt text: ``None``, ``"chat"``, a template or a callable (see
    :class:`textgym.prompts.TaskData`)."""
    truncation_side: str = "left"
    """Which end of a too-long prompt is cut: ``"left"`` or ``"right"``."""
    shuffle: bool = True
    """Visit the samples in shuffled epochs (``True``) or in order (``False``)."""
    vocab_size: int | None = None
    """Size of the action space, at least the tokenizer's (default ``len(tokenizer)``)."""
    reward_on_error: str = "raise"
    """A reward that raises: ``"raise"`` or ``"penalty"`` (see :func:`textgym.reward_api.call_reward`)."""
    skip_special_tokens: bool = True
    """Drop special tokens (pad, unk, ...) from the decoded completion; ``False`` keeps them in the
    text the reward scores, so a policy cannot hide tokens from it."""
    decode_every_step: bool = True
    """Single env: put the partial completion in ``info`` on every step (``False``: at the end only)."""
    allowed_token_ids: Sequence[int] | None = None
    """Restrict the actions to these token ids (``None``: every id in ``[0, V)``).  The env then
    exposes the mask in ``action_masks()`` (``(V,)`` bool; the vector env ``(N, V)``), as
    sb3-contrib's ``MaskablePPO`` reads it.  A disallowed token taken anyway ends the episode at once
    (``terminated``) with the score ``invalid_action_penalty`` instead of the reward's, and
    ``info["invalid_action"]`` holds its id (see :mod:`textgym.action_mask`).  Stop ids are not
    added: include EOS so that episodes can terminate."""
    invalid_action_penalty: float = -1.0
    """The score (final reward) of an episode ended by a token outside ``allowed_token_ids``."""
    render_mode: str | None = None
    """``None`` or ``"ansi"`` (the prompt and the completion so far)."""
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP
    """Vector env: an ``AutoresetMode`` or its value (``"NextStep"``, ``"SameStep"``, ``"Disabled"``)."""
    copy: bool = True
    """Vector env: return copies of the observation arrays (``False``: views the next step overwrites)."""
    info_completions: bool = True
    """Vector env: put each finished completion's text in ``info["completion"]``; with ``False`` and a
    reward whose ``needs_text`` is ``False`` no text is decoded at all."""

    #: settings that only the single env (:class:`textgym.TextGenEnv`) uses
    SINGLE_ONLY: ClassVar[tuple[str, ...]] = ("decode_every_step",)
    #: settings that only the vector env (:class:`textgym.TextGenVectorEnv`) uses
    VECTOR_ONLY: ClassVar[tuple[str, ...]] = ("autoreset_mode", "copy", "info_completions")

    def __post_init__(self) -> None:
        for name in ("max_prompt_length", "max_new_tokens"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise ValueError(f"shuffle must be True or False, got {self.shuffle!r}")
        if self.reward_on_error not in ("raise", "penalty"):
            raise ValueError(f"reward_on_error must be 'raise' or 'penalty', got {self.reward_on_error!r}")
        if self.render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {self.render_mode!r}")
        try:
            object.__setattr__(self, "autoreset_mode", AutoresetMode(self.autoreset_mode))
        except ValueError:
            raise ValueError(f"autoreset_mode must be one of {[m.value for m in AutoresetMode]}, "
                             f"got {self.autoreset_mode!r}") from None
        if self.stop_token_ids is not None:
            object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))
        if self.allowed_token_ids is not None:
            ids = self.allowed_token_ids
            if isinstance(ids, (str, bytes)) or not all(_is_int(i) for i in ids) or not len(ids):
                raise ValueError(f"allowed_token_ids must be a non-empty list of integer token ids, got {ids!r}")
            object.__setattr__(self, "allowed_token_ids", tuple(sorted(set(int(i) for i in ids))))
        penalty = self.invalid_action_penalty
        if isinstance(penalty, (bool, np.bool_)) or not isinstance(penalty, (int, float, np.integer, np.floating)) \
                or not np.isfinite(penalty):
            raise ValueError(f"invalid_action_penalty must be a finite number, got {self.invalid_action_penalty!r}")
        object.__setattr__(self, "invalid_action_penalty", float(self.invalid_action_penalty))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in declaration order (the keyword arguments every env takes)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def of(cls, owner: str, settings: EnvSettings | None, kwargs: Mapping[str, Any],
           not_for: Sequence[str] = ()) -> EnvSettings:
        """``settings`` (default: the defaults) with ``kwargs`` replacing its fields.

        Args:
            owner: who takes the arguments, for the error message (e.g. ``"TextGenEnv"``).
            not_for: names ``owner`` does not take (the other env kind's settings).

        Raises:
            TypeError: a name that is not a setting of ``owner``, or ``settings`` that is not an
                :class:`EnvSettings`.
            ValueError: a bad value (see the class).
        """
        for key in kwargs:
            if key not in cls.names() or key in not_for:
                valid = [n for n in cls.names() if n not in not_for]
                raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {key!r}; "
                                f"its settings are {valid}")
        if settings is None:
            return cls(**kwargs)
        if not isinstance(settings, EnvSettings):
            raise TypeError(f"settings must be an EnvSettings, got {type(settings).__name__}")
        return dataclasses.replace(settings, **kwargs) if kwargs else settings

    def action_space_size(self, tokenizer: Any) -> int:
        """``V``: ``vocab_size``, or ``len(tokenizer)`` when it is ``None``.

        Raises:
            ValueError: a ``vocab_size`` smaller than the tokenizer (observations would hold ids
                outside the declared space).
        """
        n = len(tokenizer)
        if self.vocab_size is None:
            return n
        if not _is_int(self.vocab_size) or self.vocab_size < n:
            raise ValueError(f"vocab_size={self.vocab_size!r} cannot hold the tokenizer's {n} token ids (prompts "
                             f"would carry ids outside the observation and action spaces); omit vocab_size or give "
                             f">= {n}")
        return int(self.vocab_size)
