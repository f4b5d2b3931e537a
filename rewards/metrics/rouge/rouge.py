"""ROUGE-N and ROUGE-L as an ``evaluate`` metric, scored per sample (textgym built-in).

ROUGE (Lin, 2004, "ROUGE: A Package for Automatic Evaluation of Summaries"):
ROUGE-N is the F-measure of n-gram overlap, ROUGE-L the F-measure based on the
longest common subsequence, ROUGE-Lsum the summary-level LCS over newline-split
sentences.  Computed with Google's ``rouge-score`` package (lowercasing,
non-alphanumeric characters as separators, optional Porter stemming); with
several references a sample gets the best F-measure over them.
"""

import evaluate
from rouge_score import rouge_scorer

from textgym.rewards.metric_script import text_metric_info

_DESCRIPTION = "Per-sample ROUGE F-measures in [0, 1] and their means, computed with rouge-score."

_INPUTS = """
Args:
    predictions: list of B strings.
    references: list of B lists of reference strings.
    rouge_types: any of 'rouge1'..'rouge9', 'rougeL', 'rougeLsum' (default rouge1, rouge2, rougeL).
    use_stemmer: Porter-stem tokens before matching (default False).
Returns:
    for each type T: T (mean F-measure over the batch) and T_scores (list of B F-measures),
    T_precision_scores and T_recall_scores.
"""

_CITATION = """\
@inproceedings{lin2004rouge, title={{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author={Lin, Chin-Yew}, booktitle={Text Summarization Branches Out}, year={2004}}
"""

_SCORERS = {}


class Rouge(evaluate.Metric):
    """Per-sample ROUGE on top of rouge-score."""

    def _info(self):
        return text_metric_info(_DESCRIPTION, _CITATION, _INPUTS)

    def _compute(self, predictions, references, rouge_types=("rouge1", "rouge2", "rougeL"), use_stemmer=False):
        rouge_types = tuple(rouge_types)
        key = (rouge_types, bool(use_stemmer))
        if key not in _SCORERS:
            _SCORERS[key] = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
        scorer = _SCORERS[key]
        per = {t: ([], [], []) for t in rouge_types}
        for pred, refs in zip(predictions, references):
            result = scorer.score_multi(list(refs) or [""], pred)
            for t in rouge_types:
                per[t][0].append(float(result[t].fmeasure))
                per[t][1].append(float(result[t].precision))
                per[t][2].append(float(result[t].recall))
        out = {}
        for t, (f, p, r) in per.items():
            out[t] = sum(f) / len(f) if f else 0.0
            out[f"{t}_scores"] = f
            out[f"{t}_precision_scores"] = p
            out[f"{t}_recall_scores"] = r
        return out
