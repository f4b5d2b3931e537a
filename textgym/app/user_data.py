"""Your own prompt data in a run config: ``env.kwargs.data`` of ``textgym/Text-v0``.

* :func:`resolve_data_paths` (from :func:`textgym.app.config.load_config`) makes a
  relative ``data:`` path absolute: relative to the working directory if it exists
  there, else to the config's folder.  The run's ``config.yaml`` keeps the absolute
  path, so ``textgym eval RUN`` and ``--resume`` read the same file from anywhere.
* :func:`check_user_data` (from :func:`textgym.app.config.parse_config`) reads the
  data once before any work starts: the file exists, the columns are there, the
  training and evaluation splits hold prompts, a reward is set, and the evaluation
  is really held out.
* :func:`describe_eval` is the line the pipeline prints (and writes to
  ``summary.md``) about what is evaluated: env, split, number of prompts, split rule.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["TEXT_ENV", "resolve_data_paths", "check_user_data", "describe_eval", "split_rule"]

#: The generic env whose prompts come from ``data:``.
TEXT_ENV = "textgym/Text-v0"
_DATA_KEYS = ("data", "samples")


def _abs(value: Any, config_dir: Path | None) -> Any:
    if isinstance(value, Mapping):
        return {k: _abs(v, config_dir) for k, v in value.items()}
    if not isinstance(value, str) or value.startswith(("hf://",)):
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    if p.exists():
        return str(p.resolve())
    if config_dir is not None and (config_dir / p).exists():
        return str((config_dir / p).resolve())
    return value  # reported by check_user_data


def resolve_data_paths(raw: dict[str, Any], config_dir: str | os.PathLike | None) -> dict[str, Any]:
    """``raw`` (a parsed YAML config, changed in place) with relative ``env.kwargs.data`` /
    ``eval_env.kwargs.data`` (and ``samples``) paths made absolute; returns ``raw``."""
    base = Path(config_dir).resolve() if config_dir is not None else None
    for section in ("env", "eval_env"):
        kwargs = (raw.get(section) or {}).get("kwargs") if isinstance(raw.get(section), Mapping) else None
        if isinstance(kwargs, dict):
            for key in _DATA_KEYS:
                if key in kwargs:
                    kwargs[key] = _abs(kwargs[key], base)
    return raw


def split_rule(kwargs: Mapping[str, Any]) -> str:
    """How ``textgym/Text-v0`` chose the rows of ``kwargs["split"]`` (for messages and ``summary.md``)."""
    from textgym.data_files import read_data

    split = kwargs.get("split", "train")
    if split == "all":
        return "every row"
    try:
        parts = read_data(kwargs.get("data"))
    except (OSError, ValueError):
        return "unknown"
    if set(parts) != {"all"}:
        return f"the {split!r} file"
    rows = parts["all"]
    if rows and "split" in rows[0]:
        return "the data's 'split' column"
    return f"hash of the prompt, test_fraction {kwargs.get('test_fraction', 0.1)}"


def check_user_data(cfg: Any, error: type[Exception]) -> None:
    """Check the envs' own data of a parsed :class:`textgym.app.config.RunConfig`; raise ``error(msg, key)``.

    * ``textgym/Text-v0``: ``data`` given and readable, its splits non-empty, a reward set
      (``env.kwargs.reward`` or ``reward_model.use_as_reward``); an evaluation on the training
      split of the same data is refused (it would not be held out).
    * a task env with ``samples:`` inherited by the eval env: refused, since the task's ``split``
      does not apply to your samples (the "held-out" evaluation would score training prompts).
    """
    from textgym.data_files import load_prompts

    rm = getattr(cfg, "reward_model", None)
    rm_reward = rm is not None and rm.use_as_reward
    for section, env in (("env", cfg.env), ("eval_env", cfg.eval_env)):
        kw = env.kwargs
        if env.id != TEXT_ENV:
            if section == "eval_env" and kw.get("samples") is not None and kw.get("samples") == cfg.env.kwargs.get(
                    "samples"):
                raise error(f"`samples` replaces {env.id}'s data, and its `split` does not apply to it, so the "
                            "evaluation would score the training prompts. For your own prompts use "
                            f"env: {{id: {TEXT_ENV}, kwargs: {{data: FILE, reward: ...}}}} (held-out split by a hash "
                            "of the prompt), or give eval_env.kwargs.samples a separate file", "env.kwargs.samples")
            continue
        data = kw.get("data", kw.get("samples"))
        if data is None:
            raise error(f"{TEXT_ENV} needs your prompts: set {section}.kwargs.data to a JSONL / JSON / CSV / Parquet "
                        "file or a folder", f"{section}.kwargs.data")
        if kw.get("reward") is None and not rm_reward:
            raise error(f"{TEXT_ENV} has no default reward: set {section}.kwargs.reward (a name from `textgym list "
                        "rewards`, or your own registered with textgym.rewards.register in a module listed under "
                        "`imports:`)", f"{section}.kwargs.reward")
        split = kw.get("split", "train")
        try:
            load_prompts(data, split, prompt_column=kw.get("prompt_column", "prompt"),
                         reference_column=kw.get("reference_column"), test_fraction=kw.get("test_fraction", 0.1))
        except (OSError, ValueError) as exc:
            raise error(str(exc), f"{section}.kwargs.data") from None
        if section == "eval_env" and cfg.env.id == TEXT_ENV and data == cfg.env.kwargs.get("data") and (
                split in ("all", cfg.env.kwargs.get("split", "train"))):
            raise error(f"the evaluation uses split {split!r} of the training data, so it is not held out: keep "
                        "eval_env.kwargs.split: test (the default), or give eval_env.kwargs.data another file",
                        "eval_env.kwargs.split")


def describe_eval(cfg: Any, env: Any) -> str:
    """``"16 episodes of textgym/Text-v0, split 'test' of /x/haiku.jsonl (5 prompts; hash of the prompt, ...)"``."""
    e = cfg.eval_env
    kw = e.kwargs
    n_prompts = len(env.unwrapped.data) if hasattr(env.unwrapped, "data") else None
    split = kw.get("split", "test")
    what = f"{cfg.eval.n_episodes} episodes of {e.id}, split {split!r}"
    if e.id == TEXT_ENV:
        data = kw.get("data", kw.get("samples"))
        what += f" of {data if isinstance(data, str) else type(data).__name__} ({split_rule(kw)}"
    elif kw.get("samples") is not None:
        what += " (your `samples`: the split does not apply"
    else:
        what += " (the task's split"
    if n_prompts is not None:
        what += f"; {n_prompts} prompts"
        if cfg.eval.n_episodes > n_prompts:
            what += ", repeated"
    return what + ")"
