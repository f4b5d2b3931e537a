"""The preparation step: build, once, the cached models that a run's rewards load.

The reward layer (``textgym.rewards``) only *loads* models; it never trains one,
because trainers live a floor above it (``textgym.agents.trainers``).  So the
application layer prepares what a run needs before it builds an env:
``textgym train`` / ``eval`` / ``compare`` / ``rollout`` call
:func:`prepare_rewards`, which trains textgym's sentiment classifier when the
run uses the ``sentiment`` reward (the ``textgym/IMDB-v0`` default) and no
classifier is cached yet.  Users see the same thing as before: the classifier
is trained once (a few minutes on a laptop CPU) and cached.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["reward_names", "prepare_rewards"]


def reward_names(spec: Any) -> set[str]:
    """The registered reward names a reward spec uses without its own ``model=``.

    A spec is a name (``"sentiment"``), ``{name: NAME, ...kwargs}``, ``{weighted: {NAME: WEIGHT}}``,
    a list of those, or a reward object (which needs nothing prepared).
    """
    if isinstance(spec, str):
        return {spec}
    if isinstance(spec, Mapping):
        if "weighted" in spec:
            return {str(k) for k in spec["weighted"]}
        return set() if spec.get("model") is not None else reward_names(spec.get("name"))
    if isinstance(spec, Sequence) and not isinstance(spec, bytes):
        return set().union(*(reward_names(s) for s in spec)) if spec else set()
    return set()


def _default_reward(env_id: str) -> Any:
    from textgym.envs import task_factory

    factory = task_factory(env_id)
    if factory is None:
        return None
    param = inspect.signature(factory).parameters.get("reward")
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def prepare_rewards(env_id: str | None, reward: Any = None) -> None:
    """Train and cache the models the env's reward needs (no-op when they are cached or not needed).

    Args:
        env_id: the task id (its default reward counts when ``reward`` is ``None``).
        reward: the reward spec or object the run passes to the env, if any.
    """
    spec = reward if reward is not None else (_default_reward(env_id) if env_id else None)
    if "sentiment" in reward_names(spec):
        from textgym.agents.trainers.sentiment_classifier import sentiment_classifier_path

        sentiment_classifier_path(train_if_missing=True)
