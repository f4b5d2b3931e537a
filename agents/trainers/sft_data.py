"""Data for supervised fine-tuning: sources, tokenisation with a loss mask, collation, packing.

An SFT *example* is a token sequence plus a boolean *train mask* saying which
tokens are targets (completion tokens, including the EOS that ends each
completion) and which are context (prompt, chat scaffolding).  Labels are
derived from the train mask and the attention mask only, never from token
ids, so a real EOS is kept as a label even when the tokenizer's pad token is
the EOS token.

Sources (:func:`load_rows`): a list of dicts, a ``datasets.Dataset``, a JSON
Lines file (``.jsonl`` / ``.jsonl.gz``), or a registered textgym task id /
env (:func:`task_rows`: each sample's formatted prompt and its first
reference).  A row is either ``{"prompt": str, "completion": str}`` or
``{"messages": [{"role": ..., "content": ...}, ...]}`` (chat); the keys are
configurable.  A conversation env's observation (``input_ids``,
``attention_mask``, ``agent_mask``) is a row too: its tokens as they are, the
agent's tokens as targets (:func:`encode_conversation`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["SFTExample", "load_rows", "task_rows", "encode_pair", "encode_chat", "encode_conversation", "collate_sft",
           "pack_examples"]


@dataclass
class SFTExample:
    """One tokenised training sequence.

    Attributes:
        input_ids: token ids, length ``L``.
        train_mask: ``L`` booleans; ``True`` = the token is a target of the loss.
        position_ids: ``L`` positions (``None``: ``0..L-1``; packed blocks restart at 0 per example).
        truncated: the sequence was cut to fit ``max_length``.
    """

    input_ids: list[int]
    train_mask: list[bool]
    position_ids: list[int] | None = None
    truncated: bool = False
    n_examples: int = field(default=1)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_targets(self) -> int:
        """Tokens that are predicted (a target needs a token before it: position 0 never counts)."""
        return sum(self.train_mask[1:])


# ----------------------------------------------------------------------------- sources


def task_rows(task: Any, tokenizer: Any, split: str = "train", **env_kwargs: Any) -> list[dict[str, Any]]:
    """``{"prompt", "completion"}`` rows from a textgym task's data.

    Args:
        task: a registered env id (``"textgym/SelfInstruct-v0"``) or a built
            :class:`textgym.TextGenEnv` (its own split and prompt format are used).
        tokenizer: tokenizer object (the task fits prompts in its tokens).
        split: the task's split (when ``task`` is an id).
        **env_kwargs: other ``gym.make`` overrides (``prompt_format``, ``max_prompt_length``...).

    Returns:
        One row per sample with a reference: ``prompt`` is the prompt exactly
        as the env shows it (formatted; chat template applied when the env
        uses ``prompt_format="chat"``), ``completion`` the first reference,
        preceded by a space when the prompt ends in a non-space character and
        the env is not chat-formatted (``"Response:"`` + ``" Yes..."``, as a
        model would generate it) -- except after ``"="``, the synthetic tasks' cue, whose
        answer follows directly (``"copy:k3x9="`` + ``"k3x9"``).  Chat-formatted rows carry
        ``"prompt_is_formatted": True`` (no extra special tokens are added).

    Raises:
        ValueError: no sample of the task has a reference.
    """
    if isinstance(task, str):
        import gymnasium as gym

        import textgym  # noqa: F401  (registers the ids)

        env = gym.make(task, tokenizer=tokenizer, split=split, reward=lambda prompt, completion: 0.0, **env_kwargs)
    else:
        env = task
    data = env.unwrapped.data
    chat = data.prompt_format == "chat"
    rows = []
    for i in range(len(data)):
        refs = data.references(i)
        if not refs:
            continue
        prompt = data.format(data.sample(i))
        completion = refs[0]
        if (not chat and prompt and not prompt[-1].isspace() and prompt[-1] != "="
                and completion and not completion[0].isspace()):
            completion = " " + completion
        rows.append({"prompt": prompt, "completion": completion, "prompt_is_formatted": chat})
    if not rows:
        raise ValueError(f"task {task!r} has no samples with references to fine-tune on")
    return rows


def load_rows(source: Any, tokenizer: Any = None, split: str = "train") -> list[dict[str, Any]]:
    """Rows (dicts) from a list, a ``datasets.Dataset``, a JSONL path, or a task id / env.

    Raises:
        FileNotFoundError: a path-like string that is neither a file nor a registered task id.
        TypeError: an unsupported source type.
    """
    if isinstance(source, (list, tuple)):
        return [dict(r) for r in source]
    if hasattr(source, "to_list") and hasattr(source, "column_names"):
        return source.to_list()
    if hasattr(source, "unwrapped") and hasattr(source.unwrapped, "data"):
        return task_rows(source, tokenizer)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.is_file():
            from textgym.envs.datasets import read_jsonl

            return read_jsonl(path)
        import textgym

        if str(source) in textgym.list_envs():
            if tokenizer is None:
                raise ValueError("task data needs the tokenizer (prompts are fitted in its tokens)")
            return task_rows(str(source), tokenizer, split)
        raise FileNotFoundError(f"{source!r} is neither a JSONL file nor a registered textgym task id")
    raise TypeError(f"unsupported SFT data source {type(source).__name__}: pass rows, a Dataset, a path or a task id")


# ----------------------------------------------------------------------------- tokenisation


def _ids(tokenizer: Any, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"]) if text else []


def _fit(ids: list[int], mask: list[bool], max_length: int, first_target: int) -> tuple[list[int], list[bool], bool]:
    """Cut to ``max_length``: drop context from the left (keeping >= 1 token before the
    first target), then targets from the right."""
    if len(ids) <= max_length:
        return ids, mask, False
    keep_from = min(max(0, len(ids) - max_length), max(0, first_target - 1))
    ids, mask = ids[keep_from:], mask[keep_from:]
    return ids[:max_length], mask[:max_length], True


def encode_pair(tokenizer: Any, prompt: str, completion: str, *, max_length: int, add_eos: bool = True,
                prompt_special_tokens: bool = True) -> SFTExample:
    """Tokenise one ``(prompt, completion)`` pair; targets = completion tokens + EOS.

    The prompt is tokenised with the tokenizer's special tokens (as the envs
    do; ``prompt_special_tokens=False`` for an already chat-formatted prompt),
    the completion without; they are tokenised separately, as in generation.
    An empty prompt becomes the BOS (else EOS) token so that the first
    completion token has a context to be predicted from.  Too-long pairs
    lose prompt tokens from the left first, then completion tokens from the
    right (the EOS is then lost: see ``SFTExample.truncated``).

    Raises:
        ValueError: ``add_eos`` but the tokenizer has no EOS token.
    """
    p = _ids(tokenizer, prompt, prompt_special_tokens)
    if not p:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        p = [int(start)]
    c = _ids(tokenizer, completion, False)
    if add_eos:
        if tokenizer.eos_token_id is None:
            raise ValueError("add_eos=True but the tokenizer has no EOS token")
        c = c + [int(tokenizer.eos_token_id)]
    ids, mask, cut = _fit(p + c, [False] * len(p) + [True] * len(c), max_length, len(p))
    return SFTExample(ids, mask, truncated=cut)


def _render(tokenizer: Any, messages: Sequence[Mapping[str, Any]], gen: bool) -> str:
    if not messages:
        return ""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=gen)


def encode_chat(tokenizer: Any, messages: Sequence[Mapping[str, Any]], *, max_length: int,
                add_eos: bool = True) -> SFTExample:
    """Tokenise a conversation with the tokenizer's chat template; targets = every assistant turn.

    Each assistant turn is found by rendering the conversation up to it with
    the generation prompt and up to its end: the difference is the turn's
    text (its content and end-of-turn marker).  The target stops after the
    first EOS token text in it (e.g. ``<|im_end|>``; a newline the template
    puts after it is context); if the turn has no EOS text and ``add_eos``,
    an EOS id is appended as a target.

    Raises:
        ValueError: no chat template, no assistant turn, or a template whose
            renderings are not prefixes of each other (e.g. it rewrites
            earlier turns); then pass ``(prompt, completion)`` pairs instead.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat rows need a tokenizer with a chat template; this one has none")
    if not any(m.get("role") == "assistant" for m in messages):
        raise ValueError("a chat example needs at least one assistant message to learn from")
    eos_text, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    segments: list[tuple[str, bool]] = []
    done = ""
    for k, msg in enumerate(messages):
        if msg.get("role") != "assistant":
            continue
        before, after = _render(tokenizer, messages[:k], True), _render(tokenizer, messages[: k + 1], False)
        if not (before.startswith(done) and after.startswith(before)):
            raise ValueError("this chat template does not render conversations incrementally (a rendered "
                             "prefix changes when a turn is added); fine-tune on (prompt, completion) pairs")
        turn = after[len(before) :]
        segments.append((before[len(done) :], False))
        cut = turn.find(eos_text) if eos_text else -1
        if cut >= 0:
            segments += [(turn[: cut + len(eos_text)], True), (turn[cut + len(eos_text) :], False)]
        else:
            segments.append((turn, True))
            if add_eos and eos_id is not None:
                segments.append(("\0eos", True))
        done = after
    ids: list[int] = []
    mask: list[bool] = []
    for text, target in segments:
        seg = [int(eos_id)] if text == "\0eos" else _ids(tokenizer, text, False)
        ids += seg
        mask += [target] * len(seg)
    first = mask.index(True) if True in mask else len(mask)
    if first == 0:  # nothing before the first target: give it a context token
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos_id
        ids, mask, first = [int(start)] + ids, [False] + mask, 1
    ids, mask, cut = _fit(ids, mask, max_length, first)
    return SFTExample(ids, mask, truncated=cut)


