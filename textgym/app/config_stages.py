"""The stage sections of a run config: the algorithm and its ``algo`` block, ``sft`` and ``reward_model``.

Each section is mapped onto its trainer's own config class (the registered algorithm's
``Config``, :class:`textgym.agents.SFTConfig`, :class:`textgym.agents.RewardModelConfig`)
with :func:`~textgym.app.config_coerce.build_dataclass`, and its data source is checked
(the files exist and have the needed columns, the splits exist and do not overlap).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textgym.app.config_checks import check_model, is_conversation_env
from textgym.app.config_coerce import build_dataclass, coerce
from textgym.app.config_feedback import same_project
from textgym.app.config_errors import ConfigError, check_choice, suggest
from textgym.app.config_schema import (
    DEFAULT_RM_BACKBONE,
    NO_RL,
    PreferenceStageConfig,
    RewardModelDataConfig,
    RewardModelStageConfig,
    RunConfig,
    SFTDataConfig,
    SFTStageConfig,
    TrainSettings,
)

__all__ = ["PIPELINE_ALGO_FIELDS", "FEEDBACK_SPLITS", "resolve_algorithm", "parse_algo", "parse_sft",
           "parse_reward_model", "parse_preference"]

#: Algorithm config fields the pipeline sets itself (and where the user sets them instead).
PIPELINE_ALGO_FIELDS = {"run_dir": "the run folder is <runs_dir>/<name>: set `name` or --runs-dir",
                        "save_every": "set `train.save_every`"}

#: The splits of a human-feedback project's exports (80/10/10 by a hash of the item id; ``all``: every row).
FEEDBACK_SPLITS = ("train", "validation", "test", "all")


def resolve_algorithm(value: Any, given: bool, train: TrainSettings, has_stage: bool) -> str:
    """The ``algorithm`` name: given (lower-cased), ``null`` -> :data:`NO_RL`, omitted -> ``"ppo"``
    (or :data:`NO_RL` for a config with an sft / reward_model stage and no training length)."""
    if value is None:
        if given:
            return NO_RL
        has_length = train.iterations is not None or train.total_timesteps is not None
        return NO_RL if has_stage and not has_length else "ppo"
    return coerce(str, value, "algorithm").strip().lower()


def parse_algo(algorithm: str, algo_raw: Any, seed: int) -> Any:
    """The ``algo`` section as the registered algorithm's config class (``seed`` defaults to the run's)."""
    from textgym.agents.algorithms import registry

    check_choice(algorithm, [*registry.list_algorithms(), NO_RL], "algorithm", "algorithm",
                  f"see `textgym list algorithms`; {NO_RL}: no RL")
    try:
        algo_cls = registry.get_config_class(algorithm)
    except registry.MissingExtra as e:
        raise ConfigError(str(e), "algorithm") from None
    algo_raw = dict(algo_raw or {}) if isinstance(algo_raw, Mapping) or algo_raw is None else algo_raw
    if isinstance(algo_raw, dict):
        for key, why in PIPELINE_ALGO_FIELDS.items():
            if key in algo_raw:
                raise ConfigError(f"do not set {key!r} here: {why}", f"algo.{key}")
        algo_raw.setdefault("seed", seed)
    return build_dataclass(algo_cls, algo_raw, "algo", label=f"{algo_cls.__name__} of {algorithm!r}")


def parse_sft(sft_raw: Any, cfg: RunConfig) -> SFTStageConfig:
    """The ``sft`` section: one data source (task, file or feedback project) and its ``SFTConfig``."""
    from textgym.agents.trainers.sft import SFTConfig

    if not isinstance(sft_raw, Mapping):
        raise ConfigError(f"expected a mapping with `data` and `config`, got {sft_raw!r}", "sft")
    unknown = set(sft_raw) - {"data", "config"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown key {key!r} in sft.{suggest(key, ['data', 'config'])} Valid keys: data, config",
                          f"sft.{key}")
    data = build_dataclass(SFTDataConfig, sft_raw.get("data") or {}, "sft.data")
    if sum(x is not None for x in (data.task, data.path, data.feedback)) > 1:
        raise ConfigError("give one of sft.data.task, sft.data.path or sft.data.feedback", "sft.data")
    if data.feedback is not None:
        if cfg.feedback is not None and same_project(data.feedback, cfg.feedback.project):
            raise ConfigError("the sft stage runs before the feedback stage collects this project's edits: train SFT "
                              "on another source, or on the project in a later run", "sft.data.feedback")
        if not Path(data.feedback).expanduser().is_file():
            raise ConfigError(f"no such feedback project: {data.feedback!r} (create it with `textgym feedback new`)",
                              "sft.data.feedback")
        check_choice(data.split, FEEDBACK_SPLITS, "split", "sft.data.split", "a feedback project's splits")
    elif data.path is not None:
        if not Path(data.path).expanduser().is_file():
            raise ConfigError(f"no such file: {data.path!r}", "sft.data.path")
    else:
        data.task = data.task or cfg.env.id
        import textgym

        check_choice(data.task, textgym.list_envs(), "env", "sft.data.task", "see `textgym list envs`")
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


def parse_reward_model(rm_raw: Any, cfg: RunConfig) -> RewardModelStageConfig:
    """The ``reward_model`` section: data source and splits, backbone, trainer config, reward conflicts.

    Raises:
        ConfigError: see :func:`textgym.app.config.parse_config` (keys under ``reward_model``).
    """
    from textgym.agents.trainers.reward_model import RewardModelConfig

    if not isinstance(rm_raw, Mapping):
        raise ConfigError(f"expected a mapping with `data`, `model`, `config`, `use_as_reward`, got {rm_raw!r}",
                          "reward_model")
    stage = _pair_stage(RewardModelStageConfig, RewardModelConfig, rm_raw, cfg, "reward_model")
    check_model(stage.model, "reward_model.model", extra=[DEFAULT_RM_BACKBONE])
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


def parse_preference(raw: Any, cfg: RunConfig) -> PreferenceStageConfig:
    """The ``preference`` section: data source and splits, and the DPO / IPO / KTO trainer config.

    Raises:
        ConfigError: keys under ``preference``.
    """
    from textgym.agents.trainers.preference import PreferenceConfig

    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping with `data` and `config`, got {raw!r}", "preference")
    return _pair_stage(PreferenceStageConfig, PreferenceConfig, raw, cfg, "preference")


def _pair_stage(stage_cls: type, config_cls: type, raw: Mapping[str, Any], cfg: RunConfig, section: str) -> Any:
    """A stage trained on preference pairs: its section (without ``config``), its trainer config (seeded with the
    run's seed unless given, checked) and its data (:func:`_check_preference_data`)."""
    stage = build_dataclass(stage_cls, {k: v for k, v in raw.items() if k != "config"}, section,
                            label=f"{section} stage")
    conf_raw = raw.get("config") or {}
    if isinstance(conf_raw, Mapping):
        conf_raw = {"seed": cfg.seed, **conf_raw}
    stage.config = build_dataclass(config_cls, conf_raw, f"{section}.config")
    try:
        stage.config.check()
    except ValueError as exc:
        raise ConfigError(str(exc), f"{section}.config") from None
    loop_project = cfg.feedback.project if cfg.feedback is not None else None
    _check_preference_data(stage.data, stage.config, section, loop_project)
    return stage


def _check_preference_data(data: RewardModelDataConfig, conf: Any, section: str = "reward_model",
                           loop_project: str | None = None) -> None:
    """Check ``<section>.data``: one source, its pair columns, splits, row limits.

    ``dataset`` is replaced by the set's canonical name; ``loop_project`` (the run's ``feedback.project``)
    need not exist yet: the feedback stage creates it.
    """
    from textgym.envs import datasets

    where = f"{section}.data"
    if sum(x is not None for x in (data.path, data.dataset, data.feedback)) != 1:
        raise ConfigError(f"give one of {where}.path (a JSON Lines file of prompt / chosen / rejected "
                          f"rows), {where}.dataset (e.g. hh-rlhf-harmless) or {where}.feedback "
                          "(a `textgym feedback` project)", where)
    needed = [conf.prompt_key, conf.chosen_key, conf.rejected_key]
    if data.feedback is not None:
        if not same_project(data.feedback, loop_project) and not Path(data.feedback).expanduser().is_file():
            raise ConfigError(f"no such feedback project: {data.feedback!r} (create it with `textgym feedback new`, "
                              "or add a `feedback:` section that creates it)", f"{where}.feedback")
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
        raise ConfigError(f"the preference pairs need the column(s) {missing} ({section}.config prompt_key / "
                          f"chosen_key / rejected_key); this data has {columns}", key)
    check_choice(data.split, splits, "split", f"{where}.split", "the data's splits")
    if data.eval_split is not None:
        check_choice(data.eval_split, splits, "split", f"{where}.eval_split", "the data's splits; null: none")
        if data.eval_split == data.split or "all" in (data.split, data.eval_split):
            raise ConfigError(f"the held-out pairs ({data.eval_split!r}) overlap the training pairs ({data.split!r}): "
                              "pick another split, or null for no held-out evaluation", f"{where}.eval_split")
