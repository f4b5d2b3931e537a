"""Comparing RL algorithms fairly on one textgym task: :func:`compare` and ``textgym compare``.

Example::

    from textgym.app.compare import compare

    result = compare(env_id="textgym/TokenCount-v0", model="tiny-char", algos=["ppo", "grpo"],
                     seeds=3, budget=20_000, algo_overrides={"*": {"learning_rate": 2e-3}})
    print(result)                      # the table; every file is in result.out_dir

    textgym compare --env textgym/TokenCount-v0 --algos ppo,grpo --seeds 3 --budget 20000 \\
        --set 'algo.*.learning_rate=2e-3' --out runs/compare-tokencount

Protocol (what makes the comparison fair)
-----------------------------------------
* **Same task and budget**: every algorithm trains on ``gym.make_vec(env_id,
  num_envs, **env_kwargs)`` (the model's tokenizer unless ``env_kwargs`` names
  one) for the same budget of *generated tokens* (``num_timesteps``), from the
  same ``model``.
* **Same seeds**: run ``(algorithm, s)`` sets the algorithm config's ``seed = s``
  (which seeds Python / NumPy / torch, the sampling generator, a tiny preset's
  random init, and the training env's first ``reset(seed=s)``).  Seeds are
  ``0..n-1`` for ``seeds=n``, or the given list.
* **Same evaluation**: on a held-out env built with ``env_kwargs`` updated by
  ``eval_env_kwargs`` (default ``{"split": "test"}``), shared by all runs.  Before
  every evaluation it is reset with the fixed ``eval_seed``, and
  ``algo.evaluate(eval_env, eval_episodes, seed=eval_seed, **eval_kwargs)`` is
  called, so every algorithm and every evaluation sees the same prompts and the
  same sampling noise stream.
* **Same grid**: evaluations at token 0 (before training) and after each chunk of
  training to the next multiple of ``eval_every`` (default ``budget // 10``), up
  to the budget.  Training runs in chunks of ``learn(total_timesteps=...)``; an
  update always finishes, so a point is logged at the actual ``num_timesteps``
  (a bit past its grid target ``target_tokens``).  A chunk that overshoots several
  grid targets gives one point, at the largest target it passed.
* **Overrides are explicit**: algorithm settings are the config class defaults,
  then ``algo_overrides["*"]`` (fields an algorithm's config lacks are skipped
  for it), then ``algo_overrides[label]``; all are written to the report.  The
  harness owns ``seed``, ``run_dir`` and ``save_every``.  One algorithm may appear
  under several labels (``"ppo-fast:ppo"`` is PPO labelled ``ppo-fast``).

Outputs (in ``out_dir``, default ``runs/compare-<env name>``)
-------------------------------------------------------------
``points.csv`` (every evaluation: algo, seed, target_tokens, tokens,
wall_time_s, score_mean, kl_ref, ...), ``table.csv`` + ``table.md`` (per
algorithm: final score mean with a 95% bootstrap CI over seeds, IQM, KL to the
reference, training time, tokens/s), ``curves.png`` (mean score over seeds with
CI bands vs generated tokens), ``report.md`` (config, protocol, table, curves,
per-seed finals) and ``compare_config.yaml`` (the resolved config; pass it back
with ``--config``).  Per run, ``<label>/seed<s>/``: ``run.json`` (its settings
and points), ``checkpoint/`` (the latest ``algo.save``) and ``train/`` (the
algorithm's own logs).  See :mod:`textgym.app.compare_report` for the units.

Resume
------
After each evaluation a run writes ``run.json`` (then its checkpoint), both
atomically; ``points.csv`` is rewritten from the ``run.json`` files.
``resume=True`` (``--resume``) skips finished runs and continues unfinished ones
from their checkpoint (exactly: the algorithms' ``save``/``load`` restore every
RNG and the env's data position), dropping points newer than the checkpoint.  A
run whose settings changed is an error, not a silent mix.  To redo a run, delete
its ``<label>/seed<s>/`` folder and resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textgym.app.compare_report import (
    POINT_COLUMNS,
    TABLE_COLUMNS,
    ComparisonResult,
    RunResult,
    learning_curves,
    report_markdown,
    summary_table,
    table_markdown,
    write_csv,
    write_text,
)

__all__ = ["CompareConfig", "ComparisonResult", "compare", "main", "build_parser", "algorithm_config",
           "HARNESS_FIELDS"]

#: Algorithm config fields the harness sets itself, and why.
HARNESS_FIELDS = {"seed": "seeds come from `seeds` (the same for every algorithm)",
                  "run_dir": "each run logs to <out>/<label>/seed<s>/train",
                  "save_every": "the harness checkpoints after each evaluation"}
#: Defaults the harness gives algorithm configs that have these fields (overridable).
ALGO_DEFAULTS = {"progress_bar": False, "tensorboard": False}
#: Algorithm config fields that may change between a run and its resume (where and how it logs).
_NOT_PROTOCOL = ("run_dir", "progress_bar", "tensorboard", "log_samples", "device")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]*$")
N_RESAMPLES = 10_000


@dataclass
class CompareConfig:
    """Settings of a comparison (see the module docstring for the protocol).

    Attributes:
        env_id: the Gymnasium id of the task (``textgym.list_envs()``).
        algos: ``["ppo", "grpo", ...]`` (``textgym.agents.algorithms.registry`` names) or ``"label:name"``
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

    def __post_init__(self):
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
        for name in ("env_kwargs", "eval_env_kwargs", "eval_kwargs", "algo_overrides"):
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
        """The config as YAML/JSON-safe data (objects in kwargs appear as ``<module.Class>``)."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(x: Any) -> Any:
    """Plain JSON data; objects become ``"<module.Class>"`` (stable across processes, unlike ``repr``)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
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
    from textgym.agents.algorithms.registry import get_config_class
    from textgym.app.config import build_dataclass

    cls = get_config_class(algorithm)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    if "seed" not in names:
        raise ValueError(f"{algorithm}'s config ({cls.__name__}) has no `seed` field: the harness cannot seed it")
    data = {k: v for k, v in ALGO_DEFAULTS.items() if k in names}
    from textgym.app.compare_presets import preset_for

    data.update(preset_for(cfg.model, names))  # a random-init tiny model: settings that learn (documented there)
    data.update({k: v for k, v in cfg.algo_overrides.get("*", {}).items() if k in names})
    data.update(cfg.algo_overrides.get(label, {}))
    data["seed"] = seed
    if "run_dir" in names:
        data["run_dir"] = str(Path(run_dir) / "train")
    if "save_every" in names:
        data["save_every"] = None
    return build_dataclass(cls, data, f"algo_overrides.{label}", label=f"{algorithm} config")


