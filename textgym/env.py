"""``TextGenEnv``: text generation as a token-level Gymnasium MDP.

One episode is one completion of one prompt.

* **Observation** ``Dict(input_ids=Box(0, V-1, (P+T,), int64), attention_mask=Box(0, 1, (P+T,), int64))``:
  the prompt left-padded into the first ``P = max_prompt_length`` slots, the
  generated tokens appended from slot ``P`` on, the rest padding (mask 0).
  Models should use position ids ``cumsum(attention_mask) - 1`` so the same
  tokens get the same logprobs whatever the padding.
* **Action** ``Discrete(V)``: the next token id; ``V = len(tokenizer)`` unless
  given.  An out-of-range action raises ``ValueError`` (never clipped).
* **Action mask** (optional): with ``allowed_token_ids=[...]`` only those ids
  are valid; ``action_masks()`` returns the ``(V,)`` bool mask (all ``True``
  when unrestricted) for maskable agents (sb3-contrib's ``MaskablePPO``).  A
  disallowed id taken anyway ends the episode with the score
  ``invalid_action_penalty`` (see :mod:`textgym.action_mask`).
* **Episode end**: ``terminated`` when the action is a stop token (EOS by
  default) or a disallowed one; ``truncated`` after ``T = max_new_tokens`` tokens without one.
  The env pays the episode's score on the truncating step too, so textgym's
  agents do not bootstrap from the value on truncation by default
  (``bootstrap_truncated=False``; ``True`` adds ``V(s_T)`` there).
* **Reward**: the reward function scores the decoded completion (stop token
  removed) once, on the final step; other steps get 0.  A dense reward
  (:class:`textgym.reward_api.DenseRewardFunction`) is paid as per-step
  increments that sum to the final score.
* **info**: ``prompt`` (raw), ``prompt_text`` (formatted), ``completion`` (text
  so far), ``references``, ``sample_index``, ``prompt_truncated_tokens``; at the
  end also ``score`` and ``reward_components``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from textgym.action_mask import allowed_token_mask
from textgym.env_settings import EnvSettings
from textgym.prompts import SampleOrder, TaskData, decode_completion
from textgym.reward_api import RewardFunction, as_reward_function, call_reward

__all__ = ["TextGenEnv", "token_observation_space", "resolve_stop_ids", "as_token_id", "init_task_attributes"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def as_token_id(action: Any, vocab_size: int) -> int:
    """``action`` as an ``int`` token id in ``[0, vocab_size)``.

    Accepted: Python / NumPy integers, 0-d integer arrays, and floats with an integral
    value (``3.0``).

    Raises:
        ValueError: ``None``, a bool, a sequence or an array with a shape, a complex,
            NaN, +-inf or non-integral number, or an id out of range.
    """
    a = action
    if isinstance(a, np.ndarray):
        if a.ndim != 0:
            raise ValueError(f"action must be one token id (an int), got an array of shape {a.shape}")
        a = a[()]
    if isinstance(a, (bool, np.bool_)):
        raise ValueError(f"action {action!r} is a bool, not a token id; pass an int in [0, {vocab_size})")
    if _is_int(a):
        value = int(a)
    elif isinstance(a, (float, np.floating)) and np.isfinite(a) and float(a).is_integer():
        value = int(a)
    else:
        raise ValueError(f"action {action!r} ({type(action).__name__}) is not a token id; pass an int in "
                         f"[0, {vocab_size})")
    if not 0 <= value < vocab_size:
        raise ValueError(f"action {value} is not a token id in [0, {vocab_size})")
    return value


def token_observation_space(vocab_size: int, length: int) -> spaces.Dict:
    """The observation space of one env: ``input_ids`` and ``attention_mask``, each ``(length,)`` int64."""
    return spaces.Dict(
        {
            "input_ids": spaces.Box(0, vocab_size - 1, shape=(length,), dtype=np.int64),
            "attention_mask": spaces.Box(0, 1, shape=(length,), dtype=np.int64),
        }
    )


def resolve_stop_ids(tokenizer: Any, stop_token_ids: Sequence[int] | None, vocab_size: int) -> np.ndarray:
    """Stop token ids as an int64 array: the given ones, else the tokenizer's EOS.

    Raises:
        ValueError: no stop id can be found, or one is outside ``[0, vocab_size)``.
    """
    if stop_token_ids is None:
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("the tokenizer has no EOS token; pass stop_token_ids=[...]")
        stop_token_ids = [eos]
    ids = np.asarray(sorted(set(int(i) for i in stop_token_ids)), dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"stop_token_ids {ids.tolist()} must lie in [0, {vocab_size})")
    return ids


def init_task_attributes(env: Any, tokenizer: Any, samples: Any, reward_fn: Any, settings: EnvSettings) -> None:
    """Set what :class:`TextGenEnv` and :class:`textgym.TextGenVectorEnv` both hold from their arguments.

    ``settings``, ``tokenizer``, ``data`` (a :class:`TaskData`, encoded up front when it can be),
    ``reward_fn``, ``max_prompt_length``, ``max_new_tokens``, ``vocab_size``, ``stop_token_ids``,
    ``reward_on_error``, ``skip_special_tokens``, ``render_mode``, ``allowed_tokens`` (``(V,)`` bool or ``None``),
    ``invalid_action_penalty``.

    Raises:
        ValueError: a ``vocab_size`` smaller than the tokenizer (checked before the data is read),
            an empty dataset, stop ids or allowed ids out of range.
    """
    if isinstance(tokenizer, str):  # a model name or folder, as everywhere else a tokenizer goes
        from textgym.models import load_tokenizer

        tokenizer = load_tokenizer(tokenizer)
    vocab = settings.action_space_size(tokenizer)
    env.allowed_tokens = allowed_token_mask(settings.allowed_token_ids, vocab)  # checked before the data is read
    env.invalid_action_penalty = settings.invalid_action_penalty
    env.settings = settings
    env.tokenizer = tokenizer
    env.data = TaskData(samples, tokenizer, settings.max_prompt_length, prompt_format=settings.prompt_format,
                        truncation_side=settings.truncation_side)
    env.data.maybe_encode_all()
    env.reward_fn = as_reward_function(reward_fn)
    env.max_prompt_length = settings.max_prompt_length
    env.max_new_tokens = settings.max_new_tokens
    env.vocab_size = vocab
    env.stop_token_ids = resolve_stop_ids(tokenizer, settings.stop_token_ids, vocab)
    env.reward_on_error = settings.reward_on_error
    env.skip_special_tokens = settings.skip_special_tokens
    env.render_mode = settings.render_mode


class TextGenEnv(gym.Env[dict[str, np.ndarray], int]):
    """Token-level text-generation env (see the module docstring for the MDP).

    Args:
        tokenizer: a Hugging Face tokenizer, or a model name or folder (``"tiny-gpt2"``, ``"smollm2-135m-instruct"``)
            whose tokenizer :func:`textgym.models.load_tokenizer` loads.
        samples: sequence of mappings / ``datasets.Dataset`` with a ``"prompt"``
            column (see :class:`textgym.prompts.TaskData`).
        reward_fn: a registered reward name, a :class:`RewardFunction` or any
            callable (batched or per-sample).
        settings: an :class:`~textgym.env_settings.EnvSettings` (default: its defaults).
        **kwargs: settings by name (``max_prompt_length=``, ``max_new_tokens=``, ...: each is
            documented once, in :class:`~textgym.env_settings.EnvSettings`), replacing those of
            ``settings``; the vector env's own (``EnvSettings.VECTOR_ONLY``) are refused.

    Raises:
        ValueError: empty dataset, bad lengths, stop ids out of range, a ``vocab_size``
            smaller than the tokenizer, a non-bool ``shuffle`` (:class:`EnvSettings`).
        TypeError: a keyword that is not a setting of this env.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        tokenizer: Any,
        samples: Sequence[Mapping[str, Any]] | Any,
        reward_fn: RewardFunction | Callable[..., Any] | str,
        *,
        settings: EnvSettings | None = None,
        **kwargs: Any,
    ):
        settings = EnvSettings.of("TextGenEnv", settings, kwargs, not_for=EnvSettings.VECTOR_ONLY)
        init_task_attributes(self, tokenizer, samples, reward_fn, settings)
        self.decode_every_step = settings.decode_every_step
        self.observation_space = token_observation_space(self.vocab_size, self.max_prompt_length + self.max_new_tokens)
        self.action_space = spaces.Discrete(self.vocab_size)
        self.order = SampleOrder(len(self.data), settings.shuffle)
        self.num_truncated_prompts = 0
        length = self.max_prompt_length + self.max_new_tokens
        self._ids = np.full(length, self.data.pad_token_id, dtype=np.int64)
        self._mask = np.zeros(length, dtype=np.int64)
        self._t = 0
        self._done = True
        self._index = -1
        self._prompt_text = ""
        self._completion = ""
        self._last_dense_score = 0.0
        self._truncated_tokens = 0

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode.

        Args:
            seed: reseeds ``self.np_random`` and restarts the shuffled order, so
                two envs reset with the same seed give the same episodes.
            options: ``{"sample_index": i}`` to pick sample ``i``, or
                ``{"prompt": "..."}`` for a one-off prompt (no references).

        Returns:
            ``(observation, info)``.

        Raises:
            IndexError: ``sample_index`` out of range.
        """
        super().reset(seed=seed)
        i = self.order.pick(options or {}, self.np_random, restart=seed is not None)
        if i is None:  # a one-off prompt
            self._index = -1
            sample = {self.data.prompt_key: str(options["prompt"])}
            enc = self.data.encode_text(self.data.format(sample))
            self._raw_prompt, self._refs, self._columns = str(options["prompt"]), [], {}
        else:
            self._index = i
            enc = self.data.encode(i)
            self._raw_prompt, self._refs, self._columns = self.data.prompt(i), self.data.references(i), self.data.columns(i)
        p = self.max_prompt_length
        self._ids.fill(self.data.pad_token_id)
        self._mask.fill(0)
        self._ids[:p] = enc.input_ids
        self._mask[:p] = enc.attention_mask
        self._prompt_text = enc.text
        self._truncated_tokens = enc.truncated_tokens
        self.num_truncated_prompts += int(enc.truncated_tokens > 0)
        self._t, self._done, self._completion, self._last_dense_score = 0, False, "", 0.0
        return self._obs(), self._info()

    def step(self, action: int):
        """Append ``action`` to the completion.

        Returns:
            ``(observation, reward, terminated, truncated, info)``; ``reward`` is
            a float (the score on the final step, 0 before; increments for dense rewards).
            A token outside ``allowed_token_ids`` terminates the episode with the score
            ``invalid_action_penalty`` (the reward function is not called) and
            ``info["invalid_action"]`` = its id.

        Raises:
            RuntimeError: called before ``reset`` or after the episode ended.
            ValueError: ``action`` is not a token id in ``[0, V)`` (see :func:`as_token_id`:
                ``None``, bools, sequences, complex, NaN and +-inf are refused).
        """
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        a = as_token_id(action, self.vocab_size)
        invalid = self.allowed_tokens is not None and not self.allowed_tokens[a]
        pos = self.max_prompt_length + self._t
        self._ids[pos] = a
        self._mask[pos] = 1
        self._t += 1
        terminated = bool(np.isin(a, self.stop_token_ids)) or invalid
        truncated = (not terminated) and self._t >= self.max_new_tokens
        self._done = terminated or truncated
        reward = 0.0
        info_extra: dict[str, Any] = {}
        if self._done or self.decode_every_step or self.reward_fn.dense:
            self._completion = self._decode(terminated and not invalid)
        if invalid:  # the penalty replaces the reward function's score
            score = self.invalid_action_penalty
            reward = score - self._last_dense_score if self.reward_fn.dense else score
            info_extra = {"score": score, "reward_components": {}, "invalid_action": a}
        elif self.reward_fn.dense or self._done:
            scores, comps = call_reward(
                self.reward_fn,
                [self._raw_prompt],
                [self._completion],
                references=[self._refs],
                columns={k: [v] for k, v in self._columns.items()},
                on_error=self.reward_on_error,
                sample_labels=[f"sample {self._index}" if self._index >= 0 else "a custom prompt"],
            )
            score = float(scores[0])
            reward = score - self._last_dense_score if self.reward_fn.dense else score
            self._last_dense_score = score
            if self._done:
                info_extra = {"score": score, "reward_components": {k: float(v[0]) for k, v in comps.items()}}
        info = self._info()
        info.update(info_extra)
        return self._obs(), float(reward), terminated, truncated, info

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the formatted prompt and the completion so far."""
        if self.render_mode != "ansi":
            return None
        return f"{self._prompt_text}\x1b[1m{self._completion}\x1b[0m" if self._t else self._prompt_text

    # ------------------------------------------------------------------ helpers
    def _decode(self, terminated: bool) -> str:
        p = self.max_prompt_length
        end = p + self._t - (1 if terminated else 0)  # drop the stop token
        return decode_completion(self.tokenizer, self._ids[p:end], self.skip_special_tokens)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"input_ids": self._ids.copy(), "attention_mask": self._mask.copy()}

    def _info(self) -> dict[str, Any]:
        return {
            "prompt": self._raw_prompt,
            "prompt_text": self._prompt_text,
            "completion": self._completion,
            "references": list(self._refs),
            "sample_index": self._index,
            "prompt_truncated_tokens": self._truncated_tokens,
        }

    def action_masks(self) -> np.ndarray:
        """``(V,)`` bool: the valid actions (``allowed_token_ids``; all ``True`` when unrestricted).

        The method sb3-contrib's ``MaskablePPO`` reads.  The mask is the same at every step.
        """
        if self.allowed_tokens is None:
            return np.ones(self.vocab_size, dtype=bool)
        return self.allowed_tokens.copy()

    @property
    def num_generated(self) -> int:
        """Tokens generated in the current episode."""
        return self._t
