"""textgym: Gymnasium environments and RL agents for text generation.

Importing ``textgym`` registers the reward functions (``textgym.rewards``)
and the task ids (``textgym/...``, see :func:`list_envs`) with Gymnasium.
"""

from textgym.env import TextGenEnv
from textgym.env_settings import EnvSettings
from textgym.multiturn import MultiTurnEnv
from textgym.multiturn_vector import MultiTurnVectorEnv
from textgym.utterance import UtteranceEnv
from textgym.registration import list_envs, task_spec
from textgym.vector_env import TextGenVectorEnv

from textgym import rewards  # noqa: E402,F401  (registers the built-in rewards)
from textgym import envs  # noqa: E402,F401  (registers the task ids)

__version__ = "0.1.0"
__all__ = ["TextGenEnv", "TextGenVectorEnv", "EnvSettings", "MultiTurnEnv", "MultiTurnVectorEnv", "UtteranceEnv", "list_envs",
           "task_spec", "models", "rewards", "envs", "__version__"]


def __getattr__(name: str):
    # textgym.models imports transformers (a few seconds): load it on first use.
    if name in ("models", "agents"):
        import importlib

        return importlib.import_module(f"textgym.{name}")
    if name == "compare":  # the core does not reach up into the application layer
        raise AttributeError("textgym.compare moved to the application layer: from textgym.app.compare import compare")
    raise AttributeError(f"module 'textgym' has no attribute {name!r}")