def _check_algorithms(cfg: CompareConfig, out: Path) -> None:
    """Build every label's config once (seed 0) so unknown names and bad overrides fail before any work."""
    from textgym.agents.algorithms.registry import get_config_class

    known: set[str] = set()
    for label, name in cfg.runs():
        known |= {f.name for f in dataclasses.fields(get_config_class(name))}
        algorithm_config(cfg, label, name, 0, out / label / "seed0")
    unknown = sorted(set(cfg.algo_overrides.get("*", {})) - known)
    if unknown:
        raise ValueError(f"algo_overrides['*'] sets {unknown}, a field of none of the algorithms' configs")


# ---------------------------------------------------------------------------------------------- one run
class _Envs:
    """Builds the training envs and the shared eval env with the same tokenizer and kwargs."""

    def __init__(self, cfg: CompareConfig):
        from textgym.app.config import build_reward
        from textgym.app.prepare import prepare_rewards

        self.cfg = cfg
        kwargs = dict(cfg.env_kwargs)
        if "tokenizer" not in kwargs:
            from textgym.models import load_tokenizer

            kwargs["tokenizer"] = load_tokenizer(cfg.model)
        ev = {**kwargs, **cfg.eval_env_kwargs}
        for spec in (kwargs, ev):  # e.g. trains the sentiment classifier once
            prepare_rewards(cfg.env_id, spec.get("reward"))
        self.train_kwargs = {**kwargs, "reward": build_reward(kwargs["reward"])} if "reward" in kwargs else kwargs
        self.eval_kwargs = {**ev, "reward": build_reward(ev["reward"])} if "reward" in ev else ev
        if self.eval_kwargs.get("split", "train") == self.train_kwargs.get("split", "train"):
            warnings.warn(f"the eval env uses the training split ({self.eval_kwargs.get('split', 'train')!r}); "
                          "set eval_env_kwargs={'split': 'test'} (or another held-out split)", stacklevel=3)
        self.eval_env = self._make(self.eval_kwargs, min(cfg.num_envs, cfg.eval_episodes))

    def _make(self, kwargs: dict[str, Any], n: int) -> Any:
        import gymnasium as gym

        return gym.make_vec(self.cfg.env_id, num_envs=n, vectorization_mode="vector_entry_point",
                            autoreset_mode="Disabled", **kwargs)

    def train(self) -> Any:
        return self._make(self.train_kwargs, self.cfg.num_envs)


