"""Exact match as an ``evaluate`` metric, scored per sample (textgym built-in).

A prediction scores 1 when it equals one of its references after SQuAD
normalisation (lowercase, no punctuation, no articles a/an/the, collapsed
whitespace; Rajpurkar et al., 2016, "SQuAD: 100,000+ Questions for Machine
Comprehension of Text", official evaluation script), else 0.
"""

import evaluate

from textgym.rewards._text import squad_normalize
from textgym.rewards.metric_script import text_metric_info

_DESCRIPTION = "Per-sample exact match (0 or 1) after SQuAD answer normalisation."

_INPUTS = """
Args:
    predictions: list of B strings.
    references: list of B lists of acceptable answers.
    normalize: apply SQuAD normalisation (default True); False compares after stripping outer whitespace.
Returns:
    exact_match: mean over the batch; scores: list of B values in {0, 1}.
"""

_CITATION = """\
@inproceedings{rajpurkar2016squad, title={{SQuAD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy}, booktitle={EMNLP},
  year={2016}}
"""


class ExactMatch(evaluate.Metric):
    """SQuAD-style exact match per sample."""

    def _info(self):
        return text_metric_info(_DESCRIPTION, _CITATION, _INPUTS)

    def _compute(self, predictions, references, normalize=True):
        norm = squad_normalize if normalize else str.strip
        scores = []
        for pred, refs in zip(predictions, references):
            p = norm(pred)
            scores.append(float(any(p == norm(r) for r in (list(refs) or [""]))))
        return {"exact_match": sum(scores) / len(scores) if scores else 0.0, "scores": scores}
