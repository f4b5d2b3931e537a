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
* **Preference pairs**: ``dpo`` / ``ipo`` cells train offline on the ``pairs`` setting and count
  the completion tokens of the pairs they trained on as their budget
  (:mod:`textgym.app.compare_pairs`); they are evaluated like every other cell.
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
with ``--config``).  Per run, ``<label>/seed<s>/`` is a ``textgym train`` run folder
(:mod:`textgym.app.compare_cell`): ``config.yaml``, ``run_state.json`` (its stages and,
under ``"compare"``, its settings and points), ``checkpoint/`` (the latest ``algo.save``)
and ``train/`` (the algorithm's own logs).  See :mod:`textgym.app.compare_report` for the units.

Resume
------
Each run is a pipeline run (:class:`textgym.app.compare_cell.CellPipeline`), holding its
folder's lock.  After each evaluation it writes ``run_state.json`` (then its checkpoint),
both atomically; ``points.csv`` is rewritten from the runs' points.
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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgym.app.compare_config import (
    ALGO_DEFAULTS,
    HARNESS_FIELDS,
    NOT_PROTOCOL,
    CompareConfig,
    algorithm_config,
    check_algorithms,
    check_envs,
)
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

__all__ = ["CompareConfig", "ComparisonResult", "ComparisonExists", "compare", "main", "build_parser", "algorithm_config",
           "HARNESS_FIELDS", "ALGO_DEFAULTS"]

N_RESAMPLES = 10_000


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


# ---------------------------------------------------------------------------------------------- one run
def _run(cfg: CompareConfig, r: RunResult, out: Path, shared: Any, progress: Any, on_point: Any,
         resume: bool) -> None:
    """Train and evaluate run ``(r.label, r.seed)`` to the budget as a pipeline run in ``out/<label>/seed<s>``
    (:class:`textgym.app.compare_cell.CellPipeline`), holding its lock; a finished run is read back."""
    from textgym.app.compare_cell import CellPipeline, check_spec, read_cell, run_spec
    from textgym.app.run_lock import RunLock

    run_dir = out / r.label / f"seed{r.seed}"
    progress.start(r.label, r.seed, cfg.budget)

    def point(points: list[dict[str, Any]]) -> None:
        r.points = points
        on_point()

    with RunLock(run_dir):
        old = read_cell(run_dir) if resume else None
        if old is not None:
            algo_cfg = algorithm_config(cfg, r.label, r.algorithm, r.seed, run_dir)
            check_spec(old["spec"], run_spec(cfg, r.label, r.algorithm, r.seed, algo_cfg), run_dir)
        if old is not None and old["done"]:
            r.points = old["points"]
        else:
            pipe = CellPipeline(cfg, r.label, r.algorithm, r.seed, out, shared, progress, point,
                                lambda algo, path: _save_checkpoint(algo, path), resume=old is not None)
            pipe.run()
            r.points = pipe.points
    r.done = True
    progress.at(cfg.budget)


# ---------------------------------------------------------------------------------------------- the comparison
class ComparisonExists(FileExistsError):
    """``out_dir`` already holds a comparison and ``resume`` is false (``out``: that folder)."""

    def __init__(self, out: Path):
        self.out = out
        super().__init__(f"{out} already holds a comparison; pass resume=True to continue it, or choose another "
                         "out_dir")

    def cli_message(self) -> str:
        """The same in the command line's words."""
        return f"{self.out} already holds a comparison; pass --resume to continue it, or choose another --out"


def _check_out(out: Path, resume: bool) -> None:
    if not resume and ((out / "compare_config.yaml").exists() or any(out.glob("*/seed*/run_state.json"))):
        raise ComparisonExists(out)


def _write_config(out: Path, cfg: CompareConfig) -> None:
    import yaml

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
            "KL to the reference is nats per episode." + _pairs_text(cfg))


def _pair_labels(cfg: CompareConfig) -> list[str]:
    from textgym.app.compare_pairs import PAIR_ALGORITHMS

    return [label for label, name in cfg.runs() if name in PAIR_ALGORITHMS]