def _evaluate(algo: Any, envs: _Envs, cfg: CompareConfig, where: str) -> dict[str, float]:
    """One evaluation by the protocol: eval env reset with ``eval_seed``, then ``algo.evaluate``.

    Raises:
        KeyError: the algorithm's ``evaluate`` returned no ``score_mean``.
        FloatingPointError: a non-finite metric (the policy diverged).
    """
    envs.eval_env.reset(seed=cfg.eval_seed)
    t0 = time.perf_counter()
    metrics = algo.evaluate(envs.eval_env, cfg.eval_episodes, seed=cfg.eval_seed, **cfg.eval_kwargs)
    out = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if "score_mean" not in out:
        raise KeyError(f"{where}: {type(algo).__name__}.evaluate returned no 'score_mean' (got {sorted(metrics)})")
    bad = sorted(k for k, v in out.items() if not math.isfinite(v))
    if bad:
        raise FloatingPointError(f"{where}: the evaluation gave non-finite {bad}; the policy diverged (lower the "
                                 "learning rate, e.g. --set algo.<label>.learning_rate=...)")
    out["eval_time_s"] = time.perf_counter() - t0
    return out


def _read_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "run.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _write_state(run_dir: Path, spec: dict[str, Any], points: list[dict[str, Any]], done: bool) -> None:
    write_text(run_dir / "run.json", json.dumps({"spec": spec, "done": done, "points": points}, indent=1))


def _save_checkpoint(algo: Any, path: Path) -> None:
    """``algo.save(path)`` without transformers' per-save "Writing model shards" bar (one per evaluation would
    bury the comparison's own progress bar and print even with ``progress=False``); the bar setting is restored."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        algo.save(path)
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _run_spec(cfg: CompareConfig, label: str, algorithm: str, seed: int, algo_cfg: Any) -> dict[str, Any]:
    """What must not change between a run and its resume."""
    conf = {k: v for k, v in dataclasses.asdict(algo_cfg).items() if k not in _NOT_PROTOCOL}
    return _jsonable({"label": label, "algorithm": algorithm, "seed": seed, "model": cfg.model, "env_id": cfg.env_id,
                      "env_kwargs": cfg.env_kwargs, "eval_env_kwargs": cfg.eval_env_kwargs,
                      "eval_kwargs": cfg.eval_kwargs, "num_envs": cfg.num_envs, "budget": cfg.budget,
                      "eval_every": cfg.interval(), "eval_episodes": cfg.eval_episodes, "eval_seed": cfg.eval_seed,
                      "algo_config": conf})


def _check_spec(old: dict[str, Any], new: dict[str, Any], run_dir: Path) -> None:
    if old != new:
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if "algo_config" in keys:
            a, b = old.get("algo_config", {}), new.get("algo_config", {})
            keys += [f"algo_config.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        raise ValueError(f"{run_dir} was run with other settings ({', '.join(keys)} differ); resume with the "
                         "same settings, use another out_dir, or delete that run folder to redo it")


class _Progress:
    """The tqdm bar over all runs' tokens; each run contributes at most ``budget``."""

    def __init__(self, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="tok", disable=not enabled, dynamic_ncols=True)
        self.shown = 0
        self.budget = 0

    def start(self, label: str, seed: int, budget: int) -> None:
        self.bar.set_description(f"{label} seed {seed}")
        self.shown, self.budget = 0, budget

    def at(self, tokens: int) -> None:
        new = min(int(tokens), self.budget)
        self.bar.update(new - self.shown)
        self.shown = new

    def __call__(self, algo: Any, metrics: dict[str, Any]) -> None:  # learn(callback=...)
        self.at(algo.num_timesteps)

    def close(self) -> None:
        self.bar.close()


