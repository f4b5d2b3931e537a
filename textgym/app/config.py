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
    feedback: {project: runs/fb.db, generate: {prompts: 400}, simulate: {annotators: 3, rater: sentiment}}
                                                  # optional: the RLHF loop's collection (textgym.app.config_feedback)
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

Type rules (:mod:`textgym.app.config_coerce`): a YAML int is accepted where a float is
expected; a numeric string (``1e-5``, which YAML 1.1 reads as a string) is accepted for
int/float fields; anything else of the wrong type (``learning_rate: fast``, a bool for a
number) is an error.  NaN is never accepted.

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

The parts live in one module each, all re-exported here: the error and its wording
(:mod:`~textgym.app.config_errors`), the schema dataclasses (:mod:`~textgym.app.config_schema`),
YAML value -> field conversion (:mod:`~textgym.app.config_coerce`), registry checks
(:mod:`~textgym.app.config_checks`), the stage sections (:mod:`~textgym.app.config_stages`)
and the ``--set`` grammar (:mod:`~textgym.app.overrides`).  This module reads, validates
and writes the whole config.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textgym.app.config_checks import (
    PIPELINE_ENV_KWARGS,
    build_reward,
    check_env,
    check_model,
    check_reward_spec,
    is_conversation_env,
    reward_names,
)
from textgym.app.config_coerce import build_dataclass
from textgym.app.config_errors import ConfigError
from textgym.app.config_schema import (
    DEFAULT_RM_BACKBONE,
    ENV_KWARG_RULES,
    NO_RL,
    EnvConfig,
    EvalEnvConfig,
    EvalSettings,
    PerplexityConfig,
    PreferenceStageConfig,
    RewardModelDataConfig,
    RewardModelStageConfig,
    RunConfig,
    SFTDataConfig,
    SFTStageConfig,
    TrainSettings,
    check_env_kwargs,
    check_samples,
)
from textgym.app.config_stages import (
    FEEDBACK_SPLITS,
    PIPELINE_ALGO_FIELDS,
    parse_algo,
    parse_preference,
    parse_reward_model,
    parse_sft,
    resolve_algorithm,
)
from textgym.app.overrides import apply_overrides, parse_overrides

__all__ = [
    "ConfigError", "RunConfig", "EnvConfig", "EvalEnvConfig", "SFTDataConfig", "SFTStageConfig",
    "RewardModelDataConfig", "RewardModelStageConfig", "PreferenceStageConfig", "NO_RL", "TrainSettings",
    "EvalSettings", "PerplexityConfig", "load_config", "parse_config", "parse_overrides", "apply_overrides",
    "config_to_dict", "dump_config", "eval_env_kwargs", "build_reward", "reward_names", "build_dataclass",
    "check_reward_spec", "is_conversation_env",
    # also importable from here, as before the split (defined beside the code that uses them)
    "DEFAULT_RM_BACKBONE", "FEEDBACK_SPLITS", "PIPELINE_ALGO_FIELDS", "PIPELINE_ENV_KWARGS", "ENV_KWARG_RULES",
    "check_env_kwargs", "check_samples",
]  # fmt: skip


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
    pref_raw, fb_raw = raw.pop("preference", None), raw.pop("feedback", None)
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
    has_stage = sft_raw is not None or rm_raw is not None or pref_raw is not None or fb_raw is not None
    cfg.algorithm = resolve_algorithm(algorithm_raw, algorithm_given, cfg.train, has_stage)
    if cfg.algorithm == NO_RL:
        if algo_raw:
            raise ConfigError(f"algorithm {NO_RL!r} runs no RL: remove the algo section (or set an algorithm, "
                              "e.g. ppo)", "algo")
        cfg.algo = None
    else:
        cfg.algo = parse_algo(cfg.algorithm, algo_raw, cfg.seed)

    # 3. the model and the envs
    check_model(cfg.model)
    if not cfg.env.id:
        raise ConfigError("the training env needs an id (e.g. textgym/IMDB-v0; see `textgym list envs`)", "env.id")
    check_env(cfg.env.id, cfg.env.kwargs, "env")
    cfg.eval_env = EvalEnvConfig(
        id=cfg.eval_env.id or cfg.env.id,
        num_envs=cfg.eval_env.num_envs or max(1, min(cfg.env.num_envs, cfg.eval.n_episodes)),
        kwargs=eval_env_kwargs(cfg.env, cfg.eval_env))
    check_env(cfg.eval_env.id, cfg.eval_env.kwargs, "eval_env")

    # 4. the feedback, SFT, preference and reward-model stages
    if fb_raw is not None:
        from textgym.app.config_feedback import parse_feedback

        cfg.feedback = parse_feedback(fb_raw, check_model)
        rm_raw, pref_raw = (_default_feedback_source(r, cfg.feedback.project) for r in (rm_raw, pref_raw))
    if sft_raw is not None:
        cfg.sft = parse_sft(sft_raw, cfg)
    if rm_raw is not None:
        cfg.reward_model = parse_reward_model(rm_raw, cfg)
    if pref_raw is not None:
        cfg.preference = parse_preference(pref_raw, cfg)

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
            raise ConfigError(f"algorithm {NO_RL!r} without an sft, preference or reward_model stage trains nothing; add one, "
                              "or evaluate a model with `textgym eval MODEL --env ID`", "algorithm")
    elif (t.iterations is None) == (t.total_timesteps is None):
        hint = f" (or algorithm: {NO_RL} for a run of the sft / reward_model stages only)" if has_stage else ""
        raise ConfigError(f"give exactly one of train.iterations or train.total_timesteps{hint}", "train")
    e = cfg.eval
    e.every = e.every or None
    e.seed = cfg.seed + 1 if e.seed is None else e.seed
    _check_report_to(cfg)
    return cfg


def _default_feedback_source(section: Any, project: str) -> Any:
    """A ``reward_model`` / ``preference`` section whose ``data`` names no source reads the loop's project."""
    if not isinstance(section, Mapping):
        return section
    data = section.get("data")
    if data is None or (isinstance(data, Mapping) and not any(data.get(k) for k in ("path", "dataset", "feedback"))):
        return {**section, "data": {**dict(data or {}), "feedback": project}}
    return section


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
