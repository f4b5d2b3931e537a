"""The env builder of every run (``textgym train``, ``textgym eval``, each ``textgym compare`` cell) and the
reward that replaces an env's own (a run's reward model), plus the recorder of reward components."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textgym.app.config import RunConfig, build_reward
from textgym.app.prepare import prepare_rewards
from textgym.app.run_state import RunFolderError

__all__ = ["make_vec_env", "run_reward", "ComponentRecorder"]


def make_vec_env(env_id: str, num_envs: int, kwargs: Mapping[str, Any], tokenizer: Any, reward: Any = None) -> Any:
    """``gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", autoreset_mode="Disabled")``.

    Args:
        env_id: registered id.
        num_envs: rows.
        kwargs: task overrides; a ``reward`` spec is built with :func:`textgym.app.config.build_reward`.
        tokenizer: the model's tokenizer (the env's action space is its vocabulary).
        reward: a reward object to use instead of ``kwargs["reward"]`` (shared between envs).

    Returns:
        The :class:`textgym.TextGenVectorEnv`.
    """
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the ids)

    kw = dict(kwargs)
    if reward is not None:
        kw["reward"] = reward
    else:
        prepare_rewards(env_id, kw.get("reward"))  # e.g. trains the sentiment classifier once
        if kw.get("reward") is not None:
            kw["reward"] = build_reward(kw["reward"])
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="Disabled", tokenizer=tokenizer, **kw)



def run_reward(config: RunConfig, run_dir: str | os.PathLike) -> Any:
    """The reward that replaces the envs' own in a run: the run's trained reward model, else ``None``.

    Args:
        config: the run's config.
        run_dir: its folder.

    Returns:
        :func:`textgym.agents.trainers.reward_model.load_reward_function` of ``run_dir/reward_model``
        when ``reward_model.use_as_reward`` is set, else ``None`` (the envs keep their reward).

    Raises:
        RunFolderError: the reward model is not trained yet.
    """
    rm = config.reward_model
    if rm is None or not rm.use_as_reward:
        return None
    path = Path(run_dir) / "reward_model"
    if not (path / "config.json").is_file():
        raise RunFolderError(f"run {run_dir} has no trained reward model yet ({path}); train (or resume) it first")
    from textgym.agents.trainers.reward_model import load_reward_function

    return load_reward_function(path)



class ComponentRecorder:
    """Wraps an env's reward function and remembers the components it returns, by completion text.

    The vector env calls it like the reward it wraps (same ``name``, ``dense``,
    ``needs_text``); :meth:`take` hands over and clears the components seen
    since the last call, so the pipeline can add them to ``samples.jsonl``.
    Completions are matched by :meth:`key`: the text without the tokenizer's
    special tokens and outer whitespace (the env may score special tokens the
    sample log skips).

    Args:
        inner: the env's reward function.
        special_tokens: the tokenizer's special-token strings.
    """

    def __init__(self, inner: Any, special_tokens: Sequence[str] = ()):
        self.inner = inner
        self.special_tokens = [t for t in special_tokens if t]
        self.name = getattr(inner, "name", "reward")
        self.dense = getattr(inner, "dense", False)
        self.batched = True
        self.needs_text = getattr(inner, "needs_text", True)
        self._seen: dict[str, dict[str, float]] = {}

    def __call__(self, prompts, completions, *, references=None, **columns):
        out = self.inner(prompts, completions, references=references, **columns)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
            for i, c in enumerate(completions):
                self._seen[self.key(c)] = {k: float(v[i]) for k, v in out[1].items()}
        return out

    def key(self, text: str) -> str:
        """``text`` without special tokens and outer whitespace."""
        for t in self.special_tokens:
            text = text.replace(t, "")
        return text.strip()

    def take(self) -> dict[str, dict[str, float]]:
        """The components seen since the last call, ``{completion: {name: value}}``; clears them."""
        seen, self._seen = self._seen, {}
        return seen