def _run(cfg: CompareConfig, label: str, algorithm: str, seed: int, out: Path, envs: _Envs, result: RunResult,
         progress: _Progress, on_point: Any) -> None:
    """Train and evaluate one ``(label, seed)`` run to the budget, checkpointing after each evaluation."""
    from textgym.agents.algorithms.registry import get_algorithm

    run_dir = out / label / f"seed{seed}"
    algo_cfg = algorithm_config(cfg, label, algorithm, seed, run_dir)
    spec = _run_spec(cfg, label, algorithm, seed, algo_cfg)
    state = _read_state(run_dir)
    progress.start(label, seed, cfg.budget)
    if state is not None:
        _check_spec(state["spec"], spec, run_dir)
        if state["done"]:
            result.points, result.done = state["points"], True
            progress.at(cfg.budget)
            return
    cls, ckpt, targets = get_algorithm(algorithm), run_dir / "checkpoint", cfg.targets()
    where = f"{label} seed {seed}"
    env = envs.train()
    algo = None
    try:
        # 1. resume from the checkpoint, keeping the points it covers
        if state is not None and ckpt.is_dir():
            names = {f.name for f in dataclasses.fields(type(algo_cfg))}
            algo = cls.load(ckpt, env, **{k: getattr(algo_cfg, k) for k in _NOT_PROTOCOL if k in names})
            points = [p for p in state["points"] if p["tokens"] <= algo.num_timesteps]
            if not points or points[-1]["tokens"] != algo.num_timesteps:
                warnings.warn(f"{run_dir}: run.json has no evaluation at the checkpoint's {algo.num_timesteps} "
                              "tokens; restarting this run", stacklevel=2)
                algo.close()
                algo = None
        # 2. or start fresh: evaluate the untrained policy (token 0) and checkpoint it
        if algo is None:
            shutil.rmtree(ckpt, ignore_errors=True)
            algo = cls(cfg.model, env, algo_cfg)
            points = [{"algo": label, "algorithm": algorithm, "seed": seed, "target_tokens": 0,
                       "tokens": algo.num_timesteps, "wall_time_s": 0.0, **_evaluate(algo, envs, cfg, where)}]
            _write_state(run_dir, spec, points, done=False)
            result.points = points
            on_point()
            _save_checkpoint(algo, ckpt)
        result.points = points
        progress.at(algo.num_timesteps)
        wall = points[-1]["wall_time_s"]
        # 3. train chunk by chunk to the next grid target; evaluate; save the point, then the checkpoint
        while algo.num_timesteps < cfg.budget:
            target = next(t for t in targets if t > algo.num_timesteps)
            before, t0 = algo.num_timesteps, time.perf_counter()
            algo.learn(total_timesteps=target - algo.num_timesteps, callback=progress)
            wall += time.perf_counter() - t0
            if algo.num_timesteps <= before:
                raise RuntimeError(f"{where}: learn(total_timesteps={target - before}) generated no tokens")
            reached = max(t for t in targets if t <= algo.num_timesteps)
            points.append({"algo": label, "algorithm": algorithm, "seed": seed, "target_tokens": reached,
                           "tokens": algo.num_timesteps, "wall_time_s": wall,
                           **_evaluate(algo, envs, cfg, f"{where} at {algo.num_timesteps} tokens")})
            _write_state(run_dir, spec, points, done=False)
            on_point()
            _save_checkpoint(algo, ckpt)
        # 4. mark the run finished
        _write_state(run_dir, spec, points, done=True)
        result.done = True
    finally:
        if algo is not None:
            algo.close()
        env.close()


