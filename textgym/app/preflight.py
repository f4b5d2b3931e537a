"""Pre-flight checks of a run config: what the YAML schema cannot see, checked before any model loads.

:func:`textgym.app.config.load_config` checks types, ranges and names.  Some
mistakes only show when the pieces meet: a model folder with no tokenizer, a
``vocab_size`` smaller than the tokenizer's ids, a split the task lacks, a
reward that raises or returns NaN or the wrong shape.  :func:`preflight`
builds each env of the run with one row and the model's tokenizer (no model
weights), and scores one completion (a reference of the first sample, else a
short text) with each env's reward.  It runs before the run folder is created,
so a config that fails leaves nothing behind; every failure is a
:class:`textgym.app.config.ConfigError` naming the key.
"""

from __future__ import annotations

from typing import Any

from textgym.app.config import ConfigError, RunConfig

__all__ = ["preflight", "check_reward"]

#: The completion scored when the first sample has no reference.
DUMMY_COMPLETION = "ok"


class _ConstantReward:
    """Stands in for a reward that does not exist yet (the run's reward model, trained by the run)."""

    name, dense, batched, needs_text = "placeholder", False, True, False

    def __call__(self, prompts, completions, *, references=None, **columns):
        import numpy as np

        return np.zeros(len(completions), np.float32)


def check_reward(env: Any, key: str) -> None:
    """Score one completion of ``env``'s first sample with its reward, as the env would.

    Raises:
        ConfigError: at ``key``: the reward raised, or returned NaN / inf / the wrong shape
            (with ``reward_on_error: penalty`` only a reward the penalty cannot cover).
    """
    from textgym.reward_api import RewardError, call_reward

    inner = env.unwrapped
    data = inner.data
    refs = data.references(0)
    completion = refs[0] if refs else DUMMY_COMPLETION
    cols = {k: [v] for k, v in data.columns(0).items()}
    try:
        call_reward(inner.reward_fn, [data.prompt(0)], [completion], references=[refs], columns=cols,
                    on_error=getattr(inner, "reward_on_error", "raise"))
    except RewardError as exc:
        raise ConfigError(f"the reward fails on a first test completion: {exc}", key) from None


def preflight(cfg: RunConfig) -> Any:
    """Check ``cfg``'s model tokenizer, envs and rewards without loading a model.

    Returns:
        The tokenizer.

    Raises:
        ConfigError: naming the key at fault (``model``, ``env.kwargs``, ``env.kwargs.reward``, ...).
    """
    from textgym.app.pipeline import make_vec_env, resolve_model
    from textgym.models import load_tokenizer

    try:
        tok = load_tokenizer(resolve_model(cfg.model))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the model's tokenizer: {_first_line(exc)}", "model") from None
    own_reward = cfg.reward_model is not None and cfg.reward_model.use_as_reward
    for section, env_id, kwargs in (("env", cfg.env.id, cfg.env.kwargs),
                                    ("eval_env", cfg.eval_env.id, cfg.eval_env.kwargs)):
        try:
            env = make_vec_env(env_id, 1, kwargs, tok, _ConstantReward() if own_reward else None)
        except ConfigError:
            raise
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise ConfigError(f"cannot build {env_id}: {_first_line(exc)}", f"{section}.kwargs") from None
        try:
            if not own_reward:
                check_reward(env, f"{section}.kwargs.reward")
        finally:
            env.close()
    return tok


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split())
