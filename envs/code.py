"""Python code generation checked by unit tests: ``textgym/MBPP-v0`` and ``textgym/HumanEval-v0``.

* **Observation / action**: as :class:`textgym.TextGenEnv` (``input_ids`` /
  ``attention_mask`` of shape ``(P + T,)`` int64; the next token id).
* **MBPP prompt**: the problem as Python comments, with its first test as the
  example that fixes the function name::

      # Write a function to find the shared elements from the given two lists.
      # Your code should pass this test:
      # assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))

  The completion is the whole program.  A problem text too long for ``P``
  tokens is cut (whole words) so that the test line survives.
* **HumanEval prompt**: the function signature and docstring; the completion
  continues it (the function body).  Prompts are never cut (the default ``P``
  fits every problem with GPT-2-style tokenizers); a longer one is truncated
  by the env and counted in ``info["prompt_truncated_tokens"]``.
* **Reward**: pass fraction of the unit tests, in ``[0, 1]``
  (``"code-exec"``: :class:`~textgym.rewards.CodeExecutionReward`, each
  sample in its own bubblewrap sandbox, the verdict decided outside it; MBPP:
  its 3 asserts (columns ``test_list``, ``test_setup_code``), program =
  completion; HumanEval: its ``check(candidate)`` (columns ``test``,
  ``entry_point``), program = prompt + completion).  A fenced Markdown code
  block in the completion is extracted.  The reference solutions pass (1.0).
  What the sandbox isolates and what it does not: the README's
  "Code-execution sandbox".
* **Episode end**: EOS (terminated) or ``max_new_tokens`` tokens (truncated).
* **References**: the reference solution (MBPP ``code``; HumanEval
  ``canonical_solution``, the body only).
* **Data and splits**: MBPP (974 problems; CC BY 4.0) by the official task-id
  ranges: ``"train"`` 374 (601-974), ``"validation"`` 90 (511-600), ``"test"``
  500 (11-510), ``"prompt"`` 10 (1-10, few-shot examples).  HumanEval (164
  problems; MIT): evaluation only, ``split="test"``.
* **Defaults**: MBPP ``max_prompt_length=256``, ``max_new_tokens=256``;
  HumanEval ``max_prompt_length=768``, ``max_new_tokens=384``.
"""

from __future__ import annotations

from typing import Any

from textgym.envs._task import build_task, check_split, count_words, cut_words, fit_prompts

__all__ = ["make_mbpp", "make_humaneval", "mbpp_samples", "humaneval_samples", "format_mbpp", "MBPP_SPLITS"]

MBPP_SPLITS = ("train", "validation", "test", "prompt")
MBPP_DEFAULTS = {"max_prompt_length": 256, "max_new_tokens": 256}
HUMANEVAL_DEFAULTS = {"max_prompt_length": 768, "max_new_tokens": 384}


def format_mbpp(text: str, test: str) -> str:
    """The MBPP prompt: problem text and one example test as comments, ending with a newline."""
    text = " ".join(text.split())
    return f"# {text}\n# Your code should pass this test:\n# {test.strip()}\n"


def mbpp_samples(
    split: str, tokenizer: Any, max_prompt_length: int = 256, prompt_format: Any = None
) -> list[dict[str, Any]]:
    """Samples of ``textgym/MBPP-v0``.

    Args:
        split: ``"train"``, ``"validation"``, ``"test"`` or ``"prompt"``.
        tokenizer: tokenizer object (the fit is measured in its tokens).
        max_prompt_length: the env's ``P``.
        prompt_format: the env's prompt format.

    Returns:
        A list of dicts: ``prompt``, ``references`` (``[code]``), ``text`` (the
        problem as shown), ``test_list`` (list of assert strings),
        ``test_setup_code`` (str), ``task_id`` (int).

    Raises:
        ValueError: unknown split.
    """
    from textgym.envs.datasets import load

    check_split(split, MBPP_SPLITS, "textgym/MBPP-v0")
    rows = load("mbpp", split).to_list()

    def build(row: dict[str, Any], n: int | None) -> dict[str, Any]:
        text = cut_words(row["text"].strip(), n)
        tests = [str(t) for t in row["test_list"]]
        return {
            "prompt": format_mbpp(text, tests[0]),
            "references": [row["code"]],
            "text": text,
            "test_list": tests,
            "test_setup_code": row["test_setup_code"] or "",
            "task_id": int(row["task_id"]),
        }

    return fit_prompts(rows, build, lambda r: count_words(r["text"]), tokenizer, max_prompt_length, prompt_format,
                       cache_key=("mbpp", split))