# ---------------------------------------------------------------------------------------------- the comparison
def _prepare_out(out: Path, cfg: CompareConfig, resume: bool) -> None:
    import yaml

    if not resume and ((out / "compare_config.yaml").exists() or any(out.glob("*/seed*/run.json"))):
        raise FileExistsError(f"{out} already holds a comparison; pass resume=True (--resume) to continue it, "
                              "or choose another out_dir (--out)")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "compare_config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _protocol_text(cfg: CompareConfig) -> str:
    seeds = cfg.seed_list()
    return (f"Every algorithm starts from `{cfg.model}` and trains on `{cfg.env_id}` ({cfg.num_envs} episodes per "
            f"rollout) for {cfg.budget:,} generated tokens, with seeds {seeds} (seed s = the algorithm's config "
            f"seed and the training env's first reset seed).  Evaluations: at token 0 and every {cfg.interval():,} "
            f"generated tokens (logged at the actual token count), {cfg.eval_episodes} episodes on the eval env "
            f"(env kwargs + {cfg.eval_env_kwargs}), reset with the fixed seed {cfg.eval_seed} every time, so all "
            "algorithms see the same prompts.  The final score is the last evaluation's mean score; CIs are 95% "
            "percentile-bootstrap intervals of the mean over seeds, IQM is the interquartile mean over seeds "
            "(Agarwal et al. 2021).  Train time counts rollouts and updates only (not evaluations or checkpoints); "
            "KL to the reference is nats per episode.")


def _plural(n: int, word: str) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def _write_outputs(cfg: CompareConfig, out: Path, runs: list[RunResult]) -> ComparisonResult:
    import yaml

    from textgym.app.plots import plot_learning_curves

    labels = [label for label, _ in cfg.runs()]
    stats = dict(confidence=cfg.confidence, n_resamples=N_RESAMPLES)
    table = summary_table(runs, labels, **stats)
    curves = learning_curves(runs, labels, **stats)
    files = {"points": out / "points.csv", "table_csv": out / "table.csv", "table_md": out / "table.md",
             "curves": out / "curves.png", "report": out / "report.md", "config": out / "compare_config.yaml"}
    write_csv(files["points"], [p for r in runs for p in r.points], POINT_COLUMNS)
    write_csv(files["table_csv"], table, TABLE_COLUMNS)
    write_text(files["table_md"], table_markdown(table, cfg.confidence))
    if curves:
        plot_learning_curves(curves, files["curves"], xlabel="generated tokens", ylabel="eval score (mean over seeds)",
                             title=f"{cfg.env_id}, {_plural(len(cfg.seed_list()), 'seed')}, "
                                   f"{cfg.confidence * 100:g}% CI")
    else:
        del files["curves"]
    env_kw = f" with {cfg.to_dict()['env_kwargs']}" if cfg.env_kwargs else ""
    setup = [("env", f"`{cfg.env_id}`{env_kw}"), ("model", f"`{cfg.model}`"),
             ("algorithms", ", ".join(f"{lab} = `{name}`" for lab, name in cfg.runs())),
             ("seeds", str(cfg.seed_list())), ("budget", f"{cfg.budget:,} generated tokens per run"),
             ("evaluation", f"{cfg.eval_episodes} episodes every {cfg.interval():,} tokens, eval env kwargs "
                            f"{cfg.eval_env_kwargs}, seed {cfg.eval_seed}"),
             ("overrides", json.dumps(cfg.to_dict()["algo_overrides"]) if cfg.algo_overrides else "none")]
    from textgym.app.compare_presets import MODEL_PRESETS

    if cfg.model in MODEL_PRESETS:
        setup.append(("model preset", f"{json.dumps(MODEL_PRESETS[cfg.model][0])} ({MODEL_PRESETS[cfg.model][1]}); "
                                      "overrides win"))
    effective = {}
    for label, name in cfg.runs():  # every setting each algorithm ran with (seed 0's; only the seed differs)
        conf = dataclasses.asdict(algorithm_config(cfg, label, name, cfg.seed_list()[0], out / label / "seed0"))
        effective[label] = {k: v for k, v in conf.items() if k not in (*_NOT_PROTOCOL, "seed")}
    report = report_markdown(title=f"Comparison on {cfg.env_id}", setup=setup, protocol=_protocol_text(cfg),
                             table=table, runs=runs, curves_png="curves.png" if curves else None,
                             config_yaml=yaml.safe_dump(cfg.to_dict(), sort_keys=False), confidence=cfg.confidence,
                             settings=effective)
    write_text(files["report"], report)
    return ComparisonResult(cfg, out, runs, table, curves, files)


