"""Completions for a new feedback project, sampled from a model on an env's prompts.

``N`` prompts of the env's split (the same choice as evaluation: a seeded permutation,
:func:`textgym.agents.common.evaluation.eval_sample_indices`) get ``K`` completions each, sampled
with textgym's own rollout (:class:`textgym.agents.common.rollout.RolloutCollector`: batched,
KV-cached, the env's stop tokens and length limit).  The prompt stored is the env's
text prompt; the completion is what the env decodes (stop token removed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["sample_items", "create_project"]


def sample_items(model: str, env_id: str, *, prompts: int, k: int, split: str = "test", seed: int = 0,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0, batch_size: int = 16,
                 env_kwargs: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``prompts`` rows ``{"prompt", "completions": [k texts], "source"}`` sampled from ``model`` on ``env_id``.

    Args:
        model: a model name, model folder or run folder (its trained policy, else its SFT model).
        env_id: a registered env id.
        prompts, k: how many prompts, completions per prompt (``k >= 2``).
        split: the env's data split.
        seed: prompt choice and sampling seed.
        temperature, top_k, top_p: the sampling distribution.
        batch_size: episodes generated together.
        env_kwargs: other env overrides (``max_new_tokens``, ...).
    """
    import numpy as np

    from textgym.agents.common.evaluation import eval_sample_indices
    from textgym.app.pipeline import make_vec_env, resolve_model
    from textgym.agents.common.policy import LMActorCritic
    from textgym.agents.common.rollout import RolloutCollector
    from textgym.agents.common.sampling import SamplingParams
    from textgym.models import load
    from textgym.prompts import decode_completions

    if prompts < 1 or k < 2:
        raise ValueError(f"need --prompts >= 1 and --k >= 2, got {prompts} and {k}")
    lm, tok = load(resolve_model(model), "causal", seed=seed)
    env = make_vec_env(env_id, batch_size, {**dict(env_kwargs or {}), "split": split}, tok)
    inner = env.unwrapped
    policy = LMActorCritic(lm, tok, action_size=inner.vocab_size, reference=lm)
    collector = RolloutCollector(policy, inner, SamplingParams(temperature, top_k, top_p, False), seed=seed)
    chosen = eval_sample_indices(len(inner.data), min(prompts, len(inner.data)), seed)
    episodes = np.repeat(chosen, k)  # each prompt k times in a row
    texts: list[str] = []
    for s in range(0, len(episodes), batch_size):
        chunk = episodes[s : s + batch_size]
        b = collector.collect(seed=seed if s == 0 else None,
                              options={"sample_indices": np.resize(chunk, batch_size).tolist()})
        ends = (b.lengths - b.terminated.long()).tolist()[: len(chunk)]
        rows = [a[:e].numpy() for a, e in zip(b.actions[: len(chunk)], ends)]
        texts += decode_completions(inner.tokenizer, rows, getattr(inner, "skip_special_tokens", True))
    env.close()
    source = f"{model} on {env_id} ({split})"
    return [{"prompt": inner.data.prompt(int(idx)), "completions": texts[i * k : (i + 1) * k], "source": source}
            for i, idx in enumerate(chosen)]


def create_project(path: Any, rows: list[Mapping[str, Any]], *, origin: str | None = None,
                   judgments_per_item: int = 2) -> tuple[int, str]:
    """Create the project file ``path`` holding ``rows``; returns ``(items, admin token)``.

    The project is built in a temporary file beside ``path`` and renamed into place once
    complete, so an interrupted creation never leaves a project without its items
    (``textgym feedback new`` and the run config's ``feedback`` stage both use this).

    Raises:
        textgym.app.feedback.db.ProjectError: ``path`` exists already, or a bad row (nothing is created).
    """
    import os
    from pathlib import Path

    from textgym.app.feedback.db import Project, ProjectError

    path = Path(path)
    if path.exists():
        raise ProjectError(f"{path} already exists; pick a new project file or delete it first")
    tmp = path.with_name(f".{path.name}.creating")
    extras = [Path(f"{tmp}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]
    for f in extras:
        f.unlink(missing_ok=True)  # a creation interrupted before
    try:
        project = Project(tmp, create=True, judgments_per_item=judgments_per_item)
        try:
            n = project.add_items(rows, origin=origin)
            token = project.add_annotator("admin", role="admin")
            project.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            project.close()  # the last connection: SQLite folds the WAL into the file
        os.replace(tmp, path)
    finally:
        for f in extras:
            f.unlink(missing_ok=True)
    return n, token
