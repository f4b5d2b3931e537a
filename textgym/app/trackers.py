"""Experiment trackers for ``textgym train``: ``report_to: [tensorboard, wandb, mlflow]``.

``report_to`` in a run config is a list of names, or a mapping of name to options::

    report_to: [tensorboard, wandb]
    report_to: {wandb: {project: haiku, mode: offline}, mlflow: {tracking_uri: "sqlite:///runs/mlflow.db"}}

* ``tensorboard`` (the default): event files in ``<run>/tb`` (written by the algorithm's
  logger and the evaluations); removing it from the list turns them off.
* ``wandb`` (``pip install "textgym[trackers]"`` or ``pip install wandb``): one W&B run per
  textgym run, files under ``<run>/wandb``.  Mode: the option ``mode``, else ``$WANDB_MODE``,
  else ``offline`` (nothing leaves the machine; upload later with ``wandb sync <run>/wandb/offline-run-*``).
  Other options go to ``wandb.init`` (``project``, ``entity``, ``tags``, ...).
* ``mlflow`` (``pip install mlflow``, or ``mlflow-skinny sqlalchemy alembic``): one MLflow run in experiment
  ``experiment`` (default ``textgym``).  Tracking URI: the option ``tracking_uri``, else
  ``$MLFLOW_TRACKING_URI``, else a local SQLite store ``<runs dir>/mlflow.db`` with artifacts
  (config, sample tables) in ``<runs dir>/mlartifacts`` (see them with
  ``mlflow ui --backend-store-uri sqlite:///<runs dir>/mlflow.db``; MLflow 3 refuses plain
  file stores).

Each tracker gets the resolved config (as its run config / params), every RL iteration's
metrics (step = iteration), every evaluation's metrics (``eval_<stage>/...``; ``eval/...``
during training) and each evaluation's samples as a table (prompt, completion, score).
A resumed run continues the same tracker run (its id is kept in ``run_state.json``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["TRACKERS", "normalize_report_to", "Trackers", "start_trackers"]

#: The tracker names ``report_to`` accepts (``none``: no tracker, not even TensorBoard).
TRACKERS = ("tensorboard", "wandb", "mlflow")


def normalize_report_to(value: Any) -> dict[str, dict[str, Any]]:
    """``report_to`` as ``{name: options}``.

    Raises:
        ValueError: an unknown name or malformed options.
    """
    if value is None or value == "none" or value == ["none"]:
        return {}
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        items = {str(k): dict(v or {}) if isinstance(v, Mapping) or v is None else v for k, v in value.items()}
    else:
        items = {str(k): {} for k in value}
    for name, opts in items.items():
        if name not in TRACKERS:
            raise ValueError(f"unknown tracker {name!r}; choose from {', '.join(TRACKERS)} (or none)")
        if not isinstance(opts, dict):
            raise ValueError(f"options of tracker {name!r} must be a mapping, got {opts!r}")
    return items


def _numbers(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):
            out[prefix + k] = float(v)
    return out


class _WandB:
    def __init__(self, opts: dict[str, Any], run_dir: Path, name: str, config: dict[str, Any], state: dict[str, Any]):
        import wandb

        opts = dict(opts)
        mode = opts.pop("mode", None) or os.environ.get("WANDB_MODE") or "offline"
        self.wandb = wandb
        run_id = state.get("wandb_id")
        self.run = wandb.init(dir=str(run_dir), name=name, config=config, mode=mode, id=run_id,
                              resume="allow" if run_id else None, **{"project": "textgym", **opts})
        state["wandb_id"] = self.run.id

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def table(self, name: str, rows: Sequence[Mapping[str, Any]], step: int) -> None:
        cols = ["prompt", "completion", "score"]
        table = self.wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])
        self.run.log({name: table}, step=step)

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, opts: dict[str, Any], run_dir: Path, name: str, config: dict[str, Any], state: dict[str, Any]):
        import mlflow

        uri = (opts.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
               or f"sqlite:///{(run_dir.parent / 'mlflow.db').resolve()}")
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        self.uri = uri
        exp_name = opts.get("experiment", "textgym")
        exp = self.client.get_experiment_by_name(exp_name)
        artifacts = opts.get("artifact_location") or (run_dir.parent / "mlartifacts").resolve().as_uri()
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(exp_name, artifacts)
        run_id = state.get("mlflow_id")
        if run_id is None:
            run = self.client.create_run(exp_id, run_name=name, tags={"textgym.run_dir": str(run_dir)})
            run_id = run.info.run_id
            flat = _flatten(config)
            from mlflow.entities import Param

            params = [Param(k, str(v)[:500]) for k, v in flat.items()]
            for i in range(0, len(params), 100):
                self.client.log_batch(run_id, params=params[i: i + 100])
            self.client.log_dict(run_id, config, "config.json")
        state["mlflow_id"] = run_id
        self.run_id = run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k.replace("@", "_"), v, now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 500):
            self.client.log_batch(self.run_id, metrics=batch[i: i + 500])

    def table(self, name: str, rows: Sequence[Mapping[str, Any]], step: int) -> None:
        cols = ["prompt", "completion", "score"]
        self.client.log_table(self.run_id, {c: [r.get(c) for r in rows] for c in cols}, f"{name}.json")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class Trackers:
    """The W&B / MLflow runs of one textgym run (TensorBoard is written by the loggers themselves)."""

    def __init__(self, backends: Sequence[Any] = ()):
        self.backends = list(backends)

    def log(self, metrics: Mapping[str, Any], step: int, prefix: str = "") -> None:
        """Log the numeric entries of ``metrics`` at ``step`` (keys prefixed by ``prefix``)."""
        nums = _numbers(metrics, prefix)
        if nums:
            for b in self.backends:
                b.log(nums, step)

    def log_eval(self, stage: str, step: int, metrics: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]) -> None:
        """An evaluation: metrics under ``eval_<stage>/`` (``eval/`` for ``train``) and the samples as a table."""
        prefix = "eval/" if stage == "train" else f"eval_{stage}/"
        self.log(metrics, step, prefix)
        if samples:
            for b in self.backends:
                b.table(f"samples_{stage}" if stage != "train" else f"samples_eval_{step}", samples, step)

    def close(self) -> None:
        for b in self.backends:
            b.close()
        self.backends = []


def start_trackers(report_to: Any, run_dir: str | os.PathLike, name: str, config: dict[str, Any],
                   state: dict[str, Any]) -> Trackers:
    """Start the W&B / MLflow runs ``report_to`` asks for (``state`` gets their ids for resume).

    Raises:
        ImportError: a tracker whose package is not installed (the message says what to install).
    """
    run_dir = Path(run_dir)
    backends = []
    for tracker, opts in normalize_report_to(report_to).items():
        if tracker == "tensorboard":
            continue
        cls = {"wandb": _WandB, "mlflow": _MLflow}[tracker]
        try:
            backends.append(cls(opts, run_dir, name, config, state))
        except ModuleNotFoundError as exc:
            pkg = "wandb" if tracker == "wandb" else "mlflow (or mlflow-skinny)"
            raise ImportError(f"report_to: {tracker} needs the {pkg} package: pip install {pkg.split()[0]} "
                              f"({exc})") from None
    return Trackers(backends)
