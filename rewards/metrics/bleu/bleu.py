"""BLEU as an ``evaluate`` metric, scored per sentence (textgym built-in).

BLEU (Papineni et al., 2002, "BLEU: a Method for Automatic Evaluation of
Machine Translation") is the geometric mean of clipped n-gram precisions
(n = 1..max_order) times a brevity penalty.  Counting is done by sacrebleu
(Post, 2018, "A Call for Clarity in Reporting BLEU Scores"); sentence scores
use *effective order* (orders with no n-gram in the hypothesis are left out)
and a smoothing method for zero counts (Chen & Cherry, 2014, "A Systematic
Comparison of Smoothing Techniques for Sentence-Level BLEU").
"""

import evaluate
from sacrebleu.metrics import BLEU

from textgym.rewards.metric_script import text_metric_info

_DESCRIPTION = "Sentence-level BLEU in [0, 1] per prediction, plus corpus BLEU, computed with sacrebleu."

_INPUTS = """
Args:
    predictions: list of B hypothesis strings.
    references: list of B lists of reference strings (at least one each).
    max_order: highest n-gram order (default 4).
    smooth_method: 'exp' (default), 'floor', 'add-k' or 'none' (sacrebleu names).
    smooth_value: value for 'floor' / 'add-k' (sacrebleu defaults when None).
    tokenize: sacrebleu tokenizer, default '13a' (mteval-v13a).
    lowercase: lowercase before counting (default False).
Returns:
    bleu: corpus BLEU in [0, 1];
    scores: list of B sentence BLEU values in [0, 1].
"""

_CITATION = """\
@inproceedings{papineni2002bleu, title={BLEU: a Method for Automatic Evaluation of Machine Translation},
  author={Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing}, booktitle={ACL}, year={2002}}
"""


class Bleu(evaluate.Metric):
    """Per-sentence BLEU (0-1) on top of sacrebleu."""

    def _info(self):
        return text_metric_info(_DESCRIPTION, _CITATION, _INPUTS)

    def _compute(self, predictions, references, max_order=4, smooth_method="exp", smooth_value=None,
                 tokenize="13a", lowercase=False):
        refs = [list(r) or [""] for r in references]
        sentence = BLEU(max_ngram_order=max_order, smooth_method=smooth_method, smooth_value=smooth_value,
                        tokenize=tokenize, lowercase=lowercase, effective_order=True)
        scores = [sentence.sentence_score(p, r).score / 100.0 for p, r in zip(predictions, refs)]
        corpus = BLEU(max_ngram_order=max_order, smooth_method=smooth_method, smooth_value=smooth_value,
                      tokenize=tokenize, lowercase=lowercase)
        width = max((len(r) for r in refs), default=1)
        streams = [[r[i] if i < len(r) else None for r in refs] for i in range(width)]
        corpus_score = corpus.corpus_score(list(predictions), streams).score / 100.0 if refs else 0.0
        return {"bleu": corpus_score, "scores": scores}
