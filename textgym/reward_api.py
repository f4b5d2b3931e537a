"""The reward-function protocol and the reward registry.

This module is the contract between environments (which call rewards) and the
``textgym.rewards`` package (which implements them).  It sits in the core layer
so that envs can resolve a reward by name without importing from a layer above:
``textgym.rewards`` registers its built-ins here when ``textgym`` is imported,
the same way tasks register with ``gymnasium.register``.

Protocol
--------
A *reward function* is a batched callable::

    reward_fn(prompts: list[str], completions: list[str], *,
              references: list[list[str]] | None = None, **columns) -> np.ndarray

returning an array of shape ``(B,)``, dtype float32, every value finite.
``columns`` carries extra dataset columns (test cases, labels, concepts, ...),
each a list of length ``B``.  A reward function may also return
``(scores, components)`` where ``components`` maps a name to a ``(B,)`` array;
the components are logged (``info["reward_components"]``).

A plain per-sample function ``f(prompt, completion, **kw) -> float`` is
accepted too: :func:`as_reward_function` wraps it.  A function declares how it
is called: ``batched=True/False`` passed to :func:`as_reward_function`, a
``batched`` attribute, or its parameter names (``prompts, completions`` is
batched; anything else is per-sample).  Annotations are not guessed from: a
first parameter annotated as a list under other names is an error that says
how to declare it.

Dense rewards
-------------
A :class:`DenseRewardFunction` scores every *prefix* of a completion.  The env
pays the increment ``r_t = s(prefix_t) - s(prefix_{t-1})`` with ``s(empty) = 0``,
so the per-step rewards of an episode sum exactly to the final score
(a telescoping sum, i.e. potential-based shaping with the score as potential,
Ng et al. 1999).
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from textgym.named_registry import look_up, register_in

__all__ = [
    "RewardFunction",
    "DenseRewardFunction",
    "FunctionReward",
    "RewardError",
    "as_reward_function",
    "call_reward",
    "register",
    "make",
    "list_rewards",
]


class RewardError(RuntimeError):
    """A reward function raised, or returned something other than ``B`` finite float scores.

    An error about one sample keeps its position in the batch (``index``) so that
    :func:`call_reward` can name it the way its caller knows it (an env names the env
    row and the data set's sample index, not the position among the rows that ended).
    """

    def __init__(self, message: str, *, index: int | None = None, parts: tuple[str, str] | None = None):
        super().__init__(message)
        self.index = index
        self._parts = parts

    @classmethod
    def at(cls, index: int, before: str, after: str) -> "RewardError":
        """An error about the sample at position ``index``: ``before + "sample {index}" + after``."""
        return cls(f"{before}sample {index}{after}", index=index, parts=(before, after))

    def relabel(self, label: str) -> "RewardError":
        """The same error with the sample named ``label`` (unchanged if it names no sample)."""
        if self._parts is None:
            return self
        return RewardError(self._parts[0] + label + self._parts[1], index=self.index, parts=self._parts)


class RewardFunction(abc.ABC):
    """Base class for batched reward functions.

    Subclasses implement :meth:`score`; ``__call__`` forwards to it.  The class
    attribute ``name`` is used in error messages and logs.

    Attributes:
        name: short identifier used in logs and errors.
        dense: ``False`` here; see :class:`DenseRewardFunction`.
        needs_text: whether the reward reads the completion text (default ``True``).
    """

    name: str = "reward"
    dense: bool = False
    batched: bool = True
    #: ``False`` for rewards that never read the completion text (e.g. a constant);
    #: vector envs built with ``info_completions=False`` then skip decoding and pass
    #: empty strings as ``completions``.
    needs_text: bool = True

    @abc.abstractmethod
    def score(
        self,
        prompts: list[str],
        completions: list[str],
        *,
        references: list[list[str]] | None = None,
        **columns: Any,
    ) -> np.ndarray | tuple[np.ndarray, Mapping[str, np.ndarray]]:
        """Score ``B`` completions (every subclass implements it).

        Args:
            prompts: ``B`` prompt strings (as formatted for the model).
            completions: ``B`` completion strings (stop token removed).
            references: optional ``B`` lists of reference strings.
            **columns: extra dataset columns, each a list of length ``B``.

        Returns:
            ``(B,)`` float32 scores, or ``(scores, components)``.
        """

    def __call__(self, prompts, completions, *, references=None, **columns):
        return self.score(prompts, completions, references=references, **columns)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class DenseRewardFunction(RewardFunction):
    """A reward that can score every prefix of a completion.

    The env calls it after every step with the completion prefixes generated so
    far and pays the difference from the previous call, so the per-step rewards
    sum to the score of the whole completion.  Implement :meth:`score` exactly
    as for :class:`RewardFunction`; it must accept partial completions.
    """

    dense = True


class FunctionReward(RewardFunction):
    """Adapter that turns a user callable into a :class:`RewardFunction`.

    Args:
        fn: the callable.
        batched: ``True`` if ``fn`` takes lists and returns ``B`` scores;
            ``False`` if it takes one ``(prompt, completion, **kw)`` and
            returns one float.
        name: name for logs; defaults to ``fn.__name__``.
    """

    def __init__(self, fn: Callable[..., Any], *, batched: bool, name: str | None = None):
        self.fn = fn
        self.batched = batched
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.dense = bool(getattr(fn, "dense", False))
        self._accepts = _accepted_keywords(fn)

    def _keywords(self, kw: dict[str, Any]) -> dict[str, Any]:
        # Columns the function does not name (and no **kwargs to catch them) are not passed,
        # so `lambda prompt, completion: ...` works on data sets with extra columns.
        if self._accepts is None:
            return kw
        return {k: v for k, v in kw.items() if k in self._accepts}

    def score(self, prompts, completions, *, references=None, **columns):
        if self.batched:
            return self.fn(prompts, completions, **self._keywords({"references": references, **columns}))
        return self.score_samples(prompts, completions, references=references, columns=columns)[0]

    def score_samples(self, prompts, completions, *, references=None, columns=None, on_error="raise", penalty=0.0):
        """Call a per-sample ``fn`` on each sample.

        Returns:
            ``((B,) float32 scores, (B,) bool failed)``; with
            ``on_error="penalty"`` a sample whose call raises or returns a
            non-number scores ``penalty`` and is marked failed.

        Raises:
            RewardError: (``on_error="raise"``) naming the reward and the sample.
        """
        columns = columns or {}
        out = np.empty(len(completions), dtype=np.float32)
        failed = np.zeros(len(completions), dtype=bool)
        for i, (p, c) in enumerate(zip(prompts, completions)):
            kw = {k: v[i] for k, v in columns.items()}
            if references is not None:
                kw["references"] = references[i]
            try:
                out[i] = _as_float(self.fn(p, c, **self._keywords(kw)), self.name, i)
            except Exception as exc:  # noqa: BLE001 - re-raised naming the sample, or penalised
                if on_error == "penalty":
                    out[i], failed[i] = penalty, True
                    continue
                if isinstance(exc, RewardError):
                    raise
                raise RewardError.at(i, f"reward {self.name!r} raised {type(exc).__name__} on ",
                                     f" (completion {str(c)[:80]!r}): {exc}") from exc
        return out, failed


def _accepted_keywords(fn: Callable[..., Any]) -> set[str] | None:
    """Keyword names ``fn`` accepts besides its first two parameters; ``None`` if it takes ``**kwargs``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _as_float(value: Any, name: str, index: int) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise RewardError.at(index, f"reward {name!r} returned {type(value).__name__} for ",
                             "; a per-sample reward must return one number") from exc


def _declared_batched(fn: Callable[..., Any]) -> bool:
    """Whether a plain callable is batched: its ``batched`` attribute, else its parameter names.

    ``(prompts, completions, ...)`` is batched; any other names are per-sample.  Annotations are
    not read: a first parameter annotated as a list or sequence under other names is ambiguous.

    Raises:
        TypeError: the ambiguous case (the message says how to declare it).
    """
    if getattr(fn, "batched", None) is not None:
        return bool(fn.batched)
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:2]]
    if names == ["prompts", "completions"]:
        return True
    ann = str(params[0].annotation).lower() if params and params[0].annotation is not inspect.Parameter.empty else ""
    if "list" in ann or "sequence" in ann:
        name = getattr(fn, "__name__", type(fn).__name__)
        raise TypeError(
            f"reward {name!r}: its first parameter {params[0].name!r} is annotated {params[0].annotation!r} but "
            "the parameters are not named (prompts, completions): say whether it is batched with "
            "as_reward_function(fn, batched=True) (or False), fn.batched = True, or name them (prompts, completions)"
        )
    return False


