"""Model-based rewards: sequence classifiers, learned reward models, sentiment.

``torch`` and ``transformers`` are imported when a model reward is built, not
when ``textgym.rewards`` is imported.  Models given by path are loaded with
``local_files_only=True`` (no Hub access).

Texts are tokenised without padding, truncated to ``max_length`` tokens, and
padded on the right by this module; an input with no tokens at all (an empty
completion with a tokenizer that adds no special tokens) gets one token (BOS,
CLS, EOS, UNK or PAD, the first that exists) so that every sample has a
defined score.  For decoder-style heads (a ``score`` layer on the last token,
e.g. ``LlamaForSequenceClassification``, ``GPT2ForSequenceClassification``),
the score is read at the last *real* token found from the attention mask,
not from ``pad_token_id``: transformers locates that token by searching for
the pad id, which goes wrong when pad == EOS and the text ends with EOS.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from textgym.reward_api import RewardFunction

from ._text import clean_text

__all__ = ["ClassifierReward", "RewardModelReward", "SentimentReward", "VaderSentimentReward",
           "default_sentiment_model_dir", "SENTIMENT_MODEL_NAME"]


def _load(model: Any, tokenizer: Any, device: Any):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"model path {path!r} is not a directory; pass a local Hugging Face model directory "
                "(config.json + weights) or a model object"
            )
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    elif not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a path or a transformers model, got {type(model).__name__}")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(tokenizer), local_files_only=True)
    if tokenizer is None:
        raise ValueError("a model object needs tokenizer= (a transformers tokenizer or a path to one)")
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


class ClassifierReward(RewardFunction):
    """Probability (or logit) of one label of any ``AutoModelForSequenceClassification``.

    Args:
        model: a local model directory or a loaded sequence-classification model.
        tokenizer: the tokenizer (object or path); default: loaded from ``model``'s path.
        label: which output: an index or a label name from ``config.id2label``
            (case-insensitive).
        output: ``"prob"`` (softmax over the labels; sigmoid for one label or
            multi-label models) in [0, 1], or ``"logit"`` (raw, unbounded).
        text: what is classified: ``"completion"``, ``"prompt+completion"``
            (concatenated), ``"pair"`` (tokenizer text pair) or a callable
            ``(prompt, completion) -> str``.
        batch_size: texts per forward pass.
        max_length: tokens per text after truncation (capped at the model's
            ``max_position_embeddings``).
        truncation: ``"right"`` (keep the start), ``"left"`` (keep the end) or
            ``False`` (no truncation; inputs longer than the model supports fail).
        device: move the model there (default: leave it where it is).
        name: name for logs.

    Returns (when called): ``(B,)`` float32.

    Raises:
        ValueError: unknown label name or index, bad ``output``/``text``/``truncation``.
        FileNotFoundError: ``model`` path does not exist.
    """

    name = "classifier"

    def __init__(self, model: Any, tokenizer: Any = None, *, label: int | str = 1, output: str = "prob",
                 text: str | Callable[[str, str], str] = "completion", batch_size: int = 32,
                 max_length: int = 512, truncation: str | bool = "right", device: Any = None,
                 name: str | None = None):
        if output not in ("prob", "logit"):
            raise ValueError(f"output must be 'prob' or 'logit', got {output!r}")
        if not callable(text) and text not in ("completion", "prompt+completion", "pair"):
            raise ValueError(f"text must be 'completion', 'prompt+completion', 'pair' or a callable, got {text!r}")
        if truncation not in ("right", "left", False):
            raise ValueError(f"truncation must be 'right', 'left' or False, got {truncation!r}")
        self.model, self.tokenizer = _load(model, tokenizer, device)
        self.label_index = self._resolve_label(label)
        self.output = output
        self.text = text
        self.batch_size = max(1, int(batch_size))
        self.max_length = int(max_length)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 0:
            self.max_length = min(self.max_length, limit)  # never feed more positions than the model has
        self.truncation = truncation
        if name:
            self.name = name
        self._lock = threading.Lock()

    def _resolve_label(self, label: int | str) -> int:
        config = self.model.config
        n = int(config.num_labels)
        if isinstance(label, str):
            names = {str(v).lower(): int(k) for k, v in (config.id2label or {}).items()}
            if label.lower() not in names:
                raise ValueError(f"unknown label {label!r}; the model's labels are {dict(config.id2label)}")
            return names[label.lower()]
        if not 0 <= int(label) < n:
            raise ValueError(f"label index {label} out of range for a model with {n} labels {dict(config.id2label)}")
        return int(label)

    # ------------------------------------------------------------------ encoding

    def _texts(self, prompts: Sequence[str], completions: Sequence[str]):
        c = [clean_text(x) for x in completions]
        if self.text == "completion":
            return c, None
        p = [clean_text(x) for x in prompts]
        if self.text == "pair":
            return p, c
        if callable(self.text):
            return [clean_text(self.text(a, b)) for a, b in zip(p, c)], None
        return [a + b for a, b in zip(p, c)], None

    def _fallback_id(self) -> int:
        tok = self.tokenizer
        for attr in ("bos_token_id", "cls_token_id", "eos_token_id", "unk_token_id", "pad_token_id"):
            value = getattr(tok, attr, None)
            if value is not None:
                return int(value)
        return 0

    def _encode(self, first: list[str], second: list[str] | None):
        import torch

        max_chars = self.max_length * 32  # a token is rarely longer; bounds tokenizer time on huge inputs
        if self.truncation == "left":
            first = [t[-max_chars:] for t in first]
        elif self.truncation == "right":
            first = [t[:max_chars] for t in first]
        kwargs: dict[str, Any] = {"padding": False, "truncation": bool(self.truncation)}
        if self.truncation:
            kwargs["max_length"] = self.max_length
        tok = self.tokenizer
        with self._lock:
            old_side = getattr(tok, "truncation_side", None)
            if self.truncation and old_side is not None:
                tok.truncation_side = self.truncation
            try:
                enc = tok(first, second, **kwargs) if second is not None else tok(first, **kwargs)
            finally:
                if old_side is not None:
                    tok.truncation_side = old_side
        ids = [list(x) or [self._fallback_id()] for x in enc["input_ids"]]
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else self._fallback_id()
        input_ids = torch.full((len(ids), width), int(pad), dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return input_ids, mask

    def _logits(self, input_ids, mask):
        """``(b, num_labels)`` logits, read at the last real token for decoder-style heads."""
        import torch

        model = self.model
        device = next(model.parameters()).device
        input_ids, mask = input_ids.to(device), mask.to(device)
        head = getattr(model, "score", None)
        base = getattr(model, getattr(model, "base_model_prefix", ""), None)
        if isinstance(head, torch.nn.Module) and isinstance(base, torch.nn.Module) and base is not model:
            hidden = base(input_ids=input_ids, attention_mask=mask).last_hidden_state
            last = mask.sum(dim=1) - 1  # right padding: index of the last real token
            pooled = hidden[torch.arange(hidden.shape[0], device=device), last]
            return head(pooled).float()
        return model(input_ids=input_ids, attention_mask=mask).logits.float()

    def score(self, prompts, completions, *, references=None, **columns):
        import torch

        b = len(completions)
        if b == 0:
            return np.zeros(0, np.float32)
        first, second = self._texts(prompts, completions)
        out = np.empty(b, np.float32)
        multi = getattr(self.model.config, "problem_type", None) == "multi_label_classification"
        with torch.inference_mode():
            for start in range(0, b, self.batch_size):
                stop = min(start + self.batch_size, b)
                ids, mask = self._encode(first[start:stop], None if second is None else second[start:stop])
                logits = self._logits(ids, mask)
                if self.output == "logit":
                    values = logits[:, self.label_index]
                elif logits.shape[1] == 1 or multi:
                    values = torch.sigmoid(logits[:, self.label_index])
                else:
                    values = torch.softmax(logits, dim=-1)[:, self.label_index]
                out[start:stop] = values.cpu().numpy()
        return out


class RewardModelReward(ClassifierReward):
    """Scalar score of a learned reward model (e.g. one saved by textgym's reward-model trainer).

    The model is a Hugging Face sequence-classification model with a single
    output (``num_labels=1``) trained with the Bradley-Terry pairwise loss
    (Bradley & Terry, 1952; Ouyang et al., 2022); its raw logit is the reward.
    For decoder models the score is read at the last real token of
    ``prompt + completion`` (attention mask, not ``pad_token_id``).

    Args:
        model: a local model directory or a loaded model (``num_labels == 1``).
        tokenizer: tokenizer or its path (default: from the model directory).
        text: as in :class:`ClassifierReward`; default ``"prompt+completion"``.
        append_eos: append the tokenizer's EOS token text to each input
            (match how the reward model was trained).
        truncation: default ``"left"``, keeping the end of long inputs (the
            completion), where the score is read.
        batch_size, max_length, device, name: as in :class:`ClassifierReward`.

    Returns (when called): ``(B,)`` float32 logits (unbounded; normalise with
    :class:`textgym.rewards.RunningNormalizer` if needed).

    Raises:
        ValueError: the model has more than one output.
    """

    name = "reward-model"

    def __init__(self, model: Any, tokenizer: Any = None, *,
                 text: str | Callable[[str, str], str] = "prompt+completion",
                 append_eos: bool = False, batch_size: int = 16, max_length: int = 1024,
                 truncation: str | bool = "left", device: Any = None, name: str | None = None):
        super().__init__(model, tokenizer, label=0, output="logit", text=text, batch_size=batch_size,
                         max_length=max_length, truncation=truncation, device=device, name=name)
        if int(self.model.config.num_labels) != 1:
            raise ValueError(
                f"RewardModelReward needs a model with a single scalar output (num_labels=1), this one has "
                f"{self.model.config.num_labels} labels; use ClassifierReward(model, label=...) instead"
            )
        self.append_eos = append_eos

    def _texts(self, prompts, completions):
        first, second = super()._texts(prompts, completions)
        eos = getattr(self.tokenizer, "eos_token", None)
        if self.append_eos and eos:
            if second is not None:
                second = [t + eos for t in second]
            else:
                first = [t + eos for t in first]
        return first, second


#: Folder name, under ``textgym.models.cache_dir() / "models"``, of textgym's trained sentiment classifier.
SENTIMENT_MODEL_NAME = "sentiment-minilm"
#: Environment variable that points the ``"sentiment"`` reward at another classifier directory.
SENTIMENT_MODEL_ENV = "TEXTGYM_SENTIMENT_MODEL"


def default_sentiment_model_dir():
    """Directory of the classifier the ``"sentiment"`` reward loads when given no ``model=`` (a ``pathlib.Path``;
    it may not exist yet): ``$TEXTGYM_SENTIMENT_MODEL`` if set, else ``textgym.models.cache_dir() / "models" /
    "sentiment-minilm"``, where ``textgym.agents.trainers.sentiment_classifier`` caches the classifier it trains."""
    import os
    from pathlib import Path

    from textgym.models import cache_dir

    override = os.environ.get(SENTIMENT_MODEL_ENV)
    return Path(override).expanduser() if override else cache_dir() / "models" / SENTIMENT_MODEL_NAME


class SentimentReward(ClassifierReward):
    """P(positive) from a sentiment classifier, registered as ``"sentiment"``.

    A :class:`ClassifierReward` whose label defaults to the positive class:
    the first label whose name contains ``"pos"`` (``POSITIVE``,
    ``positive``...), else index 1.  Without ``model=`` it loads textgym's
    own sentiment classifier (MiniLM fine-tuned on Rotten Tomatoes snippets)
    from :func:`default_sentiment_model_dir`.  The reward layer only loads it:
    the classifier is trained once and cached by a preparation step that
    ``textgym train`` / ``eval`` / ``compare`` / ``rollout`` run first
    (:func:`textgym.app.prepare.prepare_rewards`; a few minutes on a laptop CPU),
    or by hand with ``python -m textgym.agents.trainers.sentiment_classifier``.
    For a model-free scorer use ``"sentiment-vader"``.

    Args:
        model: local directory or model object (default: textgym's trained classifier).
        tokenizer: tokenizer or path (default: from ``model``'s directory).
        positive_label: label name or index overriding the default.
        **kwargs: other :class:`ClassifierReward` arguments.

    Returns (when called): ``(B,)`` float32 in [0, 1].

    Raises:
        ValueError: no ``model`` given and textgym's classifier is not trained
            yet (the message says how to train it).
    """

    name = "sentiment"

    def __init__(self, model: Any = None, tokenizer: Any = None, *, positive_label: int | str | None = None,
                 **kwargs: Any):
        if model is None:
            model = default_sentiment_model_dir()
            if not (model / "config.json").is_file():
                raise ValueError(
                    f"SentimentReward: textgym's sentiment classifier is not trained yet (expected at {model}). "
                    "`textgym train` / `eval` / `compare` train it once by themselves; from Python, train it once "
                    "(a few minutes on a CPU) with: python -m textgym.agents.trainers.sentiment_classifier "
                    "-- or pass model= a local sequence-classification model directory or object. For a "
                    "model-free sentiment score use make('sentiment-vader')."
                )
        super().__init__(model, tokenizer, label=0, **kwargs)
        if positive_label is None:
            labels = {int(k): str(v).lower() for k, v in (self.model.config.id2label or {}).items()}
            positive_label = next((k for k, v in sorted(labels.items()) if "pos" in v), None)
            if positive_label is None:
                positive_label = 1 if self.model.config.num_labels > 1 else 0
        self.label_index = self._resolve_label(positive_label)


class VaderSentimentReward(RewardFunction):
    """Lexicon-based sentiment in [0, 1], registered as ``"sentiment-vader"``.

    VADER (Hutto & Gilbert, 2014, "VADER: A Parsimonious Rule-based Model for
    Sentiment Analysis of Social Media Text") gives a normalised compound
    valence ``c`` in [-1, 1]; the reward is ``(c + 1) / 2``, so 0.5 is neutral,
    values near 1 strongly positive (a P(positive)-like score, not a
    calibrated probability).  Uses the ``vaderSentiment`` package (MIT licence,
    lexicon shipped in the wheel).  Texts longer than ``max_chars`` are scored
    on their first ``max_chars`` characters.

    Returns (when called): ``(B,)`` float32 in [0, 1]; empty text scores 0.5.

    Raises:
        ImportError: ``vaderSentiment`` is not installed (``pip install vaderSentiment``).
    """

    name = "sentiment-vader"

    def __init__(self, max_chars: int = 20000):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as exc:
            raise ImportError("sentiment-vader needs the vaderSentiment package: pip install vaderSentiment") from exc
        self.analyzer = SentimentIntensityAnalyzer()
        self.max_chars = int(max_chars)

    def score(self, prompts, completions, *, references=None, **columns):
        out = np.empty(len(completions), np.float32)
        for i, c in enumerate(completions):
            compound = self.analyzer.polarity_scores(clean_text(c)[: self.max_chars])["compound"]
            out[i] = (compound + 1.0) / 2.0
        return out
