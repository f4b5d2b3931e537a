"""Your own prompts, your own reward: the generic text-generation task.

``textgym/Text-v0``

* **Prompts**: the ``prompt_column`` of ``data``: a JSONL / JSON / CSV / Parquet
  file, a folder of them, a ``{split: file}`` mapping, a ``datasets.Dataset``
  or a list of dicts (:func:`textgym.data_files.load_prompts`).
* **Splits**: ``train`` / ``test`` / ``all``.  A folder of split files (or a
  mapping) gives its own splits; else a ``split`` column decides; else a
  hash of the prompt text puts ``test_fraction`` of the prompts in ``test``
  (the same prompt always in the same split, on every machine).
* **Observation / action**: as :class:`textgym.TextGenEnv`.
* **Reward**: **none by default**: ``reward=`` is required (a registered name,
  a :class:`textgym.rewards.RewardFunction` or any callable
  ``f(prompts, completions, *, references=None, **columns)``).  Every column
  other than the prompt and the references reaches the reward as a keyword
  argument (one list per column).
* **Episode end**: EOS (terminated) or ``max_new_tokens`` tokens (truncated).
* **References**: the ``reference_column`` (a string or a list of strings), if given.
"""

from __future__ import annotations

from typing import Any

from textgym.envs._task import task_settings
from textgym.envs.common import resolve_tokenizer

__all__ = ["make_text", "TASK_ID"]

TASK_ID = "textgym/Text-v0"
#: the env lengths of textgym/Text-v0 (its TaskSpec's defaults)
DEFAULTS = {"max_prompt_length": 128, "max_new_tokens": 64}


def make_text(
    tokenizer: Any = "smollm2-135m-instruct",
    data: Any = None,
    reward: Any = None,
    split: str = "train",
    prompt_column: str = "prompt",
    reference_column: str | None = None,
    test_fraction: float = 0.1,
    samples: Any = None,
    **kwargs: Any,
):
    """Factory of ``textgym/Text-v0``; keyword arguments are ``gym.make`` overrides.

    Args:
        tokenizer: model name/path (its tokenizer is loaded) or a tokenizer object.
        data: the prompts (see the module docstring); ``samples=`` is an alias.
        reward: reward name, object or callable (required: this task has no default reward).
        split: ``"train"``, ``"test"``, ``"all"`` or a split the data names.
        prompt_column: column holding the prompt.
        reference_column: column holding the reference(s), if any.
        test_fraction: share of prompts in ``test`` under the hash rule.
        **kwargs: :class:`textgym.TextGenEnv` arguments (``max_new_tokens``, ``prompt_format``, ...).

    Returns:
        ``(tokenizer, samples, reward, settings)`` for :func:`textgym.registration.build_env`.

    Raises:
        ValueError: no data, no reward, a missing column, an unknown or empty split.
    """
    from textgym.data_files import load_prompts

    settings = task_settings(TASK_ID, kwargs, DEFAULTS)
    if data is None:
        data = samples
    elif samples is not None:
        raise ValueError(f"{TASK_ID}: pass data= or samples=, not both")
    if data is None:
        raise ValueError(f"{TASK_ID} needs your prompts: data='prompts.jsonl' (a JSONL / JSON / CSV / Parquet file, "
                         "a folder, a datasets.Dataset or a list of dicts with a 'prompt' column)")
    if reward is None:
        raise ValueError(f"{TASK_ID} has no default reward: pass reward=NAME (see `textgym list rewards`), a "
                         "RewardFunction or a callable f(prompts, completions, **columns) -> scores")
    rows = load_prompts(data, split, prompt_column=prompt_column, reference_column=reference_column,
                        test_fraction=test_fraction)
    return resolve_tokenizer(tokenizer), rows, reward, settings