def as_reward_function(
    reward: RewardFunction | Callable[..., Any] | str, *, batched: bool | None = None, **kwargs: Any
) -> RewardFunction:
    """Resolve ``reward`` to a :class:`RewardFunction`.

    Args:
        reward: a registered reward name (``"bleu"``), a :class:`RewardFunction`,
            or any callable (batched or per-sample; see the module docstring).
        batched: force the calling convention of a plain callable.
        **kwargs: constructor arguments when ``reward`` is a name.

    Raises:
        KeyError: unknown name (the message lists close matches).
        TypeError: ``reward`` is neither a name nor callable.
    """
    if isinstance(reward, str):
        return make(reward, **kwargs)
    if kwargs:
        raise TypeError("reward keyword arguments are only used with a reward name")
    if isinstance(reward, RewardFunction):
        return reward
    if not callable(reward):
        raise TypeError(
            f"reward must be a registered name, a RewardFunction or a callable, got "
            f"{type(reward).__name__}; see textgym.rewards.list() for names"
        )
    return FunctionReward(reward, batched=_declared_batched(reward) if batched is None else batched)


def _check_output(out: Any, b: int, name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(scores (b,) float32, components)`` from a reward's return value (finite or not).

    Raises:
        RewardError: not ``b`` numbers, a malformed ``(scores, components)`` tuple, or a
            component of the wrong size.
    """
    components: dict[str, np.ndarray] = {}
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[1], Mapping):
            raise RewardError(f"reward {name!r} returned a tuple; expected (scores, components: dict of arrays)")
        out, comps = out
        for k, v in comps.items():
            try:
                arr = np.asarray(v, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise RewardError(f"reward {name!r}: component {k!r} is not numbers") from exc
            if arr.size != b:
                raise RewardError(
                    f"reward {name!r}: component {k!r} has shape {arr.shape} for {b} completions; expected ({b},)"
                )
            components[k] = arr.reshape(b)
    try:
        scores = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise RewardError(f"reward {name!r} returned {type(out).__name__}, expected {b} numbers") from exc
    if scores.shape != (b,):
        if scores.size != b:
            raise RewardError(f"reward {name!r} returned shape {scores.shape} for {b} completions; expected ({b},)")
        scores = scores.reshape(b)
    return scores, components


def call_reward(
    reward_fn: RewardFunction,
    prompts: Sequence[str],
    completions: Sequence[str],
    *,
    references: Sequence[Sequence[str]] | None = None,
    columns: Mapping[str, Sequence[Any]] | None = None,
    on_error: str = "raise",
    penalty: float = 0.0,
    sample_labels: Sequence[str] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Call ``reward_fn`` and validate what it returns.

    Args:
        reward_fn: the reward function.
        prompts, completions: ``B`` strings each.
        references: ``B`` lists of references or ``None``.
        columns: extra columns, each of length ``B``.
        on_error: ``"raise"`` (default) or ``"penalty"``: replace non-finite
            scores, a raising reward, or an output of the wrong shape or type
            with ``penalty`` and report it in the components under
            ``"reward_error"`` (1.0 where replaced).  A raising or misshapen
            batched reward penalises the whole batch; a wrapped per-sample
            function only the samples whose call failed.
        penalty: the score used with ``on_error="penalty"``.
        sample_labels: how errors name each of the ``B`` samples (e.g. ``"env row 3 (sample 17)"``);
            default ``"sample i"``, its position in this batch.

    Returns:
        ``(scores, components)``: ``(B,)`` float32 finite scores and a dict of
        ``(B,)`` float32 arrays.

    Raises:
        RewardError: (with ``on_error="raise"``) a raising reward, wrong shape,
            non-numeric or non-finite output, or components of the wrong shape,
            naming the reward and the first bad sample; (always) prompts,
            references or a column whose length differs from the completions'.
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"penalty"``.
    """
    if on_error not in ("raise", "penalty"):
        raise ValueError(f"on_error must be 'raise' or 'penalty', got {on_error!r}")
    b = len(completions)
    name = getattr(reward_fn, "name", type(reward_fn).__name__)
    if len(prompts) != b:
        raise RewardError(f"reward {name!r} got {len(prompts)} prompts for {b} completions; pass one prompt each")
    refs = None
    if references is not None:
        # a bare string is one reference, not a list of characters
        refs = [[r] if isinstance(r, str) else list(r or []) for r in references]
        if len(refs) != b:
            raise RewardError(f"reward {name!r} got {len(refs)} reference lists for {b} completions")
    cols = {k: list(v) for k, v in (columns or {}).items()}
    for k, v in cols.items():
        if len(v) != b:
            raise RewardError(f"reward {name!r}: column {k!r} has {len(v)} rows for {b} completions")
    failed = None
    try:
        if on_error == "penalty" and isinstance(reward_fn, FunctionReward) and not reward_fn.batched:
            # per-sample function: penalise only the samples that fail
            out, failed = reward_fn.score_samples(
                list(prompts), list(completions), references=refs, columns=cols, on_error="penalty", penalty=penalty
            )
        else:
            out = reward_fn(list(prompts), list(completions), references=refs, **cols)
    except Exception as exc:  # noqa: BLE001 - re-raised with context or turned into a penalty
        if on_error == "penalty":
            return np.full(b, penalty, np.float32), {"reward_error": np.ones(b, np.float32)}
        if isinstance(exc, RewardError):
            if sample_labels is not None and exc.index is not None and 0 <= exc.index < b:
                raise exc.relabel(sample_labels[exc.index]) from exc.__cause__
            raise
        raise RewardError(f"reward {name!r} raised {type(exc).__name__}: {exc}") from exc
    try:
        scores, components = _check_output(out, b, name)
    except RewardError:
        if on_error == "penalty":  # wrong shape / type: no score of the batch can be trusted
            return np.full(b, penalty, np.float32), {"reward_error": np.ones(b, np.float32)}
        raise
    if failed is not None and failed.any():
        components["reward_error"] = failed.astype(np.float32)
    bad = ~np.isfinite(scores)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if on_error != "penalty":
            err = RewardError.at(i, f"reward {name!r} returned {scores[i]} for ",
                                 f" (completion {completions[i][:80]!r}); rewards must be finite. "
                                 "Fix the reward, or pass on_error='penalty' to score such samples with a penalty.")
            raise err.relabel(sample_labels[i]) if sample_labels is not None else err
        scores = np.where(bad, np.float32(penalty), scores).astype(np.float32)
        components["reward_error"] = np.maximum(components.get("reward_error", 0.0), bad).astype(np.float32)
    return scores, components


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., RewardFunction]] = {}


