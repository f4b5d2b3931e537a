"""Data-parallel training across processes: the process group, rank-aware seeds, global statistics.

textgym's algorithms run data-parallel when started by a launcher that sets
``WORLD_SIZE`` / ``RANK`` (``torchrun``, ``accelerate launch``, ``textgym train
--nproc N``): each rank steps its own vector env with its own seeds, and

* gradients are summed over ranks after the backward passes (:func:`reduce_gradients`):
  each rank's loss is its share of the *global* minibatch (its sum over tokens or
  sequences divided by the global normaliser), so the summed gradient is the one a
  single process gets on the union of the ranks' batches;
* every statistic that defines the update is global: advantage whitening
  (:func:`masked_whiten`), the KL controller's input (:class:`GlobalKLController`),
  logged metrics (:func:`reduce_metrics`, :func:`gather_cat`);
* rank 0 alone writes (:func:`is_main`), and :func:`barrier` lines the ranks up.

The process group comes from ``accelerate`` (:class:`accelerate.PartialState`,
gloo on CPU, NCCL on GPUs), created by :func:`init` with a timeout on every
collective (``TEXTGYM_DIST_TIMEOUT`` seconds, default 1800), so a rank that
hangs makes the others fail instead of waiting forever; a rank that dies is
noticed by the launcher, which stops the others.  With one process every
function here is the single-process computation and no collective runs.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from textgym.agents import functional as F

__all__ = ["init", "enabled", "rank", "world_size", "is_main", "rank_seed", "barrier", "all_sum", "all_max",
           "gather_cat", "gather_objects", "broadcast_parameters", "reduce_gradients", "masked_whiten",
           "reduce_metrics", "GlobalKLController", "timeout_seconds", "communication_seconds"]

#: default collective timeout (seconds) when ``TEXTGYM_DIST_TIMEOUT`` is not set
DEFAULT_TIMEOUT_S = 1800.0


_COMM = [0.0]  # seconds spent in collectives by this process


def communication_seconds() -> float:
    """Seconds this process has spent in textgym's collectives so far (waiting for slower ranks included)."""
    return _COMM[0]


class _timed:
    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        _COMM[0] += time.perf_counter() - self.t0


