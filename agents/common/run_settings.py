"""Run settings: where and how a run is recorded, apart from what the algorithm learns with.

Every algorithm's ``Config`` is its hyperparameters plus these settings (flat fields, so
``PPOConfig(learning_rate=1e-3, run_dir="runs/x", save_every=5)`` and the YAML ``algo``
block keep one level).  None of them changes what is learned: the same hyperparameters
and seed give the same model whatever the run folder, logging or progress bar.
(``device`` moves the computation, so float rounding may differ between devices.)

* :class:`RunSettings` - shared by every algorithm, the native ones and the SB3 adapters.
* :class:`OnPolicyRunSettings` - adds what the native algorithms record themselves:
  sample generations and periodic checkpoints (the SB3 adapters are checkpointed by the
  pipeline instead).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunSettings", "OnPolicyRunSettings"]


@dataclass
class RunSettings:
    """Settings of a run that are not hyperparameters (shared by every algorithm's config).

    Attributes:
        device: torch device for the policy (``None``: where the model is, CPU for names).
        run_dir: folder for ``metrics.csv``, TensorBoard, ``config.json`` (and, for the
            native algorithms, ``samples.jsonl`` and checkpoints); ``None``: log in memory only.
        tensorboard: write TensorBoard events in ``run_dir/tb``.
        progress_bar: show a tqdm bar in ``learn``.
    """

    device: str | None = None
    run_dir: str | None = None
    tensorboard: bool = True
    progress_bar: bool = True


@dataclass
class OnPolicyRunSettings(RunSettings):
    """:class:`RunSettings` plus what textgym's own on-policy algorithms record during ``learn``.

    Attributes:
        log_samples: completions per iteration appended to ``run_dir/samples.jsonl``.
        save_every: save a checkpoint to ``run_dir/checkpoint`` every this many iterations (``None``: never).
        precision: ``"fp32"`` or ``"bf16"`` (the LM forwards under bf16 autocast, float32 weights and
            loss math; see :mod:`~textgym.agents.common.precision`); ``None``: what ``accelerate launch
            --mixed_precision`` set (``ACCELERATE_MIXED_PRECISION``), else ``"fp32"``.
        strategy: with several processes, ``"ddp"`` (every rank holds the whole model, gradients
            all-reduced) or ``"fsdp"`` (full fine-tuning with the LM and its reference sharded over the
            ranks, see :mod:`~textgym.agents.common.fsdp`); ``None``: ``"fsdp"`` under an accelerate
            FSDP config (``ACCELERATE_USE_FSDP=true``), else ``"ddp"``.  Ignored in one process.
    """

    log_samples: int = 4
    save_every: int | None = None
    precision: str | None = None
    strategy: str | None = None
