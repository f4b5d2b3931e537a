"""Token-level F1 as an ``evaluate`` metric, scored per sample (textgym built-in).

SQuAD's answer F1 (Rajpurkar et al., 2016, official evaluation script): the
harmonic mean of precision and recall of the multiset of whitespace tokens
after SQuAD normalisation; the best value over the references is kept.  When
the prediction or the reference has no token, F1 is 1 if both are empty and 0
otherwise (the SQuAD 2.0 script's convention for unanswerable questions).
"""

from collections import Counter

import evaluate

from textgym.rewards._text import squad_tokens
from textgym.rewards.metric_script import text_metric_info

_DESCRIPTION = "Per-sample SQuAD token F1 in [0, 1] (max over references)."

_INPUTS = """
Args:
    predictions: list of B strings.
    references: list of B lists of acceptable answers.
Returns:
    f1: mean over the batch; scores: list of B F1 values in [0, 1];
    precision_scores, recall_scores: the precision and recall of the best reference.
"""

_CITATION = """\
@inproceedings{rajpurkar2016squad, title={{SQuAD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy}, booktitle={EMNLP},
  year={2016}}
"""


def _prf(pred_tokens, ref_tokens):
    if not pred_tokens or not ref_tokens:
        same = float(pred_tokens == ref_tokens)
        return same, same, same
    overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if overlap == 0:
        return 0.0, 0.0, 0.0
    p = overlap / len(pred_tokens)
    r = overlap / len(ref_tokens)
    return p, r, 2 * p * r / (p + r)


class TokenF1(evaluate.Metric):
    """SQuAD-style token F1 per sample."""

    def _info(self):
        return text_metric_info(_DESCRIPTION, _CITATION, _INPUTS)

    def _compute(self, predictions, references):
        f1s, ps, rs = [], [], []
        for pred, refs in zip(predictions, references):
            pt = squad_tokens(pred)
            best = max((_prf(pt, squad_tokens(r)) for r in (list(refs) or [""])), key=lambda x: x[2])
            ps.append(best[0])
            rs.append(best[1])
            f1s.append(best[2])
        return {"f1": sum(f1s) / len(f1s) if f1s else 0.0, "scores": f1s, "precision_scores": ps,
                "recall_scores": rs}
