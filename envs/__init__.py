"""textgym's tasks: each module builds samples + a default reward; this package registers their ids.

Importing ``textgym`` imports this package, which registers every task of
``envs/tasks.json`` with ``gymnasium.register`` (single-env ``entry_point``
and native ``vector_entry_point``), in the file's order.  That file is the
task table: per task its id, kind (``text``: a :class:`textgym.TextGenEnv`
task; ``conversation``: a :class:`textgym.MultiTurnEnv` task), factory,
defaults, and what ``textgym.list_envs(details=True)`` shows;
``envs/TASKS_TABLE.md`` is the same list as a table.  The task modules
import their data, rewards and tokenizers only when an env is built, so
importing textgym stays cheap.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textgym.envs import (
    calculator, code, commongen, dialogue, games, instruction, mt_bench, qa, reasoning_gym_task, sentiment,
    simulated_user, summarization, synthetic, text, textarena_games, translation,
)  # fmt: skip
from textgym.envs._multiturn import multiturn_entry_points
from textgym.envs.common import entry_points
from textgym.registration import TaskSpec, register_task

__all__ = [
    "sentiment", "summarization", "translation", "qa", "instruction", "dialogue", "commongen", "code", "synthetic",
    "text",
    "task_factory",
    "games", "calculator", "mt_bench", "simulated_user",
    "reasoning_gym_task", "textarena_games",
]  # fmt: skip

#: task kind -> how its factory becomes Gymnasium's (entry_point, vector_entry_point)
_ENTRY_POINTS: dict[str, Callable[[Callable[..., Any]], tuple[Any, Any]]] = {
    "text": entry_points,
    "conversation": multiturn_entry_points,
}


def _resolve(ref: str) -> Any:
    """``"module.name"`` of a task module of this package -> that object."""
    module, name = ref.split(".")
    return getattr(globals()[module], name)


def _read_table(path: Path) -> list[tuple[TaskSpec, Callable[..., Any], str]]:
    """``(spec, factory, kind)`` of every task in ``envs/tasks.json``, in file order."""
    table = []
    for row in json.loads(path.read_text(encoding="utf-8"))["tasks"]:
        defaults = _resolve(row["defaults"]) if "defaults" in row else {}
        spec = TaskSpec(id=row["id"], task=row["task"], data=row["data"], reward=row["reward"],
                        license=row["license"], defaults=defaults)
        table.append((spec, _resolve(row["factory"]), row["kind"]))
    return table


#: (spec, factory, kind) of every task, registered in this order
_TABLE = _read_table(Path(__file__).resolve().parent / "tasks.json")
for _spec, _factory, _kind in _TABLE:
    register_task(_spec, *_ENTRY_POINTS[_kind](_factory))
del _spec, _factory, _kind


def task_factory(env_id: str) -> Any:
    """The factory ``make_<task>(**overrides)`` behind a textgym id (``None`` if textgym did not register it).

    Its signature lists the task's keyword arguments and their defaults (e.g. the default ``reward``).
    """
    return next((factory for spec, factory, _ in _TABLE if spec.id == env_id), None)
