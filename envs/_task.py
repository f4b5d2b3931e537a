"""Helpers shared by the task factories: the factory steps, argument checks, prompt fitting, word cutting.

Private to ``textgym.envs``; the public pattern is the one of
:mod:`textgym.envs.common` (a factory returns ``(tokenizer, samples, reward,
settings)``, which :func:`build_task` assembles).

Prompt fitting
--------------
Real tasks put a long text (an article, a passage, a conversation) inside an
instruction, e.g. ``"Summarize: {document}\\nSummary:"``.  Letting the env
truncate the token sequence would cut either the instruction (truncation from
the left) or the ``Summary:`` cue right before the completion (from the
right).  :func:`fit_prompts` instead shortens the *long field* (a number of
words or turns) until the formatted prompt fits ``max_prompt_length`` tokens
of the env's tokenizer, so the instruction and its suffix always survive and
``info["prompt_truncated_tokens"]`` stays 0 (unless even an empty long field
does not fit; then the env's own truncation applies and counts the cut).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from textgym.env_settings import EnvSettings
from textgym.envs.common import resolve_tokenizer, split_env_kwargs

__all__ = [
    "build_task", "check_split", "task_settings", "cut_words", "count_words", "fit_prompts", "CUT_MARK",
]  # fmt: skip

#: Appended to a text that :func:`cut_words` shortened.
CUT_MARK = " ..."

_WORD = re.compile(r"\S+")


def check_split(split: str, valid: Iterable[str], task_id: str) -> str:
    """Return ``split`` if it is one of ``valid``.

    Raises:
        ValueError: unknown split; the message lists the valid ones and the closest match.
    """
    valid = list(valid)
    if split not in valid:
        close = difflib.get_close_matches(str(split), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{task_id}: unknown split {split!r}.{hint} Valid splits: {', '.join(valid)}")
    return split


def task_settings(task_id: str, kwargs: Mapping[str, Any], defaults: Mapping[str, Any]) -> EnvSettings:
    """The env settings of a factory call: ``kwargs`` over the task's ``defaults``.

    Args:
        task_id: used in error messages.
        kwargs: the factory's ``**kwargs`` (env settings only).
        defaults: the task's defaults (its :class:`~textgym.registration.TaskSpec`'s), e.g.
            ``{"max_prompt_length": 512, "max_new_tokens": 128}``.

    Raises:
        TypeError: an argument is neither an env setting nor one of the task's.
        ValueError: a bad value (a length that is not a positive int, ...: see :class:`EnvSettings`).
    """
    env, rest = split_env_kwargs(dict(kwargs))
    if rest:
        raise TypeError(f"{task_id} got unknown arguments {sorted(rest)}")
    env = {**defaults, **env}
    for key in ("max_prompt_length", "max_new_tokens"):
        value = env.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{task_id}: {key} must be a positive int, got {value!r}")
    return EnvSettings(**env)


def build_task(
    task_id: str,
    *,
    tokenizer: Any,
    reward: Any,
    default_reward: Any,
    split: str,
    splits: Iterable[str],
    samples: Any,
    kwargs: Mapping[str, Any],
    defaults: Mapping[str, Any],
    make_samples: Callable[[Any, int, Any], list[dict[str, Any]]],
    reward_model: Any = None,
) -> tuple[Any, Any, Any, EnvSettings]:
    """The ``(tokenizer, samples, reward, settings)`` of a task factory call.

    In order: builds the env settings (:func:`task_settings`), checks the
    split (:func:`check_split`) and that not both ``reward`` and
    ``reward_model`` are given, loads the tokenizer
    (:func:`~textgym.envs.common.resolve_tokenizer`), builds the samples
    unless ``samples`` are given, and picks the reward.

    Args:
        task_id: the registered id, used in error messages.
        tokenizer, reward, split, samples: the factory's arguments.
        default_reward: the reward when ``reward`` and ``reward_model`` are
            ``None``: a reward name, or a function without arguments that
            returns the reward (called only then).
        splits: the task's valid splits.
        kwargs: the factory's ``**kwargs`` (env settings only).
        defaults: the task's env setting defaults (its spec's).
        make_samples: ``make_samples(tokenizer, max_prompt_length,
            prompt_format)`` -> the samples of ``split`` (called only when
            ``samples is None``).
        reward_model: the factory's ``reward_model`` (local directory or loaded
            model of a reward model), for tasks that take one; when given, the
            default reward is ``"reward-model"`` on it.

    Raises:
        TypeError: unknown argument.
        ValueError: unknown split, bad lengths, or both ``reward`` and ``reward_model``.
    """
    settings = task_settings(task_id, kwargs, defaults)
    check_split(split, splits, task_id)
    if reward is not None and reward_model is not None:
        raise ValueError(f"{task_id}: pass either reward= or reward_model=, not both")
    tok = resolve_tokenizer(tokenizer)
    if samples is None:
        samples = make_samples(tok, settings.max_prompt_length, settings.prompt_format)
    if reward is None:
        if reward_model is not None:
            from textgym.reward_api import make

            reward = make("reward-model", model=reward_model)
        else:
            reward = default_reward() if callable(default_reward) else default_reward
    return tok, samples, reward, settings


def count_words(text: str) -> int:
    """Number of whitespace-separated words of ``text``."""
    return sum(1 for _ in _WORD.finditer(text))


def cut_words(text: str, n: int | None, mark: str = CUT_MARK) -> str:
    """The first ``n`` words of ``text`` with the original spacing, plus ``mark`` if anything was cut.

    ``n=None`` returns ``text`` unchanged; ``n=0`` returns ``mark.strip()`` if
    ``text`` had words.
    """
    if n is None:
        return text
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for i, match in enumerate(_WORD.finditer(text)):
        if i == n:
            return (text[: match.start()].rstrip() + mark) if n else mark.strip()
    return text


def fit_prompts(
    rows: Sequence[Mapping[str, Any]],
    build: Callable[[Mapping[str, Any], int | None], dict[str, Any]],
    units: Callable[[Mapping[str, Any]], int],
    tokenizer: Any,
    max_prompt_length: int,
    prompt_format: Any = None,
    min_units: int = 0,
    cache_key: Hashable | None = None,
) -> list[dict[str, Any]]:
    """Build one sample per row, shortening its long field so the formatted prompt fits.

    Args:
        rows: data rows.
        build: ``build(row, n)`` -> sample dict (``prompt`` plus columns) with
            the long field cut to ``n`` units (words, turns, ...); ``n=None``
            means uncut.
        units: ``units(row)`` -> how many units the long field has.
        tokenizer: the env's tokenizer (counts the tokens).
        max_prompt_length: the env's ``P``.
        prompt_format: the env's prompt format (``None``, ``"chat"``, template,
            callable); the prompt is measured after formatting, as the env
            will tokenize it.
        min_units: never cut below this many units.
        cache_key: names the rows (e.g. ``("xquad-en", "train")``); the result
            is then remembered per process for this key, the tokenizer's
            content (see :func:`tokenizer_fingerprint`), ``max_prompt_length``
            and (hashable) ``prompt_format``, so building the same env again
            (vector envs, env checkers, train + eval) skips the tokenization.

    Returns:
        The samples, in row order (a new list; the dicts may be shared with
        earlier calls and must not be mutated).  A sample whose prompt does
        not fit even with ``min_units`` units keeps ``min_units`` (the env
        then truncates it).
    """
    key = None
    if cache_key is not None:
        fingerprint = tokenizer_fingerprint(tokenizer)
        key = (cache_key, fingerprint, max_prompt_length, prompt_format, min_units)
        try:
            hash(key)
        except TypeError:  # an unhashable prompt_format
            key = None
        if fingerprint is None:
            key = None
    if key is not None and key in _FIT_CACHE:
        return list(_FIT_CACHE[key])
    samples = _fit(rows, build, units, tokenizer, max_prompt_length, prompt_format, min_units)
    if key is not None:
        if len(_FIT_CACHE) >= _FIT_CACHE_SIZE:
            _FIT_CACHE.pop(next(iter(_FIT_CACHE)))
        _FIT_CACHE[key] = samples
    return list(samples)


_FIT_CACHE: dict[Hashable, list[dict[str, Any]]] = {}
_FIT_CACHE_SIZE = 32


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """SHA-256 of a fast tokenizer's full definition (vocabulary, merges, specials) and chat template.

    Two tokenizer objects with equal fingerprints tokenize alike (e.g. a deep
    copy, or the same model's tokenizer loaded twice).  ``None`` for
    tokenizers without a ``backend_tokenizer`` (slow tokenizers, custom objects).
    Costs about 60 ms for a 50k-token BPE.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    to_str = getattr(backend, "to_str", None)
    if to_str is None:
        return None
    digest = hashlib.sha256(to_str().encode("utf-8"))
    digest.update(b"\0" + str(getattr(tokenizer, "chat_template", None)).encode("utf-8"))
    return digest.hexdigest()


def _fit(rows, build, units, tokenizer, max_prompt_length, prompt_format, min_units):
    from textgym.prompts import TaskData

    fmt = TaskData([{"prompt": ""}], tokenizer, max_prompt_length, prompt_format=prompt_format)

    def n_tokens(samples: Sequence[Mapping[str, Any]]) -> list[int]:
        texts = [fmt.format(s) for s in samples]
        # Shortcut: byte-level BPE, byte-fallback SentencePiece and character tokenizers make at most
        # one token per UTF-8 byte; 3 spare slots cover BOS/EOS and a prefix-space token.
        out = [len(t.encode("utf-8")) + 3 for t in texts]
        long = [i for i, n in enumerate(out) if n > max_prompt_length]
        if long:
            enc = tokenizer([texts[i] for i in long], add_special_tokens=fmt.add_special_tokens)["input_ids"]
            for i, ids in zip(long, enc):
                out[i] = len(ids)
        return out

    samples = [build(row, None) for row in rows]
    for i, n in enumerate(n_tokens(samples)):
        if n <= max_prompt_length:
            continue
        row = rows[i]
        lo, hi = min_units, max(min_units, units(row) - 1)  # the largest n in [lo, hi] that fits
        best = lo
        while lo <= hi:
            mid = (lo + hi) // 2
            if n_tokens([build(row, mid)])[0] <= max_prompt_length:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        samples[i] = build(row, best)
    return samples
