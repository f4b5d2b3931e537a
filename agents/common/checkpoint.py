"""Checkpoint I/O: atomic directories, the policy on disk, and every RNG state needed to resume exactly.

Layout of a policy folder (written by :func:`save_policy`)::

    policy/            Hugging Face model dir (save_pretrained) + tokenizer;
                       with LoRA: the peft adapter dir (adapter_config.json, adapter_model.safetensors)
    value_head.safetensors
    policy.json        kind, LoRA flags, action size, where the base/reference weights come from
    reference/         (no LoRA, base not rebuildable by name) the frozen reference model
    reference_adapter/ (LoRA started from an adapter) the frozen reference adapter
    base.safetensors + base_config/   (LoRA, base not rebuildable by name) the base weights

"Rebuildable by name" means the policy was made by ``LMActorCritic.from_pretrained``
(a preset/alias/path plus seed), so loading calls :func:`textgym.models.load` again
instead of storing a second full copy of the weights.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["atomic_directory", "save_policy", "load_policy", "rng_state", "set_rng_state", "env_state",
           "set_env_state"]


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` in one rename.

    An interrupted save leaves the previous checkpoint intact (at worst a
    ``.<name>.tmp-*`` folder beside it).  On error the temporary folder is removed.
    """
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- policy
def save_policy(policy: Any, directory: str | os.PathLike) -> None:
    """Write ``policy`` (an :class:`LMActorCritic`) into an existing ``directory`` (see module docstring)."""
    from safetensors.torch import save_file
    from textgym.agents.common.policy import REFERENCE_ADAPTER

    d = Path(directory)
    meta = {"class": type(policy).__name__, "is_lora": policy.is_lora, "action_size": policy.action_size,
            "has_reference_adapter": policy.has_reference_adapter, "source": policy.source}
    if policy.is_lora:
        active = policy.model.active_adapter
        policy.model.save_pretrained(d / "policy", selected_adapters=[active])
        if active != "default":  # peft writes non-default adapters into a sub-folder
            meta["adapter_subdir"] = active
        meta["active_adapter"] = active
        if policy.has_reference_adapter:
            policy.model.save_pretrained(d / "reference_adapter", selected_adapters=[REFERENCE_ADAPTER])
        if policy.source is None:
            base = {k: v.contiguous() for k, v in policy.model.state_dict().items() if "lora_" not in k}
            save_file(_untie(base), str(d / "base.safetensors"))
            policy.lm.config.save_pretrained(d / "base_config")
    else:
        policy.lm.save_pretrained(d / "policy")
        if policy.source is None:
            policy.ref_model.save_pretrained(d / "reference")
    if policy.tokenizer is not None:
        policy.tokenizer.save_pretrained(d / "policy")
    save_file({k: v.contiguous() for k, v in policy.value_head.state_dict().items()}, str(d / "value_head.safetensors"))
    (d / "policy.json").write_text(json.dumps(meta, indent=2))


def _untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    seen: dict[int, str] = {}
    out = {}
    for k, v in state.items():
        ptr = v.data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.setdefault(ptr, k)
    return out


def _adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def load_policy(directory: str | os.PathLike, device: Any = None) -> Any:
    """Rebuild the :class:`LMActorCritic` written by :func:`save_policy`.

    Raises:
        FileNotFoundError: ``directory`` has no ``policy.json``.
    """
    from safetensors.torch import load_file
    from textgym.agents.common.policy import REFERENCE_ADAPTER, LMActorCritic
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    d = Path(directory)
    if not (d / "policy.json").is_file():
        raise FileNotFoundError(f"{d} is not a saved textgym policy (no policy.json)")
    meta = json.loads((d / "policy.json").read_text())
    source = meta["source"]
    tok = AutoTokenizer.from_pretrained(d / "policy") if (d / "policy" / "tokenizer_config.json").exists() else None
    if tok is not None:
        tok.padding_side = "left"

    def base_from_source():
        from textgym.models import load

        return load(source["name"], "causal", dtype=source.get("dtype"), seed=source["seed"])[0]

    if meta["is_lora"]:
        if source is not None:
            base = base_from_source()
        else:
            base = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d / "base_config"))
        adapter_dir = d / "policy" / meta.get("adapter_subdir", "")
        policy = LMActorCritic(base, tok, adapter=str(adapter_dir), action_size=meta["action_size"], source=source)
        if source is None:
            missing = policy.model.load_state_dict(load_file(str(d / "base.safetensors")), strict=False)
            assert not missing.unexpected_keys, missing.unexpected_keys
        from peft import set_peft_model_state_dict

        if meta["has_reference_adapter"]:  # the saved reference, not a copy of the trained adapter
            ref_dir = d / "reference_adapter"
            if (ref_dir / REFERENCE_ADAPTER).is_dir():  # peft nests non-"default" adapters one level down
                ref_dir = ref_dir / REFERENCE_ADAPTER
            set_peft_model_state_dict(policy.model, _adapter_weights(ref_dir), adapter_name=REFERENCE_ADAPTER)
        else:  # reference = adapter disabled
            active = policy.model.active_adapter
            policy.model.delete_adapter(REFERENCE_ADAPTER)
            policy.model.set_adapter(active)
            policy.has_reference_adapter = False
    else:
        model = AutoModelForCausalLM.from_pretrained(d / "policy", dtype="auto")
        ref = base_from_source() if source is not None else AutoModelForCausalLM.from_pretrained(d / "reference",
                                                                                                 dtype="auto")
        policy = LMActorCritic(model, tok, action_size=meta["action_size"], source=source, reference=ref)
    policy.value_head.load_state_dict(load_file(str(d / "value_head.safetensors")))
    if device is not None:
        policy.to(device)
    return policy


# ---------------------------------------------------------------------------- RNG and env state
def rng_state() -> dict[str, Any]:
    """Global RNG states: Python ``random``, NumPy's legacy global generator, torch (CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def env_state(env: Any) -> dict[str, Any] | None:
    """Data position and RNGs of a :class:`textgym.TextGenVectorEnv` (its :meth:`state_dict`).

    Returns ``None`` for envs without ``state_dict`` (resume is then exact for
    the agent but not for the env's sample order).
    """
    env = getattr(env, "unwrapped", env)
    return env.state_dict() if callable(getattr(env, "state_dict", None)) else None


def set_env_state(env: Any, state: dict[str, Any] | None) -> None:
    """Restore :func:`env_state` (a no-op for ``None``).

    Raises:
        ValueError: the env has a different number of rows than the saved one, or cannot restore a state.
    """
    if state is None:
        return
    env = getattr(env, "unwrapped", env)
    if not callable(getattr(env, "load_state_dict", None)):
        raise ValueError(f"the checkpoint holds an env state but {type(env).__name__} cannot restore one; "
                         "resume with a textgym.TextGenVectorEnv")
    env.load_state_dict(state)
