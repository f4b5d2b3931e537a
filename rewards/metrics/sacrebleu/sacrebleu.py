"""SacreBLEU as an ``evaluate`` metric, scored per sentence (textgym built-in).

Reports BLEU (Papineni et al., 2002) exactly as sacrebleu does (Post, 2018,
"A Call for Clarity in Reporting BLEU Scores"): on a 0-100 scale, with
sacrebleu's tokenizers ('13a', 'intl', 'zh', 'ja-mecab', 'char', 'none', ...),
exponential smoothing by default and effective order for sentence scores.
"""

import evaluate
from sacrebleu.metrics import BLEU

from textgym.rewards.metric_script import text_metric_info

_DESCRIPTION = "Sentence-level SacreBLEU (0-100) per prediction plus the corpus score and its signature."

_INPUTS = """
Args:
    predictions: list of B hypothesis strings.
    references: list of B lists of reference strings.
    tokenize: sacrebleu tokenizer name (default '13a').
    lowercase: case-insensitive scoring (default False).
    smooth_method / smooth_value: sacrebleu smoothing (default 'exp').
Returns:
    score: corpus BLEU (0-100); signature: sacrebleu's reproducibility signature;
    scores: list of B sentence BLEU values (0-100).
"""

_CITATION = """\
@inproceedings{post2018call, title={A Call for Clarity in Reporting {BLEU} Scores}, author={Post, Matt},
  booktitle={Proceedings of the Third Conference on Machine Translation}, year={2018}}
"""


class SacreBleu(evaluate.Metric):
    """sacrebleu's BLEU, per sentence and per corpus."""

    def _info(self):
        return text_metric_info(_DESCRIPTION, _CITATION, _INPUTS)

    def _compute(self, predictions, references, tokenize="13a", lowercase=False, smooth_method="exp",
                 smooth_value=None):
        refs = [list(r) or [""] for r in references]
        sentence = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method,
                        smooth_value=smooth_value, effective_order=True)
        scores = [sentence.sentence_score(p, r).score for p, r in zip(predictions, refs)]
        corpus = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method, smooth_value=smooth_value)
        width = max((len(r) for r in refs), default=1)
        streams = [[r[i] if i < len(r) else None for r in refs] for i in range(width)]
        result = corpus.corpus_score(list(predictions), streams)
        return {"score": result.score, "signature": str(corpus.get_signature()), "scores": scores}
