"""The settings of a comparison (:class:`CompareConfig`) and of each of its runs (:func:`algorithm_config`).

The protocol they describe is in :mod:`textgym.app.compare`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CompareConfig", "algorithm_config", "config_class", "check_algorithms", "check_envs", "jsonable",
           "HARNESS_FIELDS", "ALGO_DEFAULTS",
           "NOT_PROTOCOL"]

#: Algorithm config fields the harness sets itself, and why.
HARNESS_FIELDS = {"seed": "seeds come from `seeds` (the same for every algorithm)",
                  "run_dir": "each run logs to <out>/<label>/seed<s>/train",
                  "save_every": "the harness checkpoints after each evaluation"}
#: Defaults the harness gives algorithm configs that have these fields (overridable).
ALGO_DEFAULTS = {"progress_bar": False, "tensorboard": False, "progress": False}
#: Algorithm config fields that may change between a run and its resume (where and how it logs).
NOT_PROTOCOL = ("run_dir", "progress_bar", "tensorboard", "log_samples", "device", "progress")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]*$")


@dataclass
class CompareConfig:
    """Settings of a comparison (see the module docstring for the protocol).

    Attributes:
        env_id: the Gymnasium id of the task (``textgym.list_envs()``).
        algos: ``["ppo", "grpo", ...]`` (``textgym.agents.algorithms.registry`` names, or ``dpo`` / ``ipo``:
            offline preference optimization on ``pairs``, :mod:`textgym.app.compare_pairs`) or ``"label:name"``
            entries; a comma-separated string is split.
        model: the policy's starting model (``textgym.models.load`` name or path).
        seeds: a number of seeds ``n`` (``0..n-1``) or a list of seeds.
        budget: generated tokens per run (``num_timesteps``), ``>= 1``.
        eval_every: generated tokens between evaluations (default ``max(1, budget // 10)``).
        eval_episodes: episodes per evaluation.
        eval_seed: seed of the eval env reset and of the evaluation sampling, the same every time.
        num_envs: episodes per rollout batch (the training env's ``num_envs``).
        env_kwargs: keyword arguments of the training env (``gym.make_vec(env_id, **env_kwargs)``);
            a ``reward`` may be a spec as in run configs (``{name: ..., ...}``).
        eval_env_kwargs: applied on top of ``env_kwargs`` for the eval env (default ``{"split": "test"}``).
        eval_kwargs: extra keyword arguments of ``algo.evaluate`` (e.g. ``{"greedy": True}``).
        algo_overrides: ``{label or "*": {config field: value}}``.
        out_dir: the run folder (default ``runs/compare-<env name>``).
        confidence: level of the bootstrap CIs in the table and curves.
        imports: your own modules to import first (e.g. one that registers a reward with
            ``@textgym.rewards.register``): module names or ``.py`` paths, looked for as in a run
            config's ``imports:`` (:mod:`textgym.app.imports`: next to the ``--config`` file, then in
            the working directory, then among installed modules).  Files found are kept as absolute
            paths, so ``compare_config.yaml`` re-imports them on ``--resume`` from any directory.
        pairs: the preference pairs of ``dpo`` / ``ipo`` cells: ``{dataset | path | feedback: ..., split, max_rows}``
            or ``{from_task: true, split, max_rows}`` (:mod:`textgym.app.compare_pairs`).

    Raises:
        ValueError: an invalid setting (the message says which and how to fix it).
    """

    env_id: str = "textgym/TokenCount-v0"
    algos: list[str] = field(default_factory=lambda: ["ppo"])
    model: str = "tiny-char"
    seeds: int | list[int] = 3
    budget: int = 20_000
    eval_every: int | None = None
    eval_episodes: int = 64
    eval_seed: int = 12_345
    num_envs: int = 16
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_env_kwargs: dict[str, Any] = field(default_factory=lambda: {"split": "test"})
    eval_kwargs: dict[str, Any] = field(default_factory=dict)
    algo_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    out_dir: str | None = None
    confidence: float = 0.95
    imports: list[str] = field(default_factory=list)
    pairs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.import_modules()
        if isinstance(self.algos, str):
            self.algos = [a.strip() for a in self.algos.split(",") if a.strip()]
        self.algos = list(self.algos)
        if not isinstance(self.seeds, int):
            self.seeds = [int(s) for s in self.seeds]
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` for settings no comparison can use."""
        import gymnasium as gym

        if self.env_id not in gym.registry:
            import difflib

            close = difflib.get_close_matches(self.env_id, list(gym.registry), n=1)
            raise ValueError(f"unknown env id {self.env_id!r}." + (f" Did you mean {close[0]!r}?" if close else "")
                             + " See `textgym list`.")
        if not self.algos:
            raise ValueError("algos is empty: name at least one algorithm (e.g. algos=['ppo', 'grpo'])")
        labels = [label for label, _ in self.runs()]
        if len(set(labels)) != len(labels):
            raise ValueError(f"algorithm labels must be unique, got {labels}; label repeats as 'ppo-b:ppo'")
        for name, value, low in (("budget", self.budget, 1), ("eval_episodes", self.eval_episodes, 1),
                                 ("num_envs", self.num_envs, 1), ("eval_every", self.eval_every, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        seeds = self.seed_list()
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be a count >= 1 or a list of distinct integers, got {self.seeds!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        for name in ("env_kwargs", "eval_env_kwargs", "eval_kwargs", "algo_overrides", "pairs"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a dict, got {getattr(self, name)!r}")
        for key in ("num_envs", "autoreset_mode"):
            if key in self.env_kwargs or key in self.eval_env_kwargs:
                raise ValueError(f"do not put {key!r} in env_kwargs: the harness sets it (num_envs: the "
                                 "`num_envs` setting; autoreset_mode: 'Disabled', which rollouts need)")
        for label, over in self.algo_overrides.items():
            if label != "*" and label not in labels:
                raise ValueError(f"algo_overrides has {label!r}, which is not an algorithm label of this "
                                 f"comparison ({', '.join(labels)}); use '*' for all of them")
            if not isinstance(over, dict):
                raise ValueError(f"algo_overrides[{label!r}] must be a dict of config fields, got {over!r}")
            for key in over:
                if key in HARNESS_FIELDS:
                    raise ValueError(f"algo_overrides[{label!r}] sets {key!r}, which the harness owns: "
                                     f"{HARNESS_FIELDS[key]}")
        from textgym.app.compare_pairs import PAIR_ALGORITHMS, check_pairs

        check_pairs(self.pairs, [label for label, name in self.runs() if name in PAIR_ALGORITHMS])

    def import_modules(self) -> None:
        """Import :attr:`imports` (before the names they may register are checked); entries found as files
        become absolute paths.

        Raises:
            ValueError: an entry that is no file and no installed module (the message lists where it looked),
                or a module that fails to import for want of another module.
        """
        from textgym.app.imports import import_entry, resolve_imports

        if isinstance(self.imports, str):
            self.imports = [self.imports]
        if not isinstance(self.imports, (list, tuple)) or not all(isinstance(m, str) for m in self.imports):
            raise ValueError(f"imports must be a list of module names or .py paths, got {self.imports!r}")
        try:
            self.imports = resolve_imports(list(self.imports), None)
        except ImportError as exc:
            raise ValueError(f"imports: {exc}") from None
        for module in self.imports:
            try:
                import_entry(module)
            except ImportError as exc:
                raise ValueError(f"imports: cannot import {module!r}: {exc}") from None

    def runs(self) -> list[tuple[str, str]]:
        """``[(label, registry name), ...]`` from :attr:`algos`.

        Raises:
            ValueError: a label that is not a plain folder name.
        """
        out = []
        for entry in self.algos:
            label, _, name = entry.partition(":")
            label, name = label.strip(), (name or label).strip()
            if not _LABEL.match(label):
                raise ValueError(f"algorithm label {label!r} must be letters, digits, '_', '+' or '-' "
                                 "(it names a folder and a --set key)")
            out.append((label, name))
        return out

    def seed_list(self) -> list[int]:
        """The seeds: ``list(range(seeds))`` for a count."""
        if isinstance(self.seeds, int):
            return list(range(self.seeds))
        return list(self.seeds)

    def interval(self) -> int:
        """Generated tokens between evaluations."""
        return self.eval_every if self.eval_every is not None else max(1, self.budget // 10)

    def targets(self) -> list[int]:
        """The evaluation grid ``[0, e, 2e, ..., budget]`` (``e`` = :meth:`interval`)."""
        e = self.interval()
        return list(range(0, self.budget, e)) + [self.budget]

    def output_dir(self) -> Path:
        """:attr:`out_dir`, or ``runs/compare-<env name>``."""
        if self.out_dir:
            return Path(self.out_dir)
        return Path("runs") / f"compare-{self.env_id.split('/')[-1]}"

    def to_dict(self) -> dict[str, Any]:
        """The config as YAML/JSON-safe data (objects in kwargs appear as ``<module.Class>``; no ``pairs`` when
        empty)."""
        data = jsonable(dataclasses.asdict(self))
        if not data["pairs"]:
            del data["pairs"]
        return data


def jsonable(x: Any) -> Any:
    """Plain JSON data; objects become ``"<module.Class>"`` (stable across processes, unlike ``repr``)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if x is None or isinstance(x, (str, bool, int, float)):
        return x
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return f"<{type(x).__module__}.{type(x).__qualname__}>"


def algorithm_config(cfg: CompareConfig, label: str, algorithm: str, seed: int, run_dir: str | os.PathLike) -> Any:
    """The config of run ``(label, seed)``: class defaults, :data:`ALGO_DEFAULTS`, the model's preset
    (:mod:`textgym.app.compare_presets`), ``algo_overrides``, harness fields.

    Raises:
        KeyError: unknown algorithm.
        textgym.app.config.ConfigError: a field the algorithm's config does not have, or a value of the wrong type.
        ValueError: the algorithm's config has no ``seed`` field (it cannot be compared fairly).
    """
    from textgym.app.config import build_dataclass

    cls = config_class(algorithm)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    if "seed" not in names:
        raise ValueError(f"{algorithm}'s config ({cls.__name__}) has no `seed` field: the harness cannot seed it")
    data = {k: v for k, v in ALGO_DEFAULTS.items() if k in names}
    from textgym.app.compare_presets import preset_for

    data.update(preset_for(cfg.model, names - set(getattr(cls, "preset_exempt", ()))))  # a random-init tiny model: settings that learn (documented there)
    data.update({k: v for k, v in cfg.algo_overrides.get("*", {}).items() if k in names})
    data.update(cfg.algo_overrides.get(label, {}))
    data["seed"] = seed
    if cls.__name__ == "PreferenceConfig":  # a pair cell: the name is the loss; the harness builds no LoRA
        given = cfg.algo_overrides.get(label, {}).get("loss_type", algorithm)
        if given != algorithm:
            raise ValueError(f"algo_overrides[{label!r}] sets loss_type {given!r}, but the algorithm name "
                             f"{algorithm!r} is the loss; use {given}" + (f" ({label}:{given})" if label != algorithm
                                                                          else ""))
        data["loss_type"] = algorithm
    if "run_dir" in names:
        data["run_dir"] = str(Path(run_dir) / "train")
    if "save_every" in names:
        data["save_every"] = None
    conf = build_dataclass(cls, data, f"algo_overrides.{label}", label=f"{algorithm} config")
    if cls.__name__ == "PreferenceConfig":
        conf.check()
        if conf.lora:
            raise ValueError(f"{label}: lora is not supported for {algorithm} cells in textgym compare (the trained "
                             "model is evaluated in place); remove lora from its overrides")
    return conf


def config_class(algorithm: str) -> type:
    """The config class of a compare algorithm name (a registry name, or ``dpo`` / ``ipo``: ``PreferenceConfig``).

    Raises:
        KeyError: unknown algorithm.
    """
    from textgym.app.compare_pairs import PAIR_ALGORITHMS

    if algorithm in PAIR_ALGORITHMS:
        from textgym.agents.trainers.preference import PreferenceConfig

        return PreferenceConfig
    from textgym.agents.algorithms.registry import get_config_class

    return get_config_class(algorithm)


def check_algorithms(cfg: CompareConfig, out: Path) -> None:
    """Build every label's config once (seed 0) so unknown names and bad overrides fail before any work."""
    known: set[str] = set()
    for label, name in cfg.runs():
        known |= {f.name for f in dataclasses.fields(config_class(name))}
        algorithm_config(cfg, label, name, 0, out / label / "seed0")
    unknown = sorted(set(cfg.algo_overrides.get("*", {})) - known)
    if unknown:
        raise ValueError(f"algo_overrides['*'] sets {unknown}, a field of none of the algorithms' configs")


def check_envs(cfg: CompareConfig) -> None:
    """Check the training and eval envs' arguments and reward names as a run config's are checked
    (:func:`textgym.app.config_checks.check_env`), so a typo fails before anything is written.

    Raises:
        textgym.app.config.ConfigError: at ``env.<kwarg>`` / ``eval_env.<kwarg>`` (the ``--set`` keys).
    """
    from collections.abc import Mapping

    from textgym.app.config_checks import check_env
    from textgym.app.config_errors import ConfigError

    def checkable(kwargs: dict[str, Any]) -> dict[str, Any]:  # objects (a tokenizer, a reward instance) pass
        out = {k: v for k, v in kwargs.items() if k != "tokenizer"}
        if "reward" in out and not isinstance(out["reward"], (str, Mapping)):
            del out["reward"]
        return out

    for where, kwargs in (("env", cfg.env_kwargs), ("eval_env", {**cfg.env_kwargs, **cfg.eval_env_kwargs})):
        try:
            check_env(cfg.env_id, checkable(kwargs), where)
        except ConfigError as exc:
            key = exc.key.replace(f"{where}.kwargs.", f"{where}.", 1) if exc.key else exc.key
            raise ConfigError(exc.detail, key) from None