def _definition(obj: Any) -> tuple[Any, ...]:
    """Where ``obj`` was defined (module, qualified name; a partial's arguments too): equal across re-imports."""
    if isinstance(obj, functools.partial):
        return (*_definition(obj.func), obj.args, tuple(sorted(obj.keywords.items())))
    return (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None) or id(obj))


def register(name: str, factory: Callable[..., Any] | None = None):
    """Register a reward under ``name``; usable as ``@register("name")``.

    ``factory`` is a :class:`RewardFunction` subclass or any callable returning
    a reward function (or being one: a plain function is wrapped on ``make``).

    Registering the same definition again (a module re-imported, e.g. by
    ``importlib.reload``) replaces the entry.

    Raises:
        ValueError: ``name`` is already registered to a different factory.
    """

    return register_in(_REGISTRY, "reward", name, factory, same=lambda old, new: _definition(old) == _definition(new))


def make(name: str, **kwargs: Any) -> RewardFunction:
    """Build the reward registered as ``name`` with ``kwargs``.

    Raises:
        KeyError: unknown name; the message suggests close matches.
    """
    obj = look_up(_REGISTRY, "reward", name)
    if isinstance(obj, type) and issubclass(obj, RewardFunction):
        return obj(**kwargs)
    if isinstance(obj, RewardFunction):
        if kwargs:
            raise TypeError(f"reward {name!r} is a registered instance and takes no arguments, got {sorted(kwargs)}")
        return obj
    made = obj(**kwargs) if kwargs or _is_factory(obj) else obj
    return as_reward_function(made)


def _is_factory(obj: Callable[..., Any]) -> bool:
    # A factory can be called with no arguments (every parameter optional, e.g. a
    # functools.partial of a reward class); a reward function needs (prompt(s), completion(s)).
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def list_rewards() -> list[str]:
    """Sorted names of all registered rewards."""
    return sorted(_REGISTRY)