def humaneval_samples() -> list[dict[str, Any]]:
    """The 164 samples of ``textgym/HumanEval-v0``.

    Returns:
        A list of dicts: ``prompt`` (signature + docstring), ``references``
        (``[canonical_solution]``), ``test`` (code defining ``check``),
        ``entry_point`` (function name), ``task_id`` (``"HumanEval/<n>"``).
    """
    from textgym.envs.datasets import load

    return [
        {
            "prompt": row["prompt"],
            "references": [row["canonical_solution"]],
            "test": row["test"],
            "entry_point": row["entry_point"],
            "task_id": row["task_id"],
        }
        for row in load("humaneval", "test").to_list()
    ]


def make_mbpp(
    tokenizer: Any = "smollm2-135m-instruct",
    reward: Any = None,
    split: str = "train",
    samples: Any = None,
    **kwargs: Any,
):
    """Factory of ``textgym/MBPP-v0``; keyword arguments are ``gym.make`` overrides.

    Args:
        tokenizer: model name/path (its tokenizer is loaded) or a tokenizer object.
        reward: reward name, object or callable (default ``"code-exec"``; pass
            ``CodeExecutionReward(timeout=..., workers=...)`` to tune it).
        split: ``"train"`` (374), ``"validation"`` (90), ``"test"`` (500) or ``"prompt"`` (10).
        samples: your own samples (``prompt`` and ``test_list`` columns) instead of the data.
        **kwargs: env arguments (``max_prompt_length`` default 256,
            ``max_new_tokens`` default 256, ``prompt_format``, ...).

    Returns:
        ``(tokenizer, samples, reward, settings)`` for :func:`textgym.registration.build_env`.

    Raises:
        ValueError: unknown split or bad lengths.  TypeError: unknown argument.
    """
    return build_task(
        "textgym/MBPP-v0", tokenizer=tokenizer, reward=reward, default_reward="code-exec", split=split,
        splits=MBPP_SPLITS, samples=samples, kwargs=kwargs, defaults=MBPP_DEFAULTS,
        make_samples=lambda tok, p, fmt: mbpp_samples(split, tok, p, fmt),
    )


def make_humaneval(
    tokenizer: Any = "smollm2-135m-instruct",
    reward: Any = None,
    split: str = "test",
    samples: Any = None,
    **kwargs: Any,
):
    """Factory of ``textgym/HumanEval-v0`` (evaluation only); keyword arguments are ``gym.make`` overrides.

    Args:
        tokenizer: model name/path (its tokenizer is loaded) or a tokenizer object.
        reward: reward name, object or callable (default ``"code-exec"``).
        split: only ``"test"`` (164 problems).
        samples: your own samples (``prompt``, ``test``, ``entry_point`` columns).
        **kwargs: env arguments (``max_prompt_length`` default 768,
            ``max_new_tokens`` default 384, ``prompt_format``, ...).

    Returns:
        ``(tokenizer, samples, reward, settings)`` for :func:`textgym.registration.build_env`.

    Raises:
        ValueError: a split other than ``"test"`` or bad lengths.  TypeError: unknown argument.
    """
    return build_task(
        "textgym/HumanEval-v0", tokenizer=tokenizer, reward=reward, default_reward="code-exec", split=split,
        splits=("test",), samples=samples, kwargs=kwargs, defaults=HUMANEVAL_DEFAULTS,
        make_samples=lambda tok, p, fmt: humaneval_samples(),  # prompts are never cut
    )
