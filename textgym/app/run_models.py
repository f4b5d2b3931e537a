"""Which model a run starts from or trained: run folders resolved to model folders, trained policies loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textgym.app.config import ConfigError
from textgym.app.run_folder import has_checkpoint
from textgym.app.run_state import RunFolderError

__all__ = ["actor_critic", "load_trained_policy", "resolve_model", "policy_for_eval", "eval_logits_processor"]


def actor_critic(algo: Any) -> Any:
    """The :class:`LMActorCritic` an algorithm trains (SB3 adapters keep it as ``policy.lm_policy``)."""
    return getattr(algo.policy, "lm_policy", algo.policy)


def load_trained_policy(run_dir: Path, algorithm: str, env: Any) -> Any:
    """The policy in ``run_dir/checkpoint`` (a policy folder, else through the algorithm's ``load``).

    Raises:
        RunFolderError: no checkpoint.
    """
    ckpt = Path(run_dir) / "checkpoint"
    if (ckpt / "policy.json").is_file():
        from textgym.agents.common.checkpoint import load_policy

        return load_policy(ckpt)
    if not has_checkpoint(ckpt):
        raise RunFolderError(f"run {run_dir} has no checkpoint/ yet; train (or resume) it first")
    from textgym.agents.algorithms import registry

    algo = registry.get_algorithm(algorithm).load(ckpt, env, run_dir=None, progress_bar=False)
    return actor_critic(algo)



def resolve_model(model: str) -> str:
    """The model to load for ``model``: a run folder -> its trained (or SFT) model folder; paths made absolute.

    Raises:
        ConfigError: a run folder without a trained model, or one that trained a LoRA adapter
            (start from its base model with ``algo.adapter: <run>/checkpoint/policy`` instead).
    """
    p = Path(model).expanduser()
    if (p / "run_state.json").is_file():
        ckpt = p / "checkpoint"
        if (ckpt / "policy.json").is_file():
            meta = json.loads((ckpt / "policy.json").read_text())
            if meta.get("is_lora"):
                raise ConfigError(f"run {str(p)!r} trained a LoRA adapter; set model to its base model and "
                                  f"algo.adapter: {ckpt / 'policy'}", "model")
            return str((ckpt / "policy").resolve())
        for stage in ("preference", "sft"):
            if (p / stage / "config.json").is_file():
                return str((p / stage).resolve())
        raise ConfigError(f"run {str(p)!r} has no trained model yet (no checkpoint/, preference/ or sft/)", "model")
    return str(p.resolve()) if p.exists() else model



def policy_for_eval(model_path: str, action_size: int, seed: int, reference_path: str | None = None) -> Any:
    """An :class:`LMActorCritic` of ``model_path`` whose reference is ``reference_path``'s model (or itself)."""
    from textgym.agents.common.policy import LMActorCritic
    from textgym.models import load

    model, tok = load(model_path, "causal", seed=seed)
    ref = model if reference_path is None else load(reference_path, "causal", seed=seed)[0]
    return LMActorCritic(model, tok, action_size=action_size, reference=ref)


def eval_logits_processor(algorithm: str, env: Any) -> Any:
    """The logits processor evaluations of a run of ``algorithm`` on ``env`` sample under, or ``None``.

    The algorithm class's ``eval_logits_processor(env)`` if it has one: ``sb3-maskable-ppo`` samples the
    env's allowed tokens (``allowed_token_ids``), before training too, so before and after compare one
    distribution.  ``None`` for the other algorithms and for runs without RL.
    """
    from textgym.agents.algorithms import registry

    name = str(algorithm).lower()
    if name not in registry.ALGORITHMS:
        return None
    make = getattr(registry.get_algorithm(name), "eval_logits_processor", None)
    return make(env) if make is not None else None