def _pairs_text(cfg: CompareConfig) -> str:
    """The protocol of the dpo / ipo cells (:mod:`textgym.app.compare_pairs`), or ``""``."""
    labels = _pair_labels(cfg)
    if not labels:
        return ""
    return (f"\n\n{', '.join(labels)} generate nothing: they train offline on the preference pairs {cfg.pairs} "
            "(completions cut to max_new_tokens - 1 tokens, plus EOS), from the same model, evaluated by the same "
            "protocol.  Their budget unit is the completion tokens (chosen + rejected) of the pairs they took "
            "optimizer steps on, repeats counted: training stops at the first step reaching the budget, so they see "
            "about budget / (2 x completion length) pairs (the `pairs` column of points.csv), as many as online DPO "
            "(group size 2) samples for the same generated tokens.  Their train time counts the optimizer steps.")


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
        xlabel = "generated tokens" + (" (dpo/ipo: pair completion tokens trained on)" if _pair_labels(cfg) else "")
        plot_learning_curves(curves, files["curves"], xlabel=xlabel, ylabel="eval score (mean over seeds)",
                             title=f"{cfg.env_id}, {_plural(len(cfg.seed_list()), 'seed')}, "
                                   f"{cfg.confidence * 100:g}% CI")
    else:
        del files["curves"]
    env_kw = f" with {cfg.to_dict()['env_kwargs']}" if cfg.env_kwargs else ""
    setup = [("env", f"`{cfg.env_id}`{env_kw}"), ("model", f"`{cfg.model}`"),
             ("algorithms", ", ".join(f"{lab} = `{name}`" for lab, name in cfg.runs())),
             ("seeds", str(cfg.seed_list())),
             ("budget", f"{cfg.budget:,} generated tokens per run" + (
                 f" ({', '.join(_pair_labels(cfg))}: completion tokens of the pairs trained on)"
                 if _pair_labels(cfg) else "")),
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
        effective[label] = {k: v for k, v in conf.items() if k not in (*NOT_PROTOCOL, "seed")}
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
        FileExistsError: ``out_dir`` holds a comparison and ``resume`` is false (:class:`ComparisonExists`).
        ValueError: invalid settings (an unknown reward, an ``imports`` module not found, ...), or a run folder
            made with other settings.  Nothing is written to ``out_dir`` before the settings, the data and the
            rewards have been checked.
        KeyError: an unknown algorithm.
        FloatingPointError: an evaluation gave a non-finite score.
    """
    cfg = dataclasses.replace(config, **fields) if config is not None else CompareConfig(**fields)
    out = cfg.output_dir()
    # 1. validate everything (settings, names, then the data and rewards by building the eval env) before
    #    writing anything, so a failed start leaves out_dir as it was
    check_algorithms(cfg, out)
    check_envs(cfg)
    _check_out(out, resume)
    seeds = cfg.seed_list()
    from textgym.app.compare_cell import Progress, SharedEnvs

    runs = [RunResult(label, name, s) for label, name in cfg.runs() for s in seeds]
    shared = SharedEnvs(cfg)
    try:
        _write_config(out, cfg)
    except BaseException:
        shared.close()
        raise
    bar = Progress(len(runs) * cfg.budget, progress)

    def on_point():
        write_csv(out / "points.csv", [p for r in runs for p in r.points], POINT_COLUMNS)

    try:
        for r in runs:
            _run(cfg, r, out, shared, bar, on_point, resume)
    finally:
        bar.close()
        shared.close()
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
    p.add_argument("--import", dest="import_modules", action="append", default=[], metavar="MODULE",
                   help="import your own module first, e.g. one that registers a reward (a module name or a .py "
                   "path, looked for next to --config, then in the working directory, then among installed "
                   "modules; repeatable; recorded in compare_config.yaml, so --resume imports it again)")
    from textgym.app.output import add_output_flags

    return add_output_flags(p)


def _set_path(key: str) -> str:
    """The dotted path in the compare settings of one ``--set`` key (then applied by ``apply_overrides``).

    Raises:
        ConfigError: a key that names no setting.
    """
    from textgym.app.config import ConfigError

    head, _, rest = key.partition(".")
    names = [f.name for f in dataclasses.fields(CompareConfig)]
    if head == "algo":
        label, _, name = rest.partition(".")
        if not label or not name or "." in name:
            raise ConfigError("algorithm settings are algo.<label or *>.<field>=VALUE "
                              "(e.g. algo.ppo.learning_rate=1e-4)", key)
        return f"algo_overrides.{rest}"
    if head == "pairs" and rest:
        return key
    if head in ("env", "eval_env", "eval") and rest:
        return {"env": "env_kwargs", "eval_env": "eval_env_kwargs", "eval": "eval_kwargs"}[head] + "." + rest
    if not rest and head in names:
        return head
    raise ConfigError(f"unknown setting; use algo.<label>.<field>, env.<kwarg>, eval_env.<kwarg>, "
                      f"eval.<kwarg> or one of: {', '.join(names)}", key)


def _raw_config(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults < ``--config`` file < flags < ``--set``."""
    import yaml

    from textgym.app.config import ConfigError, apply_overrides, parse_overrides

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
    apply_overrides(raw, [(_set_path(key), value) for key, value in parse_overrides(args.overrides)])
    imports = raw.get("imports") or []
    imports = [imports] if isinstance(imports, str) else imports
    if not isinstance(imports, list):
        raise ConfigError(f"imports is a list of module names or .py paths, got {imports!r}", "imports")
    if imports or args.import_modules:  # found next to the --config file first, as `textgym train` does
        from textgym.app.imports import ImportNotFound, resolve_imports

        try:
            raw["imports"] = list(dict.fromkeys(resolve_imports([*imports, *args.import_modules],
                                                                Path(args.config).parent if args.config else None)))
        except ImportNotFound as exc:
            raise ConfigError(str(exc), "imports") from None
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
    except ComparisonExists as exc:
        print(f"textgym compare: error: {exc.cli_message()}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, FileExistsError, FileNotFoundError) as exc:
        print(f"textgym compare: error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    print(result.to_markdown())
    print(f"files in {result.out_dir}: " + ", ".join(sorted(p.name for p in result.files.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
