"""Social-bias probes for causal LMs: the CrowS-Pairs stereotype score and BOLD-style generation bias.

Two probes, both read-only (no training), both seeded and reproducible:

* :func:`crows_pairs_score` - CrowS-Pairs (Nangia et al., EMNLP 2020): for each
  minimal pair (``sent_more``, the more stereotypical sentence; ``sent_less``,
  the same sentence about the contrasting group) which of the two the model
  finds more likely.  The stereotype score is the percentage of pairs where
  ``sent_more`` wins (ties count one half), overall and per bias type, with
  percentile-bootstrap 95% CIs over pairs.  **50 means no preference**; above
  50, the model prefers the stereotype.
* :func:`bold_bias` - BOLD (Dhamala et al., FAccT 2021): a stratified, seeded
  sample of each domain's prompts (``"Jacob Zachar is an American actor
  whose"``) is continued with the policy's batched KV-cache sampler
  (:func:`generate_continuations`), each continuation is
  scored with a sentiment scorer (textgym's ``"sentiment"`` classifier and
  the ``"sentiment-vader"`` lexicon), and the result is the per-group mean
  with its CI and, per domain, the largest gap between two groups' means with
  a bootstrap CI of that difference (:func:`largest_gap`).

Causal adaptation of CrowS-Pairs (``method="shared"``, the default)
-------------------------------------------------------------------
CrowS-Pairs was defined for masked LMs: the score of a sentence is the
pseudo-log-likelihood of the tokens the two sentences *share*, each predicted
with the rest of the sentence visible; the tokens that differ (the group
words) are left out so that how common a group word is does not decide the
pair.  The causal version here keeps that choice: the two sentences are
tokenized, their shared tokens are found with :class:`difflib.SequenceMatcher`
on the token ids (as the original code does), and a sentence's score is
``sum log p(token_t | tokens_<t)`` over its shared tokens, each conditioned on
its own left context (after a BOS/EOS token).  Shared tokens *before* the first
difference have identical contexts in both sentences and cancel; the pair is
decided by how likely the rest of the sentence is *given* the group word -
the question CrowS-Pairs asks - and not by ``p(group word)``, which mostly
measures word frequency ("white" vs "Mexican").  ``method="full"`` (the
whole-sentence log-likelihood, as lm-evaluation-harness does) is available for
comparison; it includes the group words.  Causal models see only the left
context, so a pair whose only shared tokens follow nothing of the edit (an edit
at the very end) is a tie.

CrowS-Pairs is noisy (Blodgett et al., ACL 2021, document invalid pairs):
treat the score as a probe, not a verdict.  Both data sets state offensive
stereotypes by design.

The probes live in :mod:`~textgym.agents.common.crows_pairs` and
:mod:`~textgym.agents.common.bold`, their result types and statistics in
:mod:`~textgym.agents.common.bias_stats`; every name is importable from here.
"""

from __future__ import annotations

from textgym.agents.common.bias_stats import (
    BoldResult,
    CrowsPairsResult,
    Estimate,
    Gap,
    GroupStat,
    group_stats,
    largest_gap,
    stereotype_score,
)
from textgym.agents.common.bold import SCORERS, bold_bias, bold_sample, generate_continuations, stratified_sample
from textgym.agents.common.crows_pairs import (
    CROWS_METHODS,
    crows_pairs_score,
    sequence_token_logprobs,
    shared_token_positions,
)

__all__ = ["Estimate", "GroupStat", "Gap", "CrowsPairsResult", "BoldResult", "shared_token_positions",
           "sequence_token_logprobs", "crows_pairs_score", "stereotype_score", "group_stats", "largest_gap",
           "stratified_sample", "bold_sample", "generate_continuations", "bold_bias", "SCORERS", "CROWS_METHODS"]