def encode_conversation(observation: Mapping[str, Any], *, max_length: int) -> SFTExample:
    """A conversation env's observation (:class:`textgym.MultiTurnEnv`) as an SFT example, token for token.

    The tokens are the observation's attended ``input_ids`` as they are (no
    decoding, no re-tokenising); the targets are exactly the agent's tokens
    (``agent_mask``): prompt, replies and turn markers are context.  Too long
    a conversation is cut as chat rows are (context from the left, then targets from the right).

    Raises:
        ValueError: the observation lacks ``agent_mask`` or has no agent token.
    """
    if "agent_mask" not in observation:
        raise ValueError("a conversation row needs input_ids, attention_mask and agent_mask (a MultiTurnEnv observation)")
    keep = [bool(a) for a in observation["attention_mask"]]
    ids = [int(i) for i, k in zip(observation["input_ids"], keep) if k]
    mask = [bool(a) for a, k in zip(observation["agent_mask"], keep) if k]
    if True not in mask:
        raise ValueError("the conversation has no agent token to learn from")
    if not mask or mask[0]:  # nothing before the first target: impossible for an env observation (it has a prompt)
        raise ValueError("a conversation must start with context (the prompt) before the agent's first token")
    first = mask.index(True)
    ids, mask, cut = _fit(ids, mask, max_length, first)
    return SFTExample(ids, mask, truncated=cut)


