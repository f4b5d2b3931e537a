"""Reward functions for text generation, and the reward registry.

A reward function is a batched callable::

    reward_fn(prompts: list[str], completions: list[str], *,
              references: list[list[str]] | None = None, **columns) -> np.ndarray  # (B,) float32

(or ``(scores, components)`` with a dict of ``(B,)`` arrays to log).  Plain
per-sample functions ``f(prompt, completion, **kw) -> float`` are wrapped by
:func:`as_reward_function`.  The protocol and registry live in
:mod:`textgym.reward_api`; this package re-exports them and registers the
built-ins::

    import textgym.rewards as R
    R.list()                      # names of all registered rewards
    bleu = R.make("bleu")         # a BLEUReward
    scores, comps = R.call_reward(bleu, prompts, completions, references=refs)

    @R.register("shouting")
    def shouting(prompt, completion):
        return sum(c.isupper() for c in completion) / max(len(completion), 1)

Importing this package is cheap: ``evaluate``, ``torch`` and ``transformers``
are imported only when a reward that needs them is built.  See
``REWARDS_TABLE.md`` for the list of built-ins.
"""

from __future__ import annotations

import functools

from textgym.reward_api import (
    DenseRewardFunction,
    FunctionReward,
    RewardError,
    RewardFunction,
    as_reward_function,
    call_reward,
    list_rewards,
    make,
    register,
)

from ._text import clean_text
from .answer import CharMatchReward, TokenCountReward
from .code_exec import CodeExecutionReward, ExecutionResult, SandboxUnavailable
from .combine import RunningNormalizer, WeightedSum
from .metric import (
    BLEUReward,
    ChrFReward,
    EvaluateReward,
    ExactMatchReward,
    METEORReward,
    ROUGEReward,
    SacreBLEUReward,
    TokenF1Reward,
    load_metric,
    metric_path,
)
from .model import ClassifierReward, RewardModelReward, SentimentReward, VaderSentimentReward
from .ray_workers import RayRewardWorkers
from .rules import ConstantReward, KeywordCoverageReward, LengthReward, RegexReward, RepetitionPenalty

__all__ = [
    # protocol and registry
    "RewardFunction", "DenseRewardFunction", "FunctionReward", "RewardError", "as_reward_function",
    "call_reward", "register", "make", "list_rewards",  # `list` is left out so `import *` keeps the builtin
    # metrics
    "EvaluateReward", "load_metric", "metric_path", "BLEUReward", "SacreBLEUReward", "ChrFReward",
    "ROUGEReward", "METEORReward", "ExactMatchReward", "TokenF1Reward",
    # models
    "ClassifierReward", "RewardModelReward", "SentimentReward", "VaderSentimentReward",
    # code, rules, combinators
    "CodeExecutionReward", "ExecutionResult", "SandboxUnavailable", "LengthReward", "RepetitionPenalty", "RegexReward",
    "KeywordCoverageReward", "ConstantReward", "WeightedSum", "RunningNormalizer",
    # where a reward runs: a copy on each of N Ray actors (optional dependency: textgym[ray])
    "RayRewardWorkers",
    # answers of the synthetic tasks
    "CharMatchReward", "TokenCountReward",
    # the text cleaning every reward applies to a completion (control characters, whitespace)
    "clean_text",
]  # fmt: skip

BUILTINS = {
    "bleu": BLEUReward,
    "sacrebleu": SacreBLEUReward,
    "chrf": ChrFReward,
    "rouge1": functools.partial(ROUGEReward, variant="rouge1"),
    "rouge2": functools.partial(ROUGEReward, variant="rouge2"),
    "rougeL": functools.partial(ROUGEReward, variant="rougeL"),
    "meteor": METEORReward,
    "exact-match": ExactMatchReward,
    "token-f1": TokenF1Reward,
    "classifier": ClassifierReward,
    "reward-model": RewardModelReward,
    "sentiment": SentimentReward,
    "sentiment-vader": VaderSentimentReward,
    "code-exec": CodeExecutionReward,
    "length": LengthReward,
    "repetition": RepetitionPenalty,
    "regex": RegexReward,
    "keyword-coverage": KeywordCoverageReward,
    "constant": ConstantReward,
    "char-match": CharMatchReward,
    "token-count": TokenCountReward,
}
"""Registered name -> factory of every built-in reward."""


for _name, _factory in BUILTINS.items():
    register(_name, _factory)  # a re-import (importlib.reload) replaces our own entries
del _name, _factory


def list() -> list[str]:  # noqa: A001 - the public name is `list`
    """Sorted names of all registered rewards (built-ins and user-registered).

    Same as :func:`textgym.reward_api.list_rewards`; named ``list`` so that
    ``textgym.rewards.list()`` reads like ``gymnasium.registry`` listings.
    """
    return list_rewards()