def timeout_seconds() -> float:
    """The collective timeout: ``TEXTGYM_DIST_TIMEOUT`` (seconds) or :data:`DEFAULT_TIMEOUT_S`."""
    raw = os.environ.get("TEXTGYM_DIST_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"TEXTGYM_DIST_TIMEOUT must be a number of seconds > 0, got {raw!r}")
    return value


def init() -> bool:
    """Join the process group a launcher set up (``WORLD_SIZE`` > 1 in the environment); idempotent.

    Uses :class:`accelerate.PartialState` (gloo on CPU, NCCL on CUDA) with the
    :func:`timeout_seconds` timeout on collectives.

    Returns:
        ``True`` when running with more than one process.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    from accelerate import PartialState

    PartialState(timeout=datetime.timedelta(seconds=timeout_seconds()))
    return dist.is_initialized() and dist.get_world_size() > 1


def enabled() -> bool:
    """More than one process in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if enabled() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if enabled() else 1


def is_main() -> bool:
    """Rank 0 (the only writer)."""
    return rank() == 0


def rank_seed(seed: int, rank_: int | None = None) -> int:
    """The seed of rank ``rank_``'s own streams (env resets, sampling, prompt groups).

    Rank 0 keeps ``seed`` (a one-process run is unchanged); rank ``r > 0`` gets
    a 32-bit seed derived from ``(seed, r)`` by NumPy's ``SeedSequence``, so the
    ranks draw different samples and a rerun draws the same ones.
    """
    r = rank() if rank_ is None else int(rank_)
    if r == 0:
        return int(seed)
    return int(np.random.SeedSequence(int(seed) % 2**63, spawn_key=(r,)).generate_state(1)[0])


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if enabled():
        with _timed():
            dist.barrier()


def _all_reduce(t: torch.Tensor, op: Any) -> torch.Tensor:
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    buf = t.detach().to(dev, torch.float64).clone()
    with _timed():
        dist.all_reduce(buf, op=op)
    return buf.to(t.device)


def all_sum(x: torch.Tensor | float) -> torch.Tensor:
    """Sum of ``x`` over ranks (float64; ``x`` itself as float64 in one process)."""
    t = torch.as_tensor(x, dtype=torch.float64)
    return _all_reduce(t, dist.ReduceOp.SUM) if enabled() else t.clone()


def all_max(x: torch.Tensor | float) -> torch.Tensor:
    """Maximum of ``x`` over ranks (float64)."""
    t = torch.as_tensor(x, dtype=torch.float64)
    return _all_reduce(t, dist.ReduceOp.MAX) if enabled() else t.clone()


def gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` (same shape on every rank) along dim 0, in rank order."""
    if not enabled():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    with _timed():
        dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order (``[obj]`` in one process)."""
    if not enabled():
        return [obj]
    out: list[Any] = [None] * world_size()
    with _timed():
        dist.all_gather_object(out, obj)
    return out


def broadcast_parameters(params: Sequence[torch.nn.Parameter]) -> None:
    """Copy rank 0's values of ``params`` to every rank (identical starting weights)."""
    if not enabled():
        return
    with torch.no_grad():
        for p in params:
            buf = p.data.detach().to("cpu").contiguous() if dist.get_backend() == "gloo" else p.data
            dist.broadcast(buf, src=0)
            if buf is not p.data:
                p.data.copy_(buf)


def reduce_gradients(params: Sequence[torch.nn.Parameter], local_weight: float, global_weight: float) -> None:
    """Make every rank's ``.grad`` the global minibatch gradient.

    Each rank's gradient is of its loss normalised by its own ``local_weight``
    (tokens or sequences); the global gradient is
    ``sum_r grad_r * local_weight_r / global_weight``.  Parameters without a
    gradient (e.g. GRPO's unused value head) keep none, as in one process: the
    ranks run the same code, so they agree on which.  One flat all-reduce.
    """
    if not enabled():
        return
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    scale = float(local_weight) / float(global_weight)
    flat = torch.cat([p.grad.detach().reshape(-1).float() * scale for p in params])
    dev = torch.device("cpu") if dist.get_backend() == "gloo" else flat.device
    buf = flat.to(dev)
    with _timed():
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        g = buf[offset:offset + n].view_as(p).to(p.device, p.dtype)
        offset += n
        p.grad.copy_(g)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """:func:`textgym.agents.functional.masked_whiten` with the mean and (Bessel-corrected) variance
    over the masked entries of *every* rank (two all-reduces); the local function in one process."""
    if not enabled():
        return F.masked_whiten(x, mask, shift_mean, eps)
    m = mask.bool()
    n = all_sum(m.sum())
    mean = (all_sum(torch.where(m, x, 0.0).sum().double()) / n.clamp(min=1)).to(x.dtype)
    sq = all_sum(torch.where(m, (x - mean) ** 2, 0.0).sum().double())
    var = sq / n.clamp(min=1)
    var = (torch.where(n >= 2, var * n / (n - 1).clamp(min=1), var)).to(x.dtype)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(m, out, torch.zeros((), dtype=out.dtype, device=out.device))


def reduce_metrics(metrics: Mapping[str, Any], maxima: Sequence[str] = ()) -> dict[str, Any]:
    """Means over ranks of the numeric ``metrics`` (names in ``maxima``: maxima); strings kept.

    Metrics that are already global (identical on every rank) are unchanged.
    Per-episode means of equal-sized rank batches become the global means.
    """
    if not enabled():
        return dict(metrics)
    keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool))
    out = dict(metrics)
    if not keys:
        return out
    vals = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    is_max = torch.tensor([k in maxima for k in keys])
    summed = all_sum(torch.where(is_max, 0.0, vals)) / world_size()
    top = all_max(torch.where(is_max, vals, -torch.inf))
    for i, k in enumerate(keys):
        out[k] = float(top[i] if is_max[i] else summed[i])
    return out


class GlobalKLController:
    """Wraps a KL controller so that ``update(kl, n)`` sees the mean KL and the episode count of every rank."""

    def __init__(self, inner: Any):
        self.inner = inner

    def update(self, current: float, n_steps: int) -> Any:
        tot = all_sum(torch.tensor([float(current) * n_steps, float(n_steps)], dtype=torch.float64))
        n = float(tot[1])
        return self.inner.update(float(tot[0]) / max(n, 1.0), int(n))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
