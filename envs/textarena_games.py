"""TextArena's single-player games as conversation envs: ``textgym/TextArena-v0`` (optional extra ``textarena``).

`TextArena <https://github.com/LeonGuertler/TextArena>`_ (MIT) is a library of
text games.  :class:`TextArenaResponder` plays one of its single-player games
(default ``GuessTheNumber-v0``; also ``Mastermind-v0``, ``TowerOfHanoi-v0``,
``Minesweeper-v0``, ``Sudoku-v0``, ``FrozenLake-v0``, ``LightsOut-v0``, ...)
as the other side of a :class:`textgym.MultiTurnEnv`:

* **Prompt**: the game's own opening text (its rules and board) for the
  sample's game seed.
* **Turns**: each agent turn is passed to the game as the player's move (the
  games read a move in square brackets, e.g. ``[7]``); the game's messages
  (hints, board, invalid-move notes) are the reply.
* **Reward**: TextArena's reward for player 0 when the game ends (+1 win,
  -1 loss, 0 draw), paid on the final turn; 0 before.  **Episode end**: the
  game ends (terminated), or ``max_turns`` / the token budget (truncated).
* **Data**: one sample per game seed, ``"train"`` seeds ``0..num_samples-1``,
  ``"test"`` seeds from ``10**6`` on (held out).

``Wordle-v0`` and ``Hangman-v0`` need NLTK's ``words`` corpus, which NLTK
downloads at run time (no network here), so they are not offered by default.
TextArena's ``reset`` seeds Python's global ``random`` module; the adapter saves
and restores its state around every call into the game.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

from textgym.envs._multiturn import multiturn_env_kwargs
from textgym.envs.common import resolve_tokenizer
from textgym.responders import Reply, Responder, register_responder

__all__ = ["TextArenaResponder", "textarena_samples", "make_textarena", "SPLITS", "OFFLINE_GAMES"]

SPLITS = ("train", "test")
#: Single-player games checked to run offline (Wordle / Hangman download NLTK data at run time).
OFFLINE_GAMES = ("GuessTheNumber-v0", "Mastermind-v0", "TowerOfHanoi-v0", "Minesweeper-v0", "Sudoku-v0",
                 "FrozenLake-v0", "LightsOut-v0", "Crosswords-v0", "Cryptarithm-v0")  # fmt: skip
TEST_SEED_OFFSET = 10**6


def _textarena() -> Any:
    try:
        import textarena
    except ImportError:
        raise ImportError("textgym/TextArena-v0 needs the optional extra: pip install 'textgym[textarena]'") from None
    return textarena


@contextlib.contextmanager
def _keep_global_random():
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


def _new_game(game: str, seed: int) -> tuple[Any, str]:
    """A reset single-player game and its opening text."""
    ta = _textarena()
    with _keep_global_random():
        env = ta.make(f"{game}-raw")
        env.reset(num_players=1, seed=int(seed))
        _, messages = env.get_observation()
    return env, "\n".join(text for _, text, _ in messages)


@register_responder("textarena")
class TextArenaResponder(Responder):
    """Plays a TextArena single-player game against the agent (see the module docstring).

    Args:
        game: a TextArena env id, e.g. ``"GuessTheNumber-v0"``.
    """

    name = "textarena"

    def __init__(self, game: str = "GuessTheNumber-v0"):
        self.game = game
        self.name = f"textarena:{game}"

    def reset(self, sample, rng):
        env, _ = _new_game(self.game, int(sample["seed"]))
        return env

    def play(self, env: Any, move: str) -> Reply:
        """One move of the agent; the game's reply."""
        with _keep_global_random():
            done, _ = env.step(move)
            _, messages = env.get_observation()
            text = "\n".join(t for pid, t, _ in messages if pid != 0)  # not the echo of the move
            if not done:
                return Reply(text=text or "(no reply)")
            rewards, info = env.close()
        reason = str((info or {}).get(0, {}).get("reason", ""))
        reward = float((rewards or {}).get(0, 0.0))
        return Reply(text="\n".join(t for t in (text, reason) if t), reward=reward, done=True)

    def respond(self, states, conversations):
        return [self.play(env, c[-1]["content"]) for env, c in zip(states, conversations)]


def textarena_samples(game: str = "GuessTheNumber-v0", split: str = "train", num_samples: int | None = None
                      ) -> list[dict[str, Any]]:  # fmt: skip
    """One sample per game seed of ``split``: ``prompt`` (the game's opening text), ``seed``, ``game``."""
    n = num_samples if num_samples is not None else (200 if split == "train" else 50)
    offset = TEST_SEED_OFFSET if split == "test" else 0
    out = []
    for seed in range(offset, offset + n):
        _, prompt = _new_game(game, seed)
        out.append({"prompt": prompt, "seed": seed, "game": game})
    return out


DEFAULTS = {"max_prompt_length": 256, "max_new_tokens": 512, "max_turns": 12, "max_turn_tokens": 32}


def make_textarena(tokenizer: Any = "smollm2-135m-instruct", game: str = "GuessTheNumber-v0", split: str = "train",
                   samples: Any = None, num_samples: int | None = None, **kwargs: Any):  # fmt: skip
    """Factory of ``textgym/TextArena-v0`` (see the module docstring).

    Args:
        game: the TextArena single-player game id.
        num_samples: game seeds in the split (default 200 train / 50 test).
    """
    from textgym.envs._task import check_split

    check_split(split, SPLITS, "textgym/TextArena-v0")
    env = multiturn_env_kwargs("textgym/TextArena-v0", kwargs, DEFAULTS)
    samples = textarena_samples(game, split, num_samples) if samples is None else samples
    return resolve_tokenizer(tokenizer), samples, TextArenaResponder(game), env
