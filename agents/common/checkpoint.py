"""Checkpoint I/O: atomic directories, the policy on disk, and every RNG state needed to resume exactly.

An atomic directory (:func:`atomic_directory`) is complete only when its
``MANIFEST.json`` - every file's size and sha256, written after all files and
fsynced - matches its files; :func:`recover_directory` puts the newest complete
one back after a kill and deletes the half-written or half-deleted rest.

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

__all__ = ["MANIFEST", "CheckpointError", "atomic_directory", "write_manifest", "check_manifest",
           "recover_directory", "discard_directory", "save_policy", "load_policy", "rng_state", "set_rng_state",
           "env_state", "set_env_state"]


#: The completion marker of an atomic directory: every file's size and sha256, written (and fsynced) last.
MANIFEST = "MANIFEST.json"


class CheckpointError(RuntimeError):
    """A checkpoint folder whose manifest does not match its files, with no complete one to fall back on."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(folder: str | os.PathLike) -> Path:
    """Fsync every file under ``folder``, then write ``MANIFEST.json`` (sizes, sha256) and fsync it.

    Returns:
        The manifest's path.
    """
    import hashlib
    import time

    folder = Path(folder)
    files = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / MANIFEST):
        with open(f, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            os.fsync(fh.fileno())
        files[f.relative_to(folder).as_posix()] = {"size": f.stat().st_size, "sha256": digest}
    for d in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_dir(d)
    path = folder / MANIFEST
    with open(path, "w") as fh:
        json.dump({"format": 1, "created_ns": time.time_ns(), "files": files}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(folder)
    return path


def check_manifest(folder: str | os.PathLike, *, hashes: bool = True) -> str | None:
    """Why ``folder`` is not a complete atomic directory, or ``None`` when it is.

    Complete means: ``MANIFEST.json`` parses and every file it lists exists with the
    listed size (and, with ``hashes``, the listed sha256).
    """
    import hashlib

    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        int(manifest["created_ns"])
    except FileNotFoundError:
        return f"no {MANIFEST} (its writing never finished)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {MANIFEST} ({type(exc).__name__})"
    for rel, meta in files.items():
        f = folder / rel
        if not f.is_file():
            return f"{rel} is missing"
        if f.stat().st_size != meta["size"]:
            return f"{rel} has {f.stat().st_size} bytes, the manifest says {meta['size']}"
        if hashes:
            with open(f, "rb") as fh:
                if hashlib.file_digest(fh, "sha256").hexdigest() != meta["sha256"]:
                    return f"{rel} does not match its sha256 in the manifest"
    return None


def manifest_time(folder: str | os.PathLike) -> int:
    """When ``folder``'s manifest was written (``time.time_ns()``)."""
    return int(json.loads((Path(folder) / MANIFEST).read_text())["created_ns"])


def discard_directory(folder: str | os.PathLike) -> None:
    """Delete ``folder``, its manifest first: a kill halfway leaves a folder no one takes for complete."""
    folder = Path(folder)
    if not folder.exists():
        return
    try:
        (folder / MANIFEST).unlink(missing_ok=True)
        _fsync_dir(folder)
    except OSError:
        pass
    shutil.rmtree(folder, ignore_errors=True)


def leftover_directories(path: str | os.PathLike) -> list[Path]:
    """The ``.<name>.tmp-*`` / ``.<name>.old-*`` folders :func:`atomic_directory` may leave beside ``path``."""
    path = Path(path)
    return sorted(p for pat in (f".{path.name}.tmp-*", f".{path.name}.old-*") for p in path.parent.glob(pat)
                  if p.is_dir())


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path``.

    Steps on success: 1. :func:`write_manifest` (every file fsynced, then
    ``MANIFEST.json``, the completion marker, written last and fsynced); 2. the
    old ``path`` renamed aside to ``.<name>.old-*``; 3. the new folder renamed to
    ``path``; 4. the old one deleted, its manifest first.  A kill at any moment
    leaves at least one complete folder (target, ``.old-*`` or ``.tmp-*``), and
    :func:`recover_directory` puts the newest complete one back.  On error the
    temporary folder is removed.
    """
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        write_manifest(tmp)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            discard_directory(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recover_directory(path: str | os.PathLike, *, legacy_ok: Any = None) -> Path | None:
    """Put the newest complete atomic directory back at ``path`` and remove the leftovers of kills.

    Candidates are ``path`` and its ``.tmp-*`` / ``.old-*`` siblings; complete ones pass
    :func:`check_manifest` (sizes and sha256).  The newest complete one (by manifest time;
    ``path`` itself on a tie) ends up at ``path``; every other candidate is deleted.  A
    ``path`` without manifest (written before manifests existed) is kept when no candidate
    is complete and ``legacy_ok(path)`` says it is usable.

    Returns:
        ``path`` if it now holds a checkpoint, else ``None``.

    Raises:
        CheckpointError: ``path`` has a manifest its files do not match and no other
            candidate is complete (damaged on disk: delete it to start over).
    """
    path = Path(path)
    leftovers = leftover_directories(path)
    complete = [(manifest_time(p), p == path, p) for p in [path, *leftovers]
                if p.is_dir() and check_manifest(p) is None]
    result: Path | None = None
    if complete:
        best = max(complete)[2]
        if best != path:
            if path.exists():
                aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
                os.replace(path, aside)
                leftovers.append(aside)
            os.replace(best, path)
            _fsync_dir(path.parent)
        result = path
    elif path.is_dir():
        if (path / MANIFEST).exists():
            raise CheckpointError(f"checkpoint {path} is damaged ({check_manifest(path)}) and no complete one is "
                                  f"left beside it; delete {path} to start that stage over")
        if legacy_ok is not None and legacy_ok(path):
            result = path
    for p in leftovers:
        if p != path and p.exists():
            discard_directory(p)
    return result


# ---------------------------------------------------------------------------- policy
def save_policy(policy: Any, directory: str | os.PathLike, lm_state: dict[str, torch.Tensor] | None = None,
                reference_state: dict[str, torch.Tensor] | None = None) -> None:
    """Write ``policy`` (an :class:`LMActorCritic`) into an existing ``directory`` (see module docstring).

    ``lm_state`` / ``reference_state``: full state dicts to write instead of the modules' own (an
    FSDP-sharded policy's, gathered by :func:`textgym.agents.common.fsdp.full_state`).
    """
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
        policy.lm.save_pretrained(d / "policy", state_dict=lm_state)
        if policy.source is None:
            policy.ref_model.save_pretrained(d / "reference", state_dict=reference_state)
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
