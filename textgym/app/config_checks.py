"""Names in a run config checked against the registries: envs and their arguments, rewards, models.

Called by :func:`textgym.app.config.parse_config` once the YAML is typed; each check
raises a :class:`~textgym.app.config_errors.ConfigError` at the key, with the valid
choices and the closest match.  :func:`build_reward` turns a checked reward spec into
the reward object the env gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textgym.app.config_coerce import coerce_number
from textgym.app.config_errors import ConfigError, check_choice, suggest

__all__ = ["PIPELINE_ENV_KWARGS", "REWARD_BACKEND_KEYS", "OWN_REWARD_HINT", "reward_names", "check_reward_spec", "build_reward",
           "is_conversation_env", "check_env", "check_model"]

#: Env kwargs the pipeline sets itself.
PIPELINE_ENV_KWARGS = {"tokenizer": "the env uses the model's tokenizer: set `model`",
                       "autoreset_mode": "training needs autoreset_mode='Disabled' (set by the pipeline)",
                       "num_envs": "set `env.num_envs`"}


def reward_names() -> list[str]:
    """Registered reward names (``textgym.rewards.list()``)."""
    import textgym.rewards

    return textgym.rewards.list()


#: How to use a reward of your own, appended to an unknown reward name's error (train and compare alike).
OWN_REWARD_HINT = ("see `textgym list rewards`; for a reward of your own, register it with "
                   "@textgym.rewards.register('NAME') in a module (e.g. my_reward.py in the working directory) "
                   "and import it: `imports: [my_reward]` in the config, or `textgym compare --import my_reward`")


#: keys of a reward mapping that say where it runs (``backend: local | ray``, ``actors: N``), not what it scores
REWARD_BACKEND_KEYS = ("backend", "actors")


def _check_reward_backend(spec: Any, path: str) -> Any:
    """Check ``backend`` / ``actors`` of a reward mapping; return the spec without them.

    Raises:
        ConfigError: a backend other than ``local`` / ``ray``, ``actors`` not an integer >= 1 or
            without ``backend: ray``, or ``backend: ray`` without Ray installed.
    """
    if not isinstance(spec, Mapping) or not set(REWARD_BACKEND_KEYS) & set(spec):
        return spec
    backend = spec.get("backend", "local")
    if backend not in ("local", "ray"):
        raise ConfigError(f"a reward's backend is 'local' (in this process) or 'ray' (on Ray actors), got "
                          f"{backend!r}", f"{path}.backend")
    if "actors" in spec:
        n = spec["actors"]
        if backend != "ray":
            raise ConfigError("actors is the number of Ray actors; it needs backend: ray", f"{path}.actors")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"actors must be an integer >= 1, got {n!r}", f"{path}.actors")
    if backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("backend: ray needs Ray, which is not installed; install it with: "
                              "pip install 'textgym[ray]'", f"{path}.backend")
    return {k: v for k, v in spec.items() if k not in REWARD_BACKEND_KEYS}


def check_reward_spec(spec: Any, path: str) -> None:
    """Check a reward spec (name, ``{name: ..., **kwargs}``, ``{weighted: {name: weight}}``) against the registry.

    Raises:
        ConfigError: unknown name or malformed spec.
    """
    spec = _check_reward_backend(spec, path)
    names = reward_names()
    hint = OWN_REWARD_HINT
    if isinstance(spec, str):
        check_choice(spec, names, "reward", path, hint)
    elif isinstance(spec, Mapping):
        if "weighted" in spec:
            if set(spec) != {"weighted"} or not isinstance(spec["weighted"], Mapping) or not spec["weighted"]:
                raise ConfigError("a weighted reward is {weighted: {NAME: WEIGHT, ...}} and nothing else", path)
            for name, w in spec["weighted"].items():
                check_choice(str(name), names, "reward", f"{path}.weighted.{name}", hint)
                coerce_number(float, w, f"{path}.weighted.{name}")
        elif "name" in spec:
            check_choice(str(spec["name"]), names, "reward", f"{path}.name", hint)
        else:
            raise ConfigError("a reward is a registered name, {name: NAME, ...kwargs} or "
                              "{weighted: {NAME: WEIGHT, ...}}", path)
    else:
        raise ConfigError(f"a reward is a registered name or a mapping, got {spec!r}", path)


def build_reward(spec: Any) -> Any:
    """A reward object from a spec (see :mod:`textgym.app.config`); names pass through (the env makes them)."""
    if isinstance(spec, Mapping) and spec.get("backend", "local") == "ray":
        import textgym.rewards as R

        inner = build_reward({k: v for k, v in spec.items() if k not in REWARD_BACKEND_KEYS})
        return R.RayRewardWorkers(inner if not isinstance(inner, str) else R.make(inner),
                                  actors=int(spec.get("actors", 2)))
    if isinstance(spec, Mapping):
        import textgym.rewards as R

        spec = {k: v for k, v in spec.items() if k not in REWARD_BACKEND_KEYS}
        if "weighted" in spec:
            w = {str(k): float(v) for k, v in spec["weighted"].items()}
            return R.WeightedSum({k: k for k in w}, weights=w)
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        return R.make(str(spec["name"]), **kwargs)
    return spec


def _env_factory(env_id: str) -> Any:
    """The task factory registered for ``env_id`` (``None`` if textgym did not register it)."""
    from textgym.envs import task_factory

    return task_factory(env_id)


def is_conversation_env(env_id: str) -> bool:
    """Whether ``env_id`` is registered as a conversation (multi-turn) task (a :class:`textgym.MultiTurnEnv`)."""
    import gymnasium as gym

    from textgym.envs import _multiturn

    try:
        entry = gym.spec(env_id).entry_point
    except gym.error.Error:
        return False
    return getattr(entry, "__module__", None) == _multiturn.__name__


def check_env(env_id: str, kwargs: Mapping[str, Any], path: str) -> None:
    """Check an env section: a registered id, no pipeline-managed kwarg, arguments the task takes, its reward."""
    import inspect

    import textgym

    ids = textgym.list_envs()
    check_choice(env_id, ids, "env", f"{path}.id", "see `textgym list envs`")
    for key, why in PIPELINE_ENV_KWARGS.items():
        if key in kwargs:
            raise ConfigError(f"do not set {key!r} here: {why}", f"{path}.kwargs.{key}")
    factory = _env_factory(env_id)
    if factory is not None:
        from textgym.envs._multiturn import MT_ENV_KWARGS
        from textgym.envs.common import ENV_KWARGS

        params = inspect.signature(factory).parameters
        named = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        env_kwargs = MT_ENV_KWARGS if is_conversation_env(env_id) else ENV_KWARGS  # what **kwargs passes on
        extra = set(env_kwargs) if any(p.kind == p.VAR_KEYWORD for p in params.values()) else set()
        valid = sorted((set(named) | extra) - set(PIPELINE_ENV_KWARGS))
        for key in kwargs:
            if key not in valid:
                raise ConfigError(f"{env_id} takes no argument {key!r}.{suggest(key, valid)} "
                                  f"Valid: {', '.join(valid)}", f"{path}.kwargs.{key}")
    if kwargs.get("reward") is not None:
        check_reward_spec(kwargs["reward"], f"{path}.kwargs.reward")


def check_model(model: str, key: str = "model", extra: Sequence[str] = ()) -> None:
    """Check a model name / folder (``extra``: more accepted names, e.g. the MiniLM backbone)."""
    if not model:
        raise ConfigError("a run needs a model (a textgym.models name, a local model folder or a run folder)", key)
    path = Path(model).expanduser()
    if path.exists():
        if path.is_dir() and any((path / f).is_file() for f in ("config.json", "run_state.json")):
            return
        what = "a file" if not path.is_dir() else ("empty" if not any(path.iterdir()) else "not a model folder")
        raise ConfigError(f"{model!r} is {what}: give a Hugging Face model folder (config.json, weights and "
                          "tokenizer files), a textgym run folder, or a model name such as tiny-llama", key)
    from textgym.models import ALIASES, TINY_PRESETS

    known = sorted({*ALIASES, *TINY_PRESETS, *extra})
    if model in known:
        return
    if "/" in model and not model.startswith((".", "/", "~")):
        return  # a Hub id: loadable where the network (or the local HF cache) allows
    raise ConfigError(f"{model!r} is neither a known model name nor an existing folder.{suggest(model, known)} "
                      f"Known names: {', '.join(known)}", key)