def compare(config: CompareConfig | None = None, /, *, resume: bool = False, progress: bool = True,
            **fields: Any) -> ComparisonResult:
    """Run every algorithm for every seed on one task by the same protocol and write the report.

    Args:
        config: a :class:`CompareConfig` (``fields`` replace its values), or ``None`` to build
            one from ``fields``.
        resume: continue the comparison in ``out_dir`` (finished runs are skipped, unfinished
            ones continue from their checkpoint).
        progress: show a progress bar over all runs' tokens.
        **fields: :class:`CompareConfig` fields.

    Returns:
        :class:`ComparisonResult` (table, curves, runs and the paths of the written files).

    Raises:
        FileExistsError: ``out_dir`` holds a comparison and ``resume`` is false.
        ValueError: invalid settings, or a run folder made with other settings.
        KeyError: an unknown algorithm.
        FloatingPointError: an evaluation gave a non-finite score.
    """
    cfg = dataclasses.replace(config, **fields) if config is not None else CompareConfig(**fields)
    out = cfg.output_dir()
    _check_algorithms(cfg, out)
    _prepare_out(out, cfg, resume)
    seeds = cfg.seed_list()
    runs = [RunResult(label, name, s) for label, name in cfg.runs() for s in seeds]
    envs = _Envs(cfg)
    bar = _Progress(len(runs) * cfg.budget, progress)

    def on_point():
        write_csv(out / "points.csv", [p for r in runs for p in r.points], POINT_COLUMNS)

    try:
        for r in runs:
            _run(cfg, r.label, r.algorithm, r.seed, out, envs, r, bar, on_point)
    finally:
        bar.close()
        envs.eval_env.close()
    return _write_outputs(cfg, out, runs)