# ----------------------------------------------------------------------------- batching


def collate_sft(examples: Sequence[SFTExample], pad_token_id: int, *, packed: bool = False) -> dict[str, Any]:
    """Pad examples on the right into a batch.

    Returns:
        dict with ``input_ids`` ``(B, L)`` int64 (padding = ``pad_token_id``),
        ``attention_mask`` ``(B, L)`` int64 (1 = real token), ``labels``
        ``(B, L)`` int64 = ``input_ids`` where ``attention_mask == 1`` and the
        train mask is set, else -100 (the ignore index), ``position_ids``
        ``(B, L)`` int64 (``cumsum(attention_mask) - 1`` clamped at 0, or the
        packed positions), and ``packed`` (bool).  Labels are *not* shifted;
        the loss shifts them.
    """
    width = max(len(e) for e in examples)
    b = len(examples)
    input_ids = torch.full((b, width), int(pad_token_id), dtype=torch.long)
    attention = torch.zeros((b, width), dtype=torch.long)
    target = torch.zeros((b, width), dtype=torch.bool)
    positions = torch.zeros((b, width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e)
        input_ids[i, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        attention[i, :n] = 1
        target[i, :n] = torch.tensor(e.train_mask, dtype=torch.bool)
        if e.position_ids is not None:
            positions[i, :n] = torch.tensor(e.position_ids, dtype=torch.long)
            positions[i, n:] = torch.arange(width - n)  # padding: a segment of its own
    if not packed:
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
    labels = torch.where((attention == 1) & target, input_ids, torch.full_like(input_ids, -100))
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "position_ids": positions,
            "packed": packed}


def pack_examples(examples: Sequence[SFTExample], max_length: int) -> list[SFTExample]:
    """Greedily concatenate whole examples (in the given order) into blocks of <= ``max_length`` tokens.

    Position ids restart at 0 for every example; trained without an attention
    mask, transformers' mask builder turns such position ids into a
    block-diagonal causal mask, so examples in one block do not see each
    other (checked by the tests for Llama and GPT-2).  No example is split.
    """
    blocks: list[SFTExample] = []
    cur = SFTExample([], [], [], n_examples=0)
    for e in examples:
        if len(cur) + len(e) > max_length and len(cur):
            blocks.append(cur)
            cur = SFTExample([], [], [], n_examples=0)
        cur.input_ids += e.input_ids
        cur.train_mask += e.train_mask
        cur.position_ids += list(range(len(e)))
        cur.n_examples += 1
        cur.truncated = cur.truncated or e.truncated
    if len(cur):
        blocks.append(cur)
    return blocks
