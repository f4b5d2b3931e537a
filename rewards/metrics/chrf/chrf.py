"""chrF / chrF++ as an ``evaluate`` metric, scored per sentence (textgym built-in).

chrF (Popovic, 2015, "chrF: character n-gram F-score for automatic MT
evaluation") is the F-beta score (beta = 2 weights recall twice as much as
precision) of character n-gram precision and recall averaged over n = 1..6;
chrF++ (Popovic, 2017) adds word uni- and bigrams (``word_order=2``).  Counting
by sacrebleu's ``CHRF``; whitespace is ignored by default.
"""

import evaluate
from sacrebleu.metrics import CHRF

from textgym.rewards.metric_script import text_metric_info

_DESCRIPTION = "Sentence-level chrF in [0, 1] per prediction plus the corpus chrF, computed with sacrebleu."

_INPUTS = """
Args:
    predictions: list of B hypothesis strings.
    references: list of B lists of reference strings.
    char_order: character n-gram order (default 6).
    word_order: word n-gram order (0 = chrF, 2 = chrF++).
    beta: recall weight (default 2).
    lowercase: case-insensitive scoring (default False).
    whitespace: include whitespace in character n-grams (default False).
Returns:
    chrf: corpus chrF in [0, 1]; scores: list of B sentence chrF values in [0, 1].
"""

_CITATION = """\
@inproceedings{popovic2015chrf, title={chr{F}: character n-gram {F}-score for automatic {MT} evaluation},
  author={Popovi{\\'c}, Maja}, booktitle={Proceedings of the Tenth Workshop on Statistical Machine Translation},
  year={2015}}
"""


class ChrF(evaluate.Metric):
    """Per-sentence chrF (0-1) on top of sacrebleu."""

    def _info(self):
        return text_metric_info(_DESCRIPTION, _CITATION, _INPUTS)

    def _compute(self, predictions, references, char_order=6, word_order=0, beta=2, lowercase=False,
                 whitespace=False):
        refs = [list(r) or [""] for r in references]
        metric = CHRF(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase,
                      whitespace=whitespace)
        scores = [metric.sentence_score(p, r).score / 100.0 for p, r in zip(predictions, refs)]
        width = max((len(r) for r in refs), default=1)
        streams = [[r[i] if i < len(r) else None for r in refs] for i in range(width)]
        corpus = metric.corpus_score(list(predictions), streams).score / 100.0 if refs else 0.0
        return {"chrf": corpus, "scores": scores}
