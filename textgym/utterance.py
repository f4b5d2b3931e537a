"""``UtteranceEnv``: a conversation env whose action is a whole text reply, for text-producing agents.

Wraps a :class:`textgym.MultiTurnEnv` so that an agent that produces text (an
API model being evaluated, a scripted baseline, a person) can play it:

* **Action**: a string, the agent's whole turn.  It is tokenized once as
  reply contents are (special-token text split, so no early turn end), cut to the env's ``max_turn_tokens - 1``
  tokens, followed by the env's first end-of-turn token, and stepped through
  the token-level env, so the conversation's tokens are exactly what a
  token-level agent emitting those tokens would have produced.
* **Observation**: the token-level env's observation (``input_ids``,
  ``attention_mask``, ``agent_mask``) after the turn, reply included.
  ``info["messages"]`` holds the conversation as text for the agent to read.
* **Reward**: the turn's reward (the sum of the token steps' rewards).
* **Episode end**: as in the token-level env.
* **info**: the token env's info of the turn's last step, plus ``turn_tokens``
  (tokens the action became) and ``action_truncated`` (tokens cut).
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from textgym.multiturn import MultiTurnEnv

__all__ = ["UtteranceEnv"]


class UtteranceEnv(gym.Wrapper):
    """Text-in/text-out view of a :class:`MultiTurnEnv` (see the module docstring).

    Args:
        env: a ``MultiTurnEnv`` (or a wrapper around one).
        max_chars: the action space's maximum text length.

    Raises:
        TypeError: ``env`` is not a conversation env.
    """

    def __init__(self, env: gym.Env, max_chars: int = 4000):
        super().__init__(env)
        inner = env.unwrapped
        if not isinstance(inner, MultiTurnEnv):
            raise TypeError(f"UtteranceEnv wraps a textgym.MultiTurnEnv, got {type(inner).__name__}")
        self.conv = inner.conv
        self.action_space = spaces.Text(max_length=max_chars, charset=string.printable + "".join(map(chr, range(160, 512))))
        self._end = int(np.flatnonzero(self.conv.is_eot)[0])

    def step(self, action: str):
        """Play one whole turn.

        Raises:
            TypeError: ``action`` is not a string.
        """
        if not isinstance(action, str):
            raise TypeError(f"UtteranceEnv actions are strings (a whole reply), got {type(action).__name__}")
        tok, conv = self.conv.tokenizer, self.conv
        ids = conv.turn_format.content_ids(tok, action).tolist()  # special-token text is split: no early turn end
        limit = conv.max_turn_tokens - 1
        cut = max(0, len(ids) - limit)
        ids = ids[:limit] + [self._end]
        total, turn = 0.0, int(conv.turn[0])
        for a in ids:
            obs, reward, terminated, truncated, info = self.env.step(a)
            total += float(reward)
            if terminated or truncated or info["turn"] > turn:
                break
        info = dict(info)
        info["turn_tokens"], info["action_truncated"] = len(ids), cut
        return obs, total, terminated, truncated, info
