"""The application layer (top floor): the ``textgym`` CLI, YAML run configs, the train pipeline,
the comparison harness and its reports, run folders, plots, statistics and the bench runner.

It may import every floor below it (core, ``textgym.envs`` / ``textgym.rewards``,
``textgym.agents``); nothing below imports it.  Names are imported on first use, like
``textgym.agents``: ``from textgym.app import Pipeline, train``.  The comparison harness is
``from textgym.app.compare import compare`` (``textgym.app.compare`` is its module).
"""

import importlib

_EXPORTS = {
    # the `textgym train` pipeline (SFT -> eval -> RL -> eval -> report in a run folder)
    "Pipeline": ("textgym.app.pipeline", "Pipeline"),
    "RunResult": ("textgym.app.pipeline", "RunResult"),
    "train": ("textgym.app.pipeline", "train"),
    "resume": ("textgym.app.pipeline", "resume"),
    # comparing algorithms: the harness, its result and statistics
    "CompareConfig": ("textgym.app.compare", "CompareConfig"),
    "ComparisonResult": ("textgym.app.compare_report", "ComparisonResult"),
    "bootstrap_ci": ("textgym.app.stats", "bootstrap_ci"),
    "iqm": ("textgym.app.stats", "iqm"),
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'textgym.app' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
