"""The allowed-token mask of a text-generation env (``EnvSettings.allowed_token_ids``).

An env built with ``allowed_token_ids=[...]`` restricts its actions to those
token ids (e.g. a task whose answer is digits only: the digit ids and EOS):

* ``env.allowed_tokens`` is the ``(V,)`` bool mask (``None`` when unrestricted);
* ``env.action_masks()`` returns it (all ``True`` when unrestricted), and the
  vector env's ``action_masks()`` returns ``(N, V)``: the method
  sb3-contrib's ``MaskablePPO`` looks up (``sb3_contrib.common.maskable.utils.get_action_masks``);
* a disallowed token taken anyway is appended, **ends the episode**
  (``terminated=True``) and the episode's score is ``invalid_action_penalty``
  (default ``-1.0``) instead of the reward function's; ``info["invalid_action"]``
  holds its id.  The env never raises for it, so Gymnasium's ``check_env``
  (which steps with unmasked ``action_space.sample()``) passes.

The observation and action spaces stay ``Dict(input_ids, attention_mask)`` and
``Discrete(V)``: the mask restricts which ids are valid, not their numbering.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["allowed_token_mask", "token_ids_of"]


def allowed_token_mask(allowed_token_ids: Sequence[int] | None, vocab_size: int) -> np.ndarray | None:
    """``(V,)`` bool, ``True`` on the allowed ids; ``None`` when ``allowed_token_ids`` is ``None``.

    Raises:
        ValueError: an id outside ``[0, vocab_size)``.
    """
    if allowed_token_ids is None:
        return None
    ids = np.asarray(allowed_token_ids, dtype=np.int64)
    out = ids[(ids < 0) | (ids >= vocab_size)]
    if out.size:
        raise ValueError(f"allowed_token_ids {out.tolist()} are not token ids in [0, {vocab_size})")
    mask = np.zeros(vocab_size, dtype=bool)
    mask[ids] = True
    return mask


def token_ids_of(tokenizer, text: str, *, add_eos: bool = True) -> list[int]:
    """The sorted distinct ids of the tokens of each character of ``text`` alone (plus EOS with ``add_eos``).

    ``token_ids_of(tok, "0123456789")`` is the ids of the ten digits and EOS:
    an ``allowed_token_ids`` for digit answers (with a character tokenizer one
    id per digit; with a BPE tokenizer the ids that spell single digits).

    Raises:
        ValueError: ``add_eos`` and the tokenizer has no EOS token.
    """
    ids = {int(i) for ch in text for i in tokenizer(ch, add_special_tokens=False)["input_ids"]}
    if add_eos:
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("the tokenizer has no EOS token; pass add_eos=False and add a stop id yourself")
        ids.add(int(eos))
    return sorted(ids)
