"""Synthetic algorithmic tasks, the CartPole of textgym: Copy, Reverse, Sort, Addition, TokenCount.

Ids: ``textgym/Copy-v0``, ``textgym/Reverse-v0``, ``textgym/Sort-v0``,
``textgym/Addition-v0``, ``textgym/TokenCount-v0``.  Each is small, fast and
has a known optimum, for testing agents in seconds.

* **Tokenizer**: by default the character tokenizer of the ``tiny-char``
  preset (one token per character of ``0-9 a-z`` space ``+-=*/,.:;?!()<>|#``;
  pad id 0, EOS id 1, unknown 2), so ``V = 57`` and one answer character is
  one action.  Any tokenizer works (``tokenizer=``).
* **Observation**: ``input_ids`` / ``attention_mask`` of shape ``(P + T,)``
  int64 (prompt left-padded in ``P`` slots, then the generated tokens).
* **Action**: the next token id in ``[0, V)``; EOS ends the answer.
* **Prompts -> answers**:

  =============  ==================  ===========  =================================
  task           prompt              answer       inputs
  =============  ==================  ===========  =================================
  Copy-v0        ``copy:k3x9=``      ``k3x9``     ``min_length..max_length`` of a-z0-9
  Reverse-v0     ``reverse:k3x9=``   ``9x3k``     as Copy
  Sort-v0        ``sort:3141=``      ``1134``     ``min_length..max_length`` digits
  Addition-v0    ``12+7=``           ``19``       two numbers of ``1..digits`` digits
  TokenCount-v0  ``count:5=``        any 5 tokens  ``1..max_count``
  =============  ==================  ===========  =================================

* **Reward** (at the episode end; optimum **1.0**, reached by emitting the
  answer then EOS): Copy/Reverse/Sort/Addition: per-character credit,
  ``#{i: completion[i] == answer[i]} / max(len(answer), len(completion))`` in
  ``[0, 1]`` (:class:`CharMatchReward`; ``dense=True`` pays it as per-step
  increments that sum to the same score).  TokenCount: ``2 ** -|n - k|`` in
  ``(0, 1]`` for ``n`` generated (non-special) tokens (:class:`TokenCountReward`).
  A uniformly random policy scores about 0.01 (Copy, Reverse, Sort,
  Addition) and 0.12 (TokenCount) on average.
* **Action mask** (optional): ``answer_alphabet_only=True`` (Copy, Reverse,
  Sort, Addition) builds the env with ``allowed_token_ids`` = the tokens of
  the answers' alphabet (``a-z0-9`` for Copy/Reverse, the digits for
  Sort/Addition) and EOS, so ``action_masks()`` lets a maskable agent
  (``sb3-maskable-ppo``) sample only those; any other token ends the episode
  with the score ``invalid_action_penalty`` (-1.0; :mod:`textgym.action_mask`).
* **Episode end**: EOS (terminated) or ``max_new_tokens`` (truncated).
  Defaults: ``max_new_tokens`` = longest answer + 2, ``max_prompt_length`` =
  longest prompt in characters + 2.
* **Data**: generated at construction from ``seed`` (default 0) with NumPy's
  PCG64, deterministic on every platform.  ``split="train"`` (default) or
  ``"test"``: an input belongs to a split by a SHA-256 hash of its prompt
  (~90% / ~10% of all inputs), so the splits are disjoint for every seed and
  size; ``num_samples`` (default 2000 train / 200 test, fewer if the input
  space is smaller) distinct prompts are drawn.  TokenCount holds out the
  counts ``k`` with ``k % 4 == 3`` for ``"test"`` (so it tests generalisation
  to unseen counts).  References: the answer (TokenCount: ``"x" * k``).
  License: generated data, no restrictions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import string
from collections.abc import Callable
from typing import Any

import numpy as np

from textgym.action_mask import token_ids_of
from textgym.envs._task import check_split, task_settings
from textgym.envs.common import resolve_tokenizer
from textgym.rewards.answer import CharMatchReward, TokenCountReward  # re-exported here

__all__ = [
    "CharMatchReward",
    "TokenCountReward",
    "synthetic_samples",
    "make_copy",
    "make_reverse",
    "make_sort",
    "make_addition",
    "make_token_count",
    "OPTIMAL_REWARD",
    "SPLITS",
]

OPTIMAL_REWARD = 1.0
SPLITS = ("train", "test")
DEFAULT_NUM_SAMPLES = {"train": 2000, "test": 200}
_ALNUM = string.ascii_lowercase + string.digits
_TASK_CODES = {"copy": 1, "reverse": 2, "sort": 3, "addition": 4, "token-count": 5}
_PREFIX = {"copy": "copy:", "reverse": "reverse:", "sort": "sort:"}
#: the characters of each task's answers (``answer_alphabet_only``)
_ANSWER_ALPHABET = {"copy": _ALNUM, "reverse": _ALNUM, "sort": string.digits, "addition": string.digits}


def _split_of(task: str, prompt: str) -> str:
    digest = hashlib.sha256(f"textgym-synthetic-v1\0{task}:{prompt}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 10 == 0 else "train"


Drawer = Callable[[np.random.Generator], tuple[str, str]]  # rng -> (prompt, answer)


def _drawer(task: str, min_length: int, max_length: int, digits: int) -> Drawer:
    def draw_string(rng: np.random.Generator, alphabet: str) -> str:
        n = int(rng.integers(min_length, max_length + 1))
        return "".join(alphabet[j] for j in rng.integers(0, len(alphabet), n))

    if task in ("copy", "reverse"):
        def draw(rng):
            s = draw_string(rng, _ALNUM)
            return f"{_PREFIX[task]}{s}=", s if task == "copy" else s[::-1]
    elif task == "sort":
        def draw(rng):
            s = draw_string(rng, string.digits)
            return f"sort:{s}=", "".join(sorted(s))
    elif task == "addition":
        def draw(rng):
            a, b = (int(x) for x in rng.integers(0, 10**digits, 2))
            return f"{a}+{b}=", str(a + b)
    else:  # pragma: no cover - guarded by synthetic_samples
        raise ValueError(task)
    return draw


def synthetic_samples(
    task: str,
    split: str = "train",
    num_samples: int | None = None,
    seed: int = 0,
    *,
    min_length: int = 3,
    max_length: int = 6,
    digits: int = 2,
    max_count: int = 8,
) -> list[dict[str, Any]]:
    """Generate the samples of a synthetic task, deterministically.

    Args:
        task: ``"copy"``, ``"reverse"``, ``"sort"``, ``"addition"`` or ``"token-count"``.
        split: ``"train"`` or ``"test"`` (disjoint by a hash of the prompt).
        num_samples: distinct prompts to draw (default 2000 train / 200 test);
            fewer when the split has fewer possible prompts.
        seed: the generator seed.
        min_length, max_length: input string lengths (copy, reverse, sort).
        digits: maximum digits of each addend (addition).
        max_count: largest count ``k`` (token-count).

    Returns:
        A list of dicts: ``prompt``, ``references`` (``[answer]``), ``answer``
        (and ``count`` for token-count).

    Raises:
        ValueError: unknown task or split, or bad sizes.
    """
    if task not in _TASK_CODES:
        raise ValueError(f"unknown synthetic task {task!r}; choose from {sorted(_TASK_CODES)}")
    check_split(split, SPLITS, f"synthetic task {task!r}")
    if task == "token-count":
        if max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        ks = [k for k in range(1, max_count + 1) if (k % 4 == 3) == (split == "test")]
        if not ks:
            raise ValueError(f"token-count split {split!r} is empty for max_count={max_count} (test holds k % 4 == 3)")
        return [{"prompt": f"count:{k}=", "references": ["x" * k], "answer": "x" * k, "count": k} for k in ks]
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}")
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    n = DEFAULT_NUM_SAMPLES[split] if num_samples is None else int(num_samples)
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    rng = np.random.default_rng([int(seed), _TASK_CODES[task], SPLITS.index(split)])
    draw = _drawer(task, min_length, max_length, digits)
    seen: dict[str, str] = {}
    misses = 0  # consecutive draws without a new sample: many means the split's input space is exhausted
    while len(seen) < n and misses < 5000:
        prompt, answer = draw(rng)
        if prompt in seen or _split_of(task, prompt) != split:
            misses += 1
            continue
        seen[prompt] = answer
        misses = 0
    if not seen:
        raise ValueError(f"synthetic task {task!r} produced no {split!r} samples; enlarge the input space")
    return [{"prompt": p, "references": [a], "answer": a} for p, a in seen.items()]


def _make(task: str, tokenizer: Any, reward: Any, split: str, samples: Any, kwargs: dict[str, Any],
          gen: dict[str, Any], prompt_chars: int, answer_chars: int, dense: bool, answer_alphabet_only: bool = False):
    task_id = {"copy": "Copy", "reverse": "Reverse", "sort": "Sort", "addition": "Addition",
               "token-count": "TokenCount"}[task]
    task_id = f"textgym/{task_id}-v0"
    # Special tokens stay in the scored text: a policy must not pad its answer with <pad>/<unk>,
    # which a plain decode would hide from the reward.
    settings = task_settings(task_id, kwargs, {"max_prompt_length": prompt_chars + 2,
                                               "max_new_tokens": answer_chars + 2,
                                               "skip_special_tokens": False})
    check_split(split, SPLITS, task_id)
    if tokenizer == "tiny-char":  # the preset's tokenizer, without importing torch via textgym.models
        from textgym.tokenizers import char_tokenizer

        tok = char_tokenizer()
    else:
        tok = resolve_tokenizer(tokenizer)
    if answer_alphabet_only:
        if settings.allowed_token_ids is not None:
            raise ValueError(f"{task_id}: give answer_alphabet_only=True or allowed_token_ids, not both")
        settings = dataclasses.replace(settings, allowed_token_ids=token_ids_of(tok, _ANSWER_ALPHABET[task]))
    if samples is None:
        samples = synthetic_samples(task, split, **gen)
    if reward is None:  # the task's default, built with the task's tokenizer and `dense`
        reward = "token-count" if task == "token-count" else "char-match"
    if reward == "token-count":
        reward = TokenCountReward(tok)
    elif reward == "char-match":
        reward = CharMatchReward(dense=dense)
    return tok, samples, reward, settings


def make_copy(tokenizer: Any = "tiny-char", reward: Any = None, split: str = "train", samples: Any = None, *,
              num_samples: int | None = None, seed: int = 0, min_length: int = 3, max_length: int = 6,
              dense: bool = False, answer_alphabet_only: bool = False, **kwargs: Any):
    """Factory of ``textgym/Copy-v0``; keyword arguments are ``gym.make`` overrides.

    Args:
        tokenizer: model name/path or tokenizer object (default ``"tiny-char"``).
        reward: reward name, object or callable (default :class:`CharMatchReward`).
        split: ``"train"`` or ``"test"``.
        samples: your own samples instead of generated ones.
        num_samples, seed, min_length, max_length: see :func:`synthetic_samples`.
        dense: per-step reward increments (:class:`CharMatchReward`).
        answer_alphabet_only: allow only the answer alphabet's tokens and EOS (``allowed_token_ids``;
            see the module docstring).
        **kwargs: env arguments (``max_new_tokens`` default ``max_length + 2``,
            ``max_prompt_length`` default ``max_length + 8``, ...).

    Returns:
        ``(tokenizer, samples, reward, settings)`` for :func:`textgym.registration.build_env`.

    Raises:
        ValueError: bad split or sizes.  TypeError: unknown argument.
    """
    gen = dict(num_samples=num_samples, seed=seed, min_length=min_length, max_length=max_length)
    return _make("copy", tokenizer, reward, split, samples, kwargs, gen, len("copy:=") + max_length, max_length, dense,
                 answer_alphabet_only)


def make_reverse(tokenizer: Any = "tiny-char", reward: Any = None, split: str = "train", samples: Any = None, *,
                 num_samples: int | None = None, seed: int = 0, min_length: int = 3, max_length: int = 6,
                 dense: bool = False, answer_alphabet_only: bool = False, **kwargs: Any):
    """Factory of ``textgym/Reverse-v0``: as :func:`make_copy`, the answer is the input reversed."""
    gen = dict(num_samples=num_samples, seed=seed, min_length=min_length, max_length=max_length)
    return _make("reverse", tokenizer, reward, split, samples, kwargs, gen, len("reverse:=") + max_length,
                 max_length, dense, answer_alphabet_only)


def make_sort(tokenizer: Any = "tiny-char", reward: Any = None, split: str = "train", samples: Any = None, *,
              num_samples: int | None = None, seed: int = 0, min_length: int = 3, max_length: int = 6,
              dense: bool = False, answer_alphabet_only: bool = False, **kwargs: Any):
    """Factory of ``textgym/Sort-v0``: as :func:`make_copy` on digit strings, the answer sorted ascending."""
    gen = dict(num_samples=num_samples, seed=seed, min_length=min_length, max_length=max_length)
    return _make("sort", tokenizer, reward, split, samples, kwargs, gen, len("sort:=") + max_length, max_length, dense,
                 answer_alphabet_only)


def make_addition(tokenizer: Any = "tiny-char", reward: Any = None, split: str = "train", samples: Any = None, *,
                  num_samples: int | None = None, seed: int = 0, digits: int = 2, dense: bool = False,
                  answer_alphabet_only: bool = False, **kwargs: Any):
    """Factory of ``textgym/Addition-v0``: ``"a+b="`` -> ``str(a + b)`` with ``a, b < 10 ** digits``.

    Other arguments as :func:`make_copy`; ``max_new_tokens`` defaults to ``digits + 3``.
    """
    gen = dict(num_samples=num_samples, seed=seed, digits=digits)
    return _make("addition", tokenizer, reward, split, samples, kwargs, gen, 2 * digits + 2, digits + 1, dense,
                 answer_alphabet_only)


def make_token_count(tokenizer: Any = "tiny-char", reward: Any = None, split: str = "train", samples: Any = None, *,
                     max_count: int = 8, **kwargs: Any):
    """Factory of ``textgym/TokenCount-v0``: ``"count:k="`` -> exactly ``k`` tokens, then EOS.

    Args:
        max_count: largest ``k`` (train: ``k`` in ``1..max_count`` with
            ``k % 4 != 3``; test: ``k % 4 == 3``).
        reward: default :class:`TokenCountReward` counting with the env's tokenizer.
        Others as :func:`make_copy`; ``max_new_tokens`` defaults to ``max_count + 2``.
    """
    gen = dict(max_count=max_count)
    return _make("token-count", tokenizer, reward, split, samples, kwargs, gen, len("count:=") + len(str(max_count)),
                 max_count, False)
