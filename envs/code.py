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

from textgym.envs._task import check_split, cut_words, define_factory, fit_split

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
    """Samples of ``textgym/MBPP-v0`` of ``split`` (``"train"``, ``"validation"``, ``"test"`` or ``"prompt"``).

    A problem text is cut to fit ``max_prompt_length`` tokens of ``tokenizer`` after ``prompt_format``.

    Returns:
        A list of dicts: ``prompt``, ``references`` (``[code]``), ``text`` (the
        problem as shown), ``test_list`` (list of assert strings),
        ``test_setup_code`` (str), ``task_id`` (int).

    Raises:
        ValueError: unknown split.
    """
    check_split(split, MBPP_SPLITS, "textgym/MBPP-v0")

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

    return fit_split("mbpp", split, build, "text", tokenizer, max_prompt_length, prompt_format)


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


make_mbpp = define_factory(
    "textgym/MBPP-v0", "make_mbpp", mbpp_samples, default_reward="code-exec", splits=MBPP_SPLITS,
    defaults=MBPP_DEFAULTS, reward_note="; pass ``CodeExecutionReward(timeout=..., workers=...)`` to tune it",
    split_doc='``"train"`` (374), ``"validation"`` (90), ``"test"`` (500) or ``"prompt"`` (10)',
    samples_doc="your own samples (``prompt`` and ``test_list`` columns) instead of the data",
)
make_humaneval = define_factory(
    "textgym/HumanEval-v0", "make_humaneval", lambda split, tok, p, fmt: humaneval_samples(),  # never cut
    default_reward="code-exec", splits=("test",), defaults=HUMANEVAL_DEFAULTS, default_split="test",
    split_doc='only ``"test"`` (164 problems; evaluation only)',
    samples_doc="your own samples (``prompt``, ``test``, ``entry_point`` columns)",
)
