"""Task data, prompt formatting and the fixed-slot token layout shared by the envs.

An env is built from a list of *samples*: mappings with a ``"prompt"`` string,
optional ``"references"`` (a string or a list of strings) and any other columns
(passed to the reward function as keyword arguments).  :class:`TaskData` holds
them, formats each prompt (plain, a ``str.format`` template over the sample's
columns, the tokenizer's chat template, or a callable), tokenizes it once and
lays it out left-padded in ``max_prompt_length`` slots.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textgym.data_files import is_data_path, load_prompts

__all__ = ["TaskData", "EncodedPrompt", "SampleOrder", "RowOrders", "decode_completion", "decode_completions",
           "PromptTruncatedWarning"]

PromptFormat = str | Callable[[Mapping[str, Any]], str] | None


class PromptTruncatedWarning(RuntimeWarning):
    """A prompt longer than ``max_prompt_length`` was cut (issued once per :class:`TaskData`).

    A ``RuntimeWarning`` (a property of the data met at run time), not a ``UserWarning``,
    so API checkers that fail on any ``UserWarning`` do not take it for a complaint.
    """

@dataclass(frozen=True)
class EncodedPrompt:
    """One prompt, tokenized and laid out in ``P`` slots.

    Attributes:
        input_ids: ``(P,)`` int64, left-padded with the pad id.
        attention_mask: ``(P,)`` int64, 1 on prompt tokens, 0 on padding.
        text: the formatted prompt string that was tokenized.
        truncated_tokens: how many tokens were cut to fit ``P`` (0 if none).
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    text: str
    truncated_tokens: int


#: Envs tokenize all prompts up front when the data has at most this many samples.
EAGER_ENCODE_LIMIT = 50_000


