"""The small supervised training loop shared by the SFT, reward-model and classifier trainers.

Not a general framework: one optimizer (AdamW), one learning-rate schedule
(linear warm-up, then constant / linear / cosine decay), gradient
accumulation, gradient clipping, a tqdm progress bar, periodic evaluation and
a hard stop on a non-finite loss.  Subclasses say how to batch their data and
how to turn a group of micro-batches into a loss (:meth:`SupervisedTrainer._accumulate`),
so each keeps its own exact loss normalisation (e.g. SFT's token mean over
the whole effective batch).

Also here: :func:`atomic_save_dir`, which writes a model directory next to
its target and renames it into place, so a crash never leaves a half-written
model where a reader expects a complete one.
"""

from __future__ import annotations

import abc
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textgym.agents.common import distributed

__all__ = ["TrainConfig", "SupervisedTrainer", "atomic_save_dir", "batches"]


@dataclass
class TrainConfig:
    """Optimisation settings common to textgym's supervised trainers.

    Attributes:
        learning_rate: peak AdamW learning rate.
        weight_decay: AdamW weight decay (decoupled, Loshchilov & Hutter 2019).
        num_epochs: passes over the training data (fractions allowed); ignored
            when ``max_steps`` is set.
        max_steps: number of optimizer steps (overrides ``num_epochs``).
        batch_size: examples per micro-batch (one forward/backward pass).
        grad_accum_steps: micro-batches per optimizer step; the effective batch
            is ``batch_size * grad_accum_steps`` examples.
        warmup_ratio: fraction of the steps with a linear warm-up from 0.
        lr_schedule: ``"constant"``, ``"linear"`` (to 0) or ``"cosine"`` (to 0)
            after the warm-up.
        max_grad_norm: clip the global gradient L2 norm to this (``None``: no clipping).
        eval_every: evaluate every this many optimizer steps (``None``: only at the end).
        eval_batch_size: examples per evaluation forward pass.
        seed: seeds torch and the data order (each epoch is a fresh permutation).
        device: where to train (default: where the model is).
        progress: show a tqdm progress bar.
    """

    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    num_epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum_steps: int = 1
    warmup_ratio: float = 0.0
    lr_schedule: str = "linear"
    max_grad_norm: float | None = 1.0
    eval_every: int | None = None
    eval_batch_size: int = 32
    seed: int = 0
    device: str | None = None
    progress: bool = True

    def check(self) -> None:
        """Raise ``ValueError`` for settings no run can use."""
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 1 or self.grad_accum_steps < 1 or self.eval_batch_size < 1:
            raise ValueError("batch_size, grad_accum_steps and eval_batch_size must be >= 1")
        if self.max_steps is None and not self.num_epochs > 0:
            raise ValueError(f"num_epochs must be > 0 (or set max_steps), got {self.num_epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant', 'linear' or 'cosine', got {self.lr_schedule!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Split ``range(n)`` into batches of indices, shuffled by ``rng`` (in order if ``None``)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _lr_factor(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:  # step = optimizer steps taken so far
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class SupervisedTrainer(abc.ABC):
    """Base class: the optimisation loop over groups of micro-batches.

    Subclasses implement:

    * ``_num_train_items() -> int``: examples (or packed blocks) per epoch;
    * ``_micro_batch(indices) -> Any``: a micro-batch for those item indices;
    * ``_accumulate(micro_batches) -> dict[str, float]``: forward *and*
      backward on one effective batch, with the loss normalised over the
      whole group; returns at least ``{"loss": float}`` (the group's loss);
    * ``evaluate() -> dict[str, float]``: held-out metrics (may be ``{}``).

    Args:
        model: a ``torch.nn.Module`` (put in train mode while training).
        config: a :class:`TrainConfig` (or subclass).

    Attributes:
        history: one dict per optimizer step (``step``, ``lr``, the
            ``_accumulate`` metrics, ``grad_norm``) and per evaluation
            (keys prefixed ``eval/``).
        global_step: optimizer steps done.
    """

    def __init__(self, model: torch.nn.Module, config: TrainConfig):
        config.check()
        self.model = model
        self.config = config
        self.device = torch.device(config.device) if config.device else next(model.parameters()).device
        self.model.to(self.device)
        self.history: list[dict[str, Any]] = []
        self.global_step = 0
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def _num_train_items(self) -> int:
        raise NotImplementedError

    @abc.abstractmethod
    def _micro_batch(self, indices: np.ndarray) -> Any:
        raise NotImplementedError

    @abc.abstractmethod
    def _accumulate(self, micro_batches: Sequence[Any]) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        return {}

    def _weight(self, micro_batches: Sequence[Any]) -> float:
        """The normaliser of :meth:`_accumulate`'s loss over ``micro_batches`` (default: the number of
        items; SFT: completion tokens).  With several processes each rank's gradient is scaled by its
        share of the global weight before the all-reduce, so the step is that of one process on all of them."""
        return float(sum(len(mb) for mb in micro_batches))

    def _epoch_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Item indices of each micro-batch of one epoch (default: a shuffled split)."""
        return batches(self._num_train_items(), self.config.batch_size, rng)

    # ------------------------------------------------------------------ loop
    def _trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        cfg = self.config
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]  # biases and norms: no weight decay
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate)

    def _steps_plan(self) -> tuple[int, int]:
        """``(total optimizer steps, optimizer steps per epoch)``."""
        cfg = self.config
        n = self._num_train_items()
        if n == 0:
            raise ValueError("no training examples left (all were empty, dropped or filtered); check the data")
        # with several processes one step takes grad_accum_steps micro-batches on every rank
        per_epoch = math.ceil(math.ceil(n / cfg.batch_size) / (cfg.grad_accum_steps * distributed.world_size()))
        total = cfg.max_steps if cfg.max_steps is not None else max(1, math.ceil(per_epoch * cfg.num_epochs))
        return total, per_epoch

    def _groups(self) -> Iterator[list[Any]]:
        """Endless stream of effective batches (lists of micro-batches), epoch after epoch.

        With ``W`` processes every rank draws the same epoch order and takes every
        ``W``-th micro-batch of each group of ``W x grad_accum_steps`` (a distributed
        sampler): rank ``r`` gets micro-batches ``r, r + W, ...`` (possibly none at the
        end of an epoch), so the ranks together see what one process with
        ``W x grad_accum_steps`` would.
        """
        cfg = self.config
        world, rank = distributed.world_size(), distributed.rank()
        per_step = cfg.grad_accum_steps * world
        epoch = 0
        while True:
            rng = np.random.default_rng([cfg.seed, epoch])
            idx = self._epoch_batches(rng)
            for start in range(0, len(idx), per_step):
                yield [self._micro_batch(i) for i in idx[start : start + per_step][rank::world]]
            epoch += 1

    def _global_step(self, params: list[torch.nn.Parameter], micro_batches: list[Any]) -> dict[str, float]:
        """:meth:`_accumulate` on this rank's micro-batches, then (several processes) the global gradient
        and metrics: weighted means over ranks, ``tokens`` summed."""
        metrics = self._accumulate(micro_batches) if micro_batches else {"loss": 0.0}
        if not distributed.enabled():
            return metrics
        w = self._weight(micro_batches) if micro_batches else 0.0
        total = float(distributed.all_sum(w))
        for p in params:  # a rank without data this step contributes zeros
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        distributed.reduce_gradients(params, w, total)
        keys = ["loss"] + sorted(k for k in metrics if k != "loss")
        vals = distributed.all_sum(torch.tensor([float(metrics.get(k, 0.0)) * (1.0 if k == "tokens" else w)
                                                 for k in keys]))
        return {k: float(v) if k == "tokens" else float(v) / max(total, 1e-12) for k, v in zip(keys, vals)}

    def train(self) -> dict[str, Any]:
        """Run the configured number of optimizer steps.

        Returns:
            ``{"steps", "train_loss" (mean of the last 10 steps' losses),
            "train_seconds" (wall clock), "train_cpu_seconds" (this process's
            CPU time, all threads), **final evaluation metrics (prefixed eval/)}``.

        Raises:
            FloatingPointError: a loss or gradient norm became NaN/inf (the
                step, learning rate and loss are in the message).
        """
        from tqdm.auto import tqdm

        cfg = self.config
        torch.manual_seed(cfg.seed)
        total, _ = self._steps_plan()
        params = self._trainable()
        if not params:
            raise ValueError("the model has no trainable parameters")
        distributed.init()
        distributed.broadcast_parameters(params)
        opt = self._optimizer(params)
        warmup = int(round(cfg.warmup_ratio * total))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(cfg.lr_schedule, warmup, total))
        groups = self._groups()
        losses: list[float] = []
        start, cpu_start = time.perf_counter(), time.process_time()
        # progress=True leaves tqdm's default (TQDM_DISABLE); other ranks than 0 show no bar
        off = {} if cfg.progress and distributed.is_main() else {"disable": True}
        bar = tqdm(total=total, desc=type(self).__name__, dynamic_ncols=True, **off)
        self.model.train()
        try:
            for _ in range(total):
                opt.zero_grad(set_to_none=True)
                metrics = self._global_step(params, next(groups))
                loss = float(metrics["loss"])
                norm = torch.nn.utils.clip_grad_norm_(
                    params, cfg.max_grad_norm if cfg.max_grad_norm is not None else float("inf")
                )
                if not (math.isfinite(loss) and math.isfinite(float(norm))):
                    raise FloatingPointError(
                        f"non-finite training loss {loss} / gradient norm {float(norm)} at step "
                        f"{self.global_step + 1} (lr {sched.get_last_lr()[0]:.3g}); lower learning_rate, "
                        "check the data for empty targets, or train in float32"
                    )
                lr = sched.get_last_lr()[0]
                opt.step()
                sched.step()
                self.global_step += 1
                losses.append(loss)
                self.history.append({"step": self.global_step, "lr": lr, "grad_norm": float(norm), **metrics})
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if cfg.eval_every and self.global_step % cfg.eval_every == 0 and self.global_step < total:
                    self._log_eval()
                    self.model.train()
        finally:
            bar.close()
            self.model.eval()
            self.train_seconds += time.perf_counter() - start
            self.train_cpu_seconds += time.process_time() - cpu_start
        result: dict[str, Any] = {
            "steps": self.global_step,
            "train_loss": float(np.mean(losses[-10:])),
            "train_seconds": self.train_seconds,
            "train_cpu_seconds": self.train_cpu_seconds,
        }
        result.update(self._log_eval())
        return result

    def _log_eval(self) -> dict[str, float]:
        self.model.eval()
        with torch.no_grad():
            metrics = {f"eval/{k}": v for k, v in self.evaluate().items()}
        if metrics:
            self.history.append({"step": self.global_step, **metrics})
        return metrics


def atomic_save_dir(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write a directory with ``write(tmp_dir)`` and move it to ``target`` in one rename.

    The temporary directory is created beside ``target`` (same file system, so
    ``os.replace`` is atomic).  An existing ``target`` is moved aside first and
    deleted only after the new one is in place; if anything fails, the old
    directory is restored and the temporary one removed.

    Returns:
        ``target`` as a :class:`~pathlib.Path`.

    Raises:
        Whatever ``write`` raises (``target`` is then unchanged).
    """
    target = Path(target).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    old: Path | None = None
    try:
        write(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "d")
        os.replace(tmp, target)
    except BaseException:
        if old is not None and (old / "d").exists() and not target.exists():
            os.replace(old / "d", target)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target
