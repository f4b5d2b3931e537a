"""Helpers shared by the task factories: the factory steps, argument checks, prompt fitting, word cutting.

Private to ``textgym.envs``; the public pattern is the one of
:mod:`textgym.envs.common` (a factory returns ``(tokenizer, samples, reward,
settings)``, which :func:`build_task` assembles; :func:`define_factory`
writes the factory of a task that loads a split of a data set).

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
import sys
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from textgym.env_settings import EnvSettings
from textgym.envs.common import resolve_tokenizer, split_env_kwargs

__all__ = [
    "build_task", "define_factory", "check_split", "task_settings", "cut_words", "count_words", "fit_prompts",
    "fit_split", "CUT_MARK", "DEFAULT_TOKENIZER",
]  # fmt: skip

#: The model whose tokenizer a task factory loads by default.
DEFAULT_TOKENIZER = "smollm2-135m-instruct"

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


def define_factory(
    task_id: str,
    name: str,
    make_samples: Callable[[str, Any, int, Any], list[dict[str, Any]]],
    *,
    default_reward: Any,
    splits: Iterable[str],
    defaults: Mapping[str, Any],
    split_doc: str,
    samples_doc: str,
    default_split: str = "train",
    reward_model: bool = False,
    reward_note: str = "",
) -> Callable[..., tuple[Any, Any, Any, EnvSettings]]:
    """The factory ``name(tokenizer, reward, split, samples, [reward_model,] **kwargs)`` of a data-set task.

    The factory calls :func:`build_task` with the task's parts and carries a
    docstring written from them (arguments, the defaults of ``defaults``,
    returns, raises).  It is a plain function of the calling module (its
    ``__module__`` and ``__qualname__``), so it pickles by reference.

    Args:
        task_id: the registered id.
        name: the factory's name in its module (e.g. ``"make_xquad"``).
        make_samples: ``make_samples(split, tokenizer, max_prompt_length,
            prompt_format)`` -> the samples of the split.
        default_reward: as :func:`build_task`'s (a reward name, or a function
            without arguments that returns the reward).
        splits: the task's valid splits.
        defaults: the task's env setting defaults (its spec's).
        split_doc: the ``split`` argument's description (the splits and their sizes).
        samples_doc: the ``samples`` argument's description (the columns your own samples need).
        default_split: the ``split`` argument's default.
        reward_model: whether the factory takes ``reward_model=`` (a reward model
            directory or object; it then becomes the default reward).
        reward_note: appended to the default reward's description.
    """

    def build(tokenizer: Any, reward: Any, split: str, samples: Any, kwargs: dict[str, Any], model: Any = None):
        return build_task(task_id, tokenizer=tokenizer, reward=reward, default_reward=default_reward, split=split,
                          splits=splits, samples=samples, kwargs=kwargs, defaults=defaults, reward_model=model,
                          make_samples=lambda tok, p, fmt: make_samples(split, tok, p, fmt))

    if reward_model:
        def factory(tokenizer: Any = DEFAULT_TOKENIZER, reward: Any = None, split: str = default_split,
                    samples: Any = None, reward_model: Any = None, **kwargs: Any):
            return build(tokenizer, reward, split, samples, kwargs, reward_model)
    else:
        def factory(tokenizer: Any = DEFAULT_TOKENIZER, reward: Any = None, split: str = default_split,
                    samples: Any = None, **kwargs: Any):
            return build(tokenizer, reward, split, samples, kwargs)

    factory.__name__ = factory.__qualname__ = name
    factory.__module__ = sys._getframe(1).f_globals.get("__name__", __name__)  # as collections.namedtuple does
    factory.__doc__ = _factory_doc(task_id, default_reward, defaults, split_doc, samples_doc, reward_model,
                                   reward_note)
    return factory


def _factory_doc(task_id: str, default_reward: Any, defaults: Mapping[str, Any], split_doc: str, samples_doc: str,
                 reward_model: bool, reward_note: str) -> str:
    default = f'``"{default_reward}"``' if isinstance(default_reward, str) else f":func:`{default_reward.__name__}`"
    if reward_model:
        reward = ("reward name, object or callable; default: the reward model if ``reward_model`` is given, "
                  f"else {default}")
        raises = "ValueError: unknown split, bad lengths, or both ``reward`` and ``reward_model``.\n        TypeError"
    else:
        reward = f"reward name, object or callable (default {default}{reward_note})"
        raises = "ValueError: unknown split or bad lengths.  TypeError"
    lengths = ", ".join(f"``{key}`` default {value}" for key, value in defaults.items())
    model = "\n        reward_model: local directory (or loaded model) of a reward model." if reward_model else ""
    return f"""Factory of ``{task_id}``; keyword arguments are ``gym.make`` overrides.

    Args:
        tokenizer: model name/path (its tokenizer is loaded) or a tokenizer object.
        reward: {reward}.
        split: {split_doc}.
        samples: {samples_doc}.{model}
        **kwargs: env arguments ({lengths}, ``prompt_format``, ...).

    Returns:
        ``(tokenizer, samples, reward, settings)`` for :func:`textgym.registration.build_env`.

    Raises:
        {raises}: unknown argument.
    """


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


def fit_split(
    dataset: str,
    split: str,
    build: Callable[[Mapping[str, Any], int | None], dict[str, Any]],
    long_field: str | Callable[[Mapping[str, Any]], int],
    tokenizer: Any,
    max_prompt_length: int,
    prompt_format: Any = None,
    cache_key: Hashable | None = None,
) -> list[dict[str, Any]]:
    """:func:`fit_prompts` over the rows of ``split`` of the vendored set ``dataset``.

    Args:
        dataset, split: what :func:`textgym.envs.datasets.load` reads.
        build: as :func:`fit_prompts`'s.
        long_field: the column that is cut, counted in words, or ``units(row)``
            as :func:`fit_prompts` takes it.
        tokenizer, max_prompt_length, prompt_format: the env's.
        cache_key: :func:`fit_prompts`'s (default ``(dataset, split)``).
    """
    from textgym.envs.datasets import load

    rows = load(dataset, split).to_list()
    units = long_field if callable(long_field) else (lambda row: count_words(row[long_field]))
    return fit_prompts(rows, build, units, tokenizer, max_prompt_length, prompt_format,
                       cache_key=(dataset, split) if cache_key is None else cache_key)


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
