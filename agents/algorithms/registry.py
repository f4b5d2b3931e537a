"""The algorithm registry: short names (``"ppo"``, ``"grpo"``, ...) -> algorithm and config classes.

The CLI (``textgym list``, ``textgym train``), the comparison harness and the
benchmarks look algorithms up here, so a new algorithm is one line in
:data:`ALGORITHMS` plus its module.  Entries are ``(module, class name)``
pairs imported on first use, so listing names stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

__all__ = ["ALGORITHMS", "EXTRAS", "MissingExtra", "list_algorithms", "get_algorithm", "get_config_class"]

# name -> (module, algorithm class); the config class is the algorithm's ``config_class``
ALGORITHMS: dict[str, tuple[str, str]] = {
    "ppo": ("textgym.agents.algorithms.ppo", "PPO"),
    "reinforce": ("textgym.agents.algorithms.reinforce", "REINFORCE"),
    "a2c": ("textgym.agents.algorithms.a2c", "A2C"),
    "nlpo": ("textgym.agents.algorithms.nlpo", "NLPO"),
    "rloo": ("textgym.agents.algorithms.rloo", "RLOO"),
    "grpo": ("textgym.agents.algorithms.grpo", "GRPO"),
    "dr-grpo": ("textgym.agents.algorithms.grpo_variants", "DrGRPO"),
    "dapo": ("textgym.agents.algorithms.grpo_variants", "DAPO"),
    "gspo": ("textgym.agents.algorithms.grpo_variants", "GSPO"),
    "reinforce++": ("textgym.agents.algorithms.reinforce_pp", "REINFORCEPlusPlus"),
    "online-dpo": ("textgym.agents.algorithms.online_dpo", "OnlineDPO"),
    "sb3-ppo": ("textgym.agents.algorithms.sb3_algos", "SB3PPO"),
    "sb3-a2c": ("textgym.agents.algorithms.sb3_algos", "SB3A2C"),
    # needs the optional extra `sb3` (sb3-contrib; see EXTRAS)
    "sb3-maskable-ppo": ("textgym.agents.algorithms.sb3_maskable_ppo", "SB3MaskablePPO"),
}


#: algorithms that need an optional extra of textgym (``pip install 'textgym[EXTRA]'``)
EXTRAS: dict[str, str] = {"sb3-maskable-ppo": "sb3"}


class MissingExtra(ImportError, ValueError):
    """A registered algorithm whose optional extra is not installed; the message says what to install.

    A ``ValueError`` too, so the CLIs report it as bad input (one line, exit 2).
    """


def list_algorithms() -> list[str]:
    """The registered algorithm names, sorted."""
    return sorted(ALGORITHMS)


def _check(name: str) -> str:
    key = name.lower()
    if key not in ALGORITHMS:
        close = difflib.get_close_matches(key, ALGORITHMS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown algorithm {name!r}.{hint} Registered: {', '.join(list_algorithms())}")
    return key


def get_algorithm(name: str) -> type[Any]:
    """The algorithm class registered as ``name`` (case-insensitive).

    Raises:
        KeyError: unknown name (the message lists the registered ones and a close match).
        MissingExtra: the algorithm's optional extra (:data:`EXTRAS`) is not installed.
    """
    key = _check(name)
    module, attr = ALGORITHMS[key]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        if key not in EXTRAS:
            raise
        raise MissingExtra(f"{key} needs the optional extra {EXTRAS[key]!r}: {e}") from e
    return getattr(mod, attr)


def get_config_class(name: str) -> type[Any]:
    """The config dataclass of algorithm ``name`` (its ``config_class``)."""
    return get_algorithm(name).config_class
