"""``textgym export RUN OUT [--merge]``: a run's final model as a plain ``transformers`` folder.

The exported folder loads offline with nothing from textgym::

    AutoModelForCausalLM.from_pretrained(OUT)
    pipeline("text-generation", OUT)

It holds the weights (``save_pretrained``), the tokenizer (with its chat template,
when the model has one), a ``generation_config.json`` whose pad / EOS ids match
the tokenizer, and a ``README.md`` model card (how it was trained, data, reward,
metrics, the config).  The final model is the RL policy (``checkpoint/``), else the
SFT model (``sft/``).

LoRA runs: ``--merge`` folds the adapter into the base weights (a standalone model).
Without it, ``OUT`` is the peft adapter folder and ``OUT/base`` the base model;
``adapter_config.json`` names that folder as ``base_model_name_or_path`` (an absolute
path), so ``AutoPeftModelForCausalLM.from_pretrained(OUT)`` (and transformers'
adapter loading) resolve the base offline.  The folder is written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["export_run", "export_model", "main"]


class ExportError(RuntimeError):
    """A run folder with nothing to export, or an output folder in the way."""


def _set_generation_ids(model: Any, tokenizer: Any) -> None:
    gc = getattr(model, "generation_config", None)
    if gc is None or tokenizer is None:
        return
    if tokenizer.eos_token_id is not None:
        gc.eos_token_id = tokenizer.eos_token_id
        model.config.eos_token_id = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is not None:
        gc.pad_token_id = pad
        model.config.pad_token_id = pad


def export_model(model: Any, tokenizer: Any, out: str | os.PathLike, *, merge: bool = True,
                 card: str | None = None) -> Path:
    """Write ``model`` (a transformers model or a peft model) and ``tokenizer`` to ``out`` (atomically).

    Args:
        model: the causal LM; a ``peft.PeftModel`` is merged (``merge=True``) or written as
            adapter + ``base/`` folder.
        tokenizer: saved beside the weights (chat template included).
        out: the folder to write (replaced if it exists).
        merge: fold a LoRA adapter into the weights.
        card: the ``README.md`` text (``None``: none).

    Returns:
        ``out`` as an absolute path.
    """
    from textgym.agents.common.checkpoint import atomic_directory

    out = Path(out).expanduser().resolve()
    is_peft = hasattr(model, "peft_config")
    with atomic_directory(out) as tmp:
        if is_peft and merge:
            active = model.active_adapter
            plain = model.merge_and_unload(adapter_names=[active])
            _set_generation_ids(plain, tokenizer)
            plain.save_pretrained(tmp)
        elif is_peft:
            active = model.active_adapter
            model.save_pretrained(tmp, selected_adapters=[active])
            nested = tmp / active
            if active != "default" and (nested / "adapter_config.json").is_file():
                for f in nested.iterdir():
                    shutil.move(str(f), tmp / f.name)
                nested.rmdir()
            base = model.unload()  # the base weights without the LoRA layers (not merged)
            _set_generation_ids(base, tokenizer)
            base.save_pretrained(tmp / "base")
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp / "base")
            conf_path = tmp / "adapter_config.json"
            conf = json.loads(conf_path.read_text())
            conf["base_model_name_or_path"] = str(out / "base")
            conf_path.write_text(json.dumps(conf, indent=2))
        else:
            _set_generation_ids(model, tokenizer)
            model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if card is not None:
            (tmp / "README.md").write_text(card)
    return out


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, merge: bool = False) -> Path:
    """Export the final model of ``run_dir`` (RL policy, else SFT model) to ``out``.

    Raises:
        ExportError: not a run folder, or no trained model in it.
    """
    from textgym.app.model_card import model_card

    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise ExportError(f"{str(run)!r} is not a textgym run folder (no config.yaml)")
    ckpt = run / "checkpoint"
    if (ckpt / "policy.json").is_file():
        from textgym.agents.common.checkpoint import load_policy

        policy = load_policy(ckpt)
        model, tok, what = policy.model, policy.tokenizer, "the RL policy"
        if getattr(policy, "is_lora", False) and not merge:
            what += " (LoRA adapter; the base model is in base/)"
    elif (stage := next((s for s in ("preference", "sft") if (run / s / "config.json").is_file()), None)):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(run / stage, dtype="auto")
        tok = AutoTokenizer.from_pretrained(run / stage)
        what = "the preference-optimized model" if stage == "preference" else "the SFT model"
    elif (ckpt).is_dir():
        raise ExportError(f"run {str(run)!r} keeps its policy in the algorithm's own format (SB3); export supports "
                          "textgym's algorithms and SFT models")
    else:
        raise ExportError(f"run {str(run)!r} has no trained model yet (no checkpoint/ or sft/)")
    if merge and what.startswith("the RL policy"):
        what += " (LoRA merged)" if getattr(policy, "is_lora", False) else ""
    return export_model(model, tok, out, merge=merge, card=model_card(run, what=what))


def main(run_dir: str, out: str, *, merge: bool = False, overwrite: bool = False) -> Path:
    """The ``textgym export`` command (see :func:`export_run`).

    Raises:
        ExportError: ``out`` exists and is not empty (without ``overwrite``), or see :func:`export_run`.
    """
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise ExportError(f"{out!r} exists already; pick another folder or pass --overwrite")
    return export_run(run_dir, out, merge=merge)