# ---------------------------------------------------------------------------------------------- CLI
def build_parser(prog: str = "textgym compare") -> argparse.ArgumentParser:
    """The argument parser of ``textgym compare``."""
    from textgym.app.output import HelpFormatter

    p = argparse.ArgumentParser(prog=prog, formatter_class=HelpFormatter,
                                description="Compare RL algorithms on one textgym task: same env, "
                                "token budget, seeds and evaluation for each; writes a table, curves and a report.")
    p.add_argument("--env", dest="env_id", help="task id (default textgym/TokenCount-v0; see `textgym list`)")
    p.add_argument("--algos", help="comma-separated algorithm names, or label:name (e.g. ppo,grpo,ppo-fast:ppo)")
    p.add_argument("--seeds", help="number of seeds (0..n-1) or a comma-separated list (default 3)")
    p.add_argument("--budget", type=int, help="generated tokens per run (default 20000)")
    p.add_argument("--eval-every", dest="eval_every", type=int, help="tokens between evaluations (default budget/10)")
    p.add_argument("--eval-episodes", dest="eval_episodes", type=int, help="episodes per evaluation (default 64)")
    p.add_argument("--model", help="starting model name or path (default tiny-char)")
    p.add_argument("--num-envs", dest="num_envs", type=int, help="episodes per rollout (default 16)")
    p.add_argument("--out", dest="out_dir", help="run folder (default runs/compare-<env name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="algo.<label|*>.<field>=V, env.<kwarg>=V, eval_env.<kwarg>=V, eval.<kwarg>=V, or <setting>=V")
    p.add_argument("--config", help="YAML file of compare settings (e.g. a previous run's compare_config.yaml)")
    p.add_argument("--resume", action="store_true", help="continue the comparison in --out")
    from textgym.app.output import add_output_flags

    return add_output_flags(p)


def _apply_set(raw: dict[str, Any], key: str, value: Any) -> None:
    """One ``--set`` item onto the raw config mapping."""
    from textgym.app.config import ConfigError, apply_overrides

    head, _, rest = key.partition(".")
    names = [f.name for f in dataclasses.fields(CompareConfig)]
    if head == "algo":
        label, _, name = rest.partition(".")
        if not label or not name or "." in name:
            raise ConfigError("algorithm settings are algo.<label or *>.<field>=VALUE "
                              "(e.g. algo.ppo.learning_rate=1e-4)", key)
        raw.setdefault("algo_overrides", {}).setdefault(label, {})[name] = value
    elif head in ("env", "eval_env", "eval") and rest:
        section = {"env": "env_kwargs", "eval_env": "eval_env_kwargs", "eval": "eval_kwargs"}[head]
        apply_overrides(raw.setdefault(section, {}), [(rest, value)])
    elif not rest and head in names:
        raw[head] = value
    else:
        raise ConfigError(f"unknown setting; use algo.<label>.<field>, env.<kwarg>, eval_env.<kwarg>, "
                          f"eval.<kwarg> or one of: {', '.join(names)}", key)


def _raw_config(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults < ``--config`` file < flags < ``--set``."""
    import yaml

    from textgym.app.config import ConfigError, parse_overrides

    raw: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"no such config file: {str(path)!r}")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a YAML mapping of compare settings")
    for name in ("env_id", "algos", "budget", "eval_every", "eval_episodes", "model", "num_envs", "out_dir"):
        if getattr(args, name) is not None:
            raw[name] = getattr(args, name)
    if args.seeds is not None:
        try:
            parts = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--seeds takes a count or a comma-separated list of integers, got {args.seeds!r}",
                              "seeds") from None
        raw["seeds"] = parts if "," in args.seeds else parts[0]
    for key, value in parse_overrides(args.overrides):
        _apply_set(raw, key, value)
    if isinstance(raw.get("algos"), str):  # "ppo,grpo" from the flag, a file or --set
        raw["algos"] = [a.strip() for a in raw["algos"].split(",") if a.strip()]
    return raw


def main(argv: Sequence[str] | None = None) -> int:
    """``textgym compare ...``: run the comparison and print its table; returns the exit status.

    Errors in the settings print one line to stderr and return 2.
    """
    from textgym.app.config import build_dataclass

    args = build_parser().parse_args(argv)
    try:
        from textgym.app.output import apply_output_flags

        apply_output_flags(args)
        cfg = build_dataclass(CompareConfig, _raw_config(args), "", label="compare settings")
        result = compare(cfg, resume=args.resume, progress=not (args.no_progress or args.quiet))
    except (ValueError, KeyError, FileExistsError) as exc:
        print(f"textgym compare: error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    print(result.to_markdown())
    print(f"files in {result.out_dir}: " + ", ".join(sorted(p.name for p in result.files.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
