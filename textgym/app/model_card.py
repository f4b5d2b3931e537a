"""Model cards: a ``README.md`` beside every final model a run writes, and in every export.

The card says how the model was trained (base model, algorithm, env, data, reward,
length, seed), lists the before/after evaluation (``eval.json``), embeds the
resolved ``config.yaml`` and shows how to load the folder with plain
``transformers``.  :func:`write_run_cards` is called by the pipeline's report stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["model_card", "write_run_cards", "final_model_dirs"]


def final_model_dirs(run_dir: str | Path) -> list[Path]:
    """The run's final model folders that exist: ``checkpoint/policy`` (RL), ``preference`` and ``sft``."""
    run = Path(run_dir)
    dirs = (run / "checkpoint" / "policy", run / "preference", run / "sft")
    return [p for p in dirs if (p / "config.json").is_file() or (p / "adapter_config.json").is_file()]


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_card(run_dir: str | Path, *, what: str, load_hint: str | None = None) -> str:
    """The Markdown card of a model trained in ``run_dir``.

    Args:
        run_dir: the run folder (its ``config.yaml``, ``run_state.json`` and ``eval.json`` are read).
        what: which model this is (``"the RL policy"``, ``"the SFT model"``, ``"merged export"``).
        load_hint: the folder to show in the loading snippet (default ``"."``).
    """
    import yaml

    run = Path(run_dir)
    cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    state = json.loads((run / "run_state.json").read_text()) if (run / "run_state.json").is_file() else {}
    evals = json.loads((run / "eval.json").read_text()) if (run / "eval.json").is_file() else {}
    env = cfg.get("env") or {}
    kw = env.get("kwargs") or {}
    ev = cfg.get("eval_env") or {}
    rl = state.get("rl") or {}
    rm = cfg.get("reward_model")
    reward = "the run's trained reward model (reward_model stage)" if rm and rm.get("use_as_reward") else \
        kw.get("reward", "the env's default reward")
    data = kw.get("data") or kw.get("samples") or f"{env.get('id')}'s own data"
    lines = [
        f"# {cfg.get('name', run.name)}: {what}", "",
        "Trained with textgym (`textgym train`).", "",
        "## How it was trained", "",
        f"- base model: `{cfg.get('model')}`",
        f"- algorithm: `{cfg.get('algorithm')}`"
        + (f", {rl.get('iteration', 0)} iterations, {rl.get('num_timesteps', 0)} generated tokens" if rl else ""),
        f"- env: `{env.get('id')}` (split `{kw.get('split', 'train')}`), {env.get('num_envs')} episodes per rollout",
        f"- data: `{data}`",
        f"- reward: `{json.dumps(reward) if not isinstance(reward, str) else reward}`",
        f"- seed: {cfg.get('seed')}",
    ]
    if cfg.get("sft"):
        d = cfg["sft"].get("data") or {}
        lines.append(f"- SFT warm start on `{d.get('path') or d.get('task')}` ({d.get('split', 'train')})")
    if cfg.get("imports"):
        lines.append(f"- imported modules: {', '.join(f'`{m}`' for m in cfg['imports'])}")
    lines += ["", "## Evaluation", ""]
    if evals:
        stages = list(evals)
        metrics = [m for m in dict.fromkeys(k for s in stages for k in evals[s]) if not m.startswith("time/")]
        lines.append(f"On `{ev.get('id', env.get('id'))}`, split `{(ev.get('kwargs') or {}).get('split', 'test')}`, "
                     f"{(cfg.get('eval') or {}).get('n_episodes')} episodes:")
        lines += ["", "| metric | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
        lines += [f"| {m} | " + " | ".join(_fmt(evals[s].get(m, "")) for s in stages) + " |" for m in metrics]
    else:
        lines.append("No evaluation recorded.")
    where = load_hint or "."
    lines += ["", "## Load it", "", "```python",
              "from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline",
              f'model = AutoModelForCausalLM.from_pretrained("{where}")',
              f'tok = AutoTokenizer.from_pretrained("{where}")',
              f'gen = pipeline("text-generation", "{where}")', "```", "",
              "## Config", "", "```yaml", yaml.safe_dump(cfg, sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines)


def write_run_cards(run_dir: str | Path) -> list[Path]:
    """Write ``README.md`` into every final model folder of ``run_dir``; returns the files written."""
    from textgym.app.run_folder import write_atomic

    out = []
    for folder in final_model_dirs(run_dir):
        what = "the RL policy" if folder.name == "policy" else "the SFT model"
        if (folder / "adapter_config.json").is_file():
            what += " (a LoRA adapter: `textgym export RUN OUT --merge` writes a standalone model)"
        path = folder / "README.md"
        write_atomic(path, model_card(run_dir, what=what))
        out.append(path)
    return out