class TaskData:
    """Samples of a task plus the rules that turn one into prompt tokens.

    Args:
        samples: a sequence of mappings (or a ``datasets.Dataset``, or the path of a
            JSONL / JSON / CSV / Parquet file or folder, read with
            :func:`textgym.data_files.load_prompts`) with a ``prompt_key`` column; ``"references"`` (str or list of str) and
            other columns are optional.
        tokenizer: a Hugging Face tokenizer.
        max_prompt_length: ``P``, the number of prompt slots.
        prompt_format: ``None`` (the prompt as is), ``"chat"`` (the
            tokenizer's chat template with the prompt as the user turn and the
            generation prompt added), a template such as
            ``"Translate to German: {en}\\nGerman:"`` formatted with the sample's
            columns, or a callable ``sample -> str``.
        truncation_side: ``"left"`` keeps the end of a too-long prompt (the
            default: the text right before the completion matters most),
            ``"right"`` keeps its start.
        prompt_key: the column holding the prompt.
        add_special_tokens: passed to the tokenizer (default: ``True`` for plain
            prompts, ``False`` for chat-formatted ones, which carry their own).

    Raises:
        ValueError: no samples, a sample without ``prompt_key``, or a bad
            ``truncation_side`` / ``max_prompt_length``.
    """

    def __init__(
        self,
        samples: Sequence[Mapping[str, Any]] | Any,
        tokenizer: Any,
        max_prompt_length: int,
        *,
        prompt_format: PromptFormat = None,
        truncation_side: str = "left",
        prompt_key: str = "prompt",
        add_special_tokens: bool | None = None,
    ):
        if max_prompt_length < 1:
            raise ValueError(f"max_prompt_length must be >= 1, got {max_prompt_length}")
        if truncation_side not in ("left", "right"):
            raise ValueError(f"truncation_side must be 'left' or 'right', got {truncation_side!r}")
        if isinstance(samples, str) or is_data_path(samples):  # a file or folder: every row (textgym.data_files)
            samples, prompt_key = load_prompts(samples, "all", prompt_column=prompt_key), "prompt"
        n = len(samples) if samples is not None else 0
        if n == 0:
            raise ValueError(
                "the env needs at least one sample; got an empty dataset "
                "(check the split name or the file you passed)"
            )
        first = samples[0]
        if prompt_key not in first:
            raise ValueError(
                f"samples need a {prompt_key!r} column; the first sample has {sorted(first)}. "
                "Rename the column or pass prompt_key=..."
            )
        if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt_format='chat' needs a tokenizer with a chat template")
        # Row access on a datasets.Dataset costs ~50 us; envs read rows on every reset.
        self.samples = samples.to_list() if hasattr(samples, "to_list") else samples
        self.tokenizer = tokenizer
        self.max_prompt_length = int(max_prompt_length)
        self.prompt_format = prompt_format
        self.truncation_side = truncation_side
        self.prompt_key = prompt_key
        self.add_special_tokens = (prompt_format != "chat") if add_special_tokens is None else add_special_tokens
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))
        self._cache: dict[int, EncodedPrompt] = {}
        self._warned_truncation = False
        self.prompts: list[str] = [str(s[prompt_key]) for s in self.samples]  # raw prompt of each sample
        self._refs: dict[int, list[str]] = {}
        self._columns: dict[int, dict[str, Any]] = {}
        self.prompt_ids: np.ndarray | None = None  # (M, P) int64 once encode_all() ran
        self.prompt_mask: np.ndarray | None = None  # (M, P) int64
        self.truncated_tokens: np.ndarray | None = None  # (M,) int64

    def encode_all(self, batch_size: int = 1024) -> None:
        """Tokenize every prompt now, in batches, into the ``(M, P)`` arrays
        :attr:`prompt_ids` / :attr:`prompt_mask` (and :attr:`truncated_tokens`),
        so resets copy rows instead of calling the tokenizer."""
        m, p = len(self), self.max_prompt_length
        ids = np.full((m, p), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((m, p), dtype=np.int64)
        cut = np.zeros(m, dtype=np.int64)
        for start in range(0, m, batch_size):
            texts = [self.format(self.sample(i)) for i in range(start, min(m, start + batch_size))]
            batch = self.tokenizer(texts, add_special_tokens=self.add_special_tokens)["input_ids"]
            for j, (text, row) in enumerate(zip(texts, batch)):
                enc = self._layout(text, row)
                ids[start + j], mask[start + j], cut[start + j] = enc.input_ids, enc.attention_mask, enc.truncated_tokens
                self._cache[start + j] = enc
        self.prompt_ids, self.prompt_mask, self.truncated_tokens = ids, mask, cut

    def __len__(self) -> int:
        return len(self.samples)

    def sample(self, index: int) -> Mapping[str, Any]:
        """The raw sample ``index`` (a mapping)."""
        return self.samples[int(index)]

    def prompt(self, index: int) -> str:
        """The raw (unformatted) prompt string of sample ``index``."""
        return self.prompts[int(index)]

    def references(self, index: int) -> list[str]:
        """References of sample ``index`` as a list of strings (empty if none)."""
        out = self._refs.get(index)
        if out is None:
            refs = self.sample(index).get("references")
            out = [] if refs is None else [refs] if isinstance(refs, str) else [str(r) for r in refs]
            self._refs[index] = out
        return list(out)

    def columns(self, index: int) -> dict[str, Any]:
        """Extra columns of sample ``index`` (all but the prompt and references)."""
        out = self._columns.get(index)
        if out is None:
            out = {k: v for k, v in self.sample(index).items() if k not in (self.prompt_key, "references")}
            self._columns[index] = out
        return dict(out)

    def format(self, sample: Mapping[str, Any]) -> str:
        """Apply the prompt format to one sample; returns the text to tokenize."""
        fmt = self.prompt_format
        prompt = str(sample[self.prompt_key])
        if fmt is None:
            return prompt
        if fmt == "chat":
            messages = [{"role": "user", "content": prompt}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if callable(fmt):
            return str(fmt(sample))
        try:
            return fmt.format(**sample)
        except KeyError as exc:
            raise ValueError(
                f"prompt_format {fmt!r} names column {exc.args[0]!r}, which the sample lacks "
                f"(columns: {sorted(sample)})"
            ) from None

    def encode_text(self, text: str) -> EncodedPrompt:
        """Tokenize ``text`` and lay it out left-padded in ``P`` slots (truncating if needed)."""
        return self._layout(text, self.tokenizer(text, add_special_tokens=self.add_special_tokens)["input_ids"])

    def _layout(self, text: str, ids: list[int]) -> EncodedPrompt:
        p = self.max_prompt_length
        cut = max(0, len(ids) - p)
        if cut:
            if not self._warned_truncation:
                self._warned_truncation = True
                kept, lost = ("end", "start") if self.truncation_side == "left" else ("start", "end")
                warnings.warn(
                    f"a prompt of {len(ids)} tokens ({len(text)} characters) was cut to max_prompt_length={p}: "
                    f"{cut} tokens were dropped from its {lost} (truncation_side={self.truncation_side!r} keeps "
                    f"the {kept}). Raise max_prompt_length, or set truncation_side="
                    f"{'right' if self.truncation_side == 'left' else 'left'!r} to keep the {lost} instead. "
                    "Warned once per env; info['prompt_truncated_tokens'] counts every cut.",
                    PromptTruncatedWarning, stacklevel=2)
            ids = ids[cut:] if self.truncation_side == "left" else ids[:p]
        input_ids = np.full(p, self.pad_token_id, dtype=np.int64)
        mask = np.zeros(p, dtype=np.int64)
        if ids:
            input_ids[p - len(ids) :] = ids
            mask[p - len(ids) :] = 1
        return EncodedPrompt(input_ids, mask, text, cut)

    def maybe_encode_all(self) -> None:
        """:meth:`encode_all` if the data has at most :data:`EAGER_ENCODE_LIMIT` samples."""
        if len(self) <= EAGER_ENCODE_LIMIT and self.prompt_ids is None:
            self.encode_all()

    def encode(self, index: int) -> EncodedPrompt:
        """The encoded prompt of sample ``index`` (cached after the first call)."""
        index = int(index)
        enc = self._cache.get(index)
        if enc is None:
            enc = self.encode_text(self.format(self.sample(index)))
            self._cache[index] = enc
        return enc


class SampleOrder:
    """Which sample each reset takes: shuffled epochs (or in order) through ``n`` samples.

    Each epoch is a fresh permutation drawn from the env's ``np_random``, so
    two envs seeded alike visit the same samples in the same order.
    """

    def __init__(self, n: int, shuffle: bool = True):
        self.n = n
        self.shuffle = shuffle
        self._order: np.ndarray | None = None
        self._pos = 0

    def restart(self) -> None:
        """Forget the current epoch (called on ``reset(seed=...)``)."""
        self._order, self._pos = None, 0

    def next(self, rng: np.random.Generator) -> int:
        """The next sample index, drawing a new epoch from ``rng`` when one ends."""
        if self._order is None or self._pos >= self.n:
            self._order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            self._pos = 0
        i = int(self._order[self._pos])
        self._pos += 1
        return i

    def pick(self, options: Mapping[str, Any], rng: np.random.Generator, *, restart: bool = False) -> int | None:
        """The sample of a single-row env's reset (:class:`textgym.TextGenEnv`, :class:`textgym.MultiTurnEnv`).

        Args:
            options: the reset's options: ``{"prompt": ...}`` (a one-off prompt: ``None`` is
                returned), ``{"sample_index": i}`` (sample ``i``), or neither (:meth:`next`).
            rng: the env's ``np_random``.
            restart: :meth:`restart` first (the reset was given a seed).

        Raises:
            IndexError: ``sample_index`` out of range.
        """
        if restart:
            self.restart()
        if "prompt" in options:
            return None
        if "sample_index" not in options:
            return self.next(rng)
        i = int(options["sample_index"])
        if not 0 <= i < self.n:
            raise IndexError(f"sample_index {i} out of range [0, {self.n})")
        return i

    def state_dict(self) -> dict[str, Any]:
        """Position in the current epoch, for checkpoints."""
        return {"order": None if self._order is None else self._order.tolist(), "pos": self._pos}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        order = state["order"]
        self._order = None if order is None else np.asarray(order, dtype=np.int64)
        self._pos = int(state["pos"])


def decode_completion(
    tokenizer: Any, token_ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True
) -> str:
    """Decode generated tokens to text, never splitting a multi-byte character.

    A byte-level BPE prefix can end inside a UTF-8 character, which decodes to
    U+FFFD; trailing U+FFFD characters are dropped, so a partial completion
    never shows half a character.  With ``skip_special_tokens=False`` special
    tokens (pad, unk, ...) are kept in the text, so a reward can see them.
    """
    return decode_completions(tokenizer, [token_ids], skip_special_tokens)[0]


def decode_completions(
    tokenizer: Any, token_ids: Sequence[Sequence[int] | np.ndarray], skip_special_tokens: bool = True
) -> list[str]:
    """:func:`decode_completion` for many rows at once (one Rust call for fast tokenizers)."""
    rows = [np.asarray(row).tolist() for row in token_ids]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow (Python) tokenizer
        texts = [tokenizer.decode(row, skip_special_tokens=skip_special_tokens) for row in rows]
    else:
        texts = backend.decode_batch(rows, skip_special_tokens=skip_special_tokens)
    return [t.rstrip("\ufffd") for t in texts]


class RowOrders:
    """Per-row sample orders of a vector env: one random generator and one :class:`SampleOrder` per row.

    Mixed into :class:`textgym.TextGenVectorEnv` and :class:`textgym.MultiTurnVectorEnv`; gives them the
    public ``shuffle`` setting and the ``state_dict()`` / ``load_state_dict()`` that checkpoints save.
    """

    num_envs: int

    def _init_row_orders(self, n_samples: int, shuffle: bool) -> None:
        from gymnasium.utils import seeding

        self.shuffle = bool(shuffle)  # each row's sample order: shuffled epochs, or file order
        self._rngs = [seeding.np_random(None)[0] for _ in range(self.num_envs)]
        self._orders = [SampleOrder(n_samples, self.shuffle) for _ in range(self.num_envs)]
        self._started = False  # the first reset must reset every row

    def _begin_reset(self, seed: int | Sequence[int | None] | None, options: Mapping[str, Any]) -> np.ndarray:
        """The checks and seeding a vector ``reset`` starts with; returns the rows to reset.

        Reseeds the rows ``seed`` names (an int: row ``i`` gets ``seed + i``; a list of ``N``
        entries, ``None`` keeping a row's generator) and restarts their sample orders.

        Raises:
            ValueError: a seed list, ``reset_mask`` or ``sample_indices`` / ``prompts`` option of the
                wrong length; a first reset that is not of every row.
        """
        from gymnasium.utils import seeding

        n = self.num_envs
        if seed is not None:
            seeds = [seed + i for i in range(n)] if isinstance(seed, (int, np.integer)) else list(seed)
            if len(seeds) != n:
                raise ValueError(f"got {len(seeds)} seeds for {n} envs")
            for i, s in enumerate(seeds):
                if s is not None:
                    self._rngs[i], _ = seeding.np_random(int(s))
                    self._orders[i].restart()
        mask = np.asarray(options.get("reset_mask", np.ones(n, dtype=bool)), dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"reset_mask must have shape ({n},), got {mask.shape}")
        if not self._started and not mask.all():
            raise ValueError("the first reset must reset every row (no reset_mask)")
        for key in ("sample_indices", "prompts"):
            if key in options and len(options[key]) != n:
                raise ValueError(f"options[{key!r}] must have {n} entries, got {len(options[key])}")
        self._started = True
        return np.flatnonzero(mask)

    def state_dict(self) -> dict[str, Any]:
        """Each row's random generator and position in its sample order (what checkpoints save).

        Restored with :meth:`load_state_dict` into an env built with the same data and ``num_envs``,
        the next resets pick the same samples as this env's would.
        """
        return {"rngs": [g.bit_generator.state for g in self._rngs], "orders": [o.state_dict() for o in self._orders]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: the state is of an env with a different number of rows.
        """
        if len(state["rngs"]) != self.num_envs or len(state["orders"]) != self.num_envs:
            raise ValueError(f"the saved env state has {len(state['rngs'])} rows, this env {self.num_envs}; "
                             "build the env with the same num_envs")
        for g, s in zip(self._rngs, state["rngs"]):
            g.bit_generator.state = s
        for o, s in zip(self._orders, state["orders"]):
            o.load_state_dict(s)
