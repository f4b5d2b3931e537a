"""Ray reward workers: score a batch of finished episodes on ``N`` Ray actors.

An expensive reward (the code sandbox, a reward model) is slow per sample; with
:class:`RayRewardWorkers` each of ``N`` Ray actors holds its own copy of the
reward and scores one contiguous share of every batch, on this machine or on
any machine of a Ray cluster::

    import textgym.rewards as R

    reward = R.RayRewardWorkers(R.make("code-exec"), actors=2)
    scores, components = R.call_reward(reward, prompts, completions, columns={"test_list": tests})

From a run config: ``env.kwargs.reward: {name: code-exec, backend: ray, actors: 2}``.

Guarantees
----------
* **Same scores as in-process.**  The batch is cut into contiguous chunks, each
  chunk is scored by one call of the reward on one actor, and the results are
  put back in batch order.  For a reward that scores each sample on its own
  (every built-in except running normalisation) that is exactly what one
  in-process call returns; components a chunk did not return are 0 for its rows.
* **A killed worker loses nothing.**  If an actor dies (killed, out of memory,
  its machine lost) while it holds chunks, each of them is sent to another live
  actor (a fresh one is started if none is left), up to ``max_attempts`` actors
  per chunk.  Each chunk's result is taken once, from the first actor that
  returns it, so no episode is lost or counted twice.  Dead actors are replaced
  at the start of the next batch.
* **An error of the reward itself is not retried** (it would fail again): it is
  raised as :class:`textgym.reward_api.RewardError` naming the sample by its
  position in the whole batch.  The wrapper is a batched reward, so with
  ``call_reward(..., on_error="penalty")`` an error penalises the whole batch,
  also where an in-process per-sample function would penalise only its sample.

Ray is started on first use if it is not running (``ray.init`` on this machine,
no dashboard, usage statistics off); connect to a cluster with
``ray.init(address=...)`` before the first batch.  Ray is an optional
dependency: ``pip install 'textgym[ray]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from textgym.reward_api import RewardError, RewardFunction, as_reward_function

__all__ = ["RayRewardWorkers", "ensure_ray"]

#: what to install when Ray is missing
RAY_HINT = "install it with: pip install 'textgym[ray]'"


def ensure_ray(**init_kwargs: Any) -> Any:
    """Import Ray and start it on this machine if it is not running; returns the ``ray`` module.

    Ray never reaches the network: usage statistics are off (``RAY_USAGE_STATS_ENABLED=0``)
    and no dashboard is started.  ``init_kwargs`` go to ``ray.init`` (e.g. ``num_cpus``).

    Raises:
        ImportError: Ray is not installed (the message says how to install it).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"the Ray backend needs Ray, which is not installed; {RAY_HINT}") from exc
    if not ray.is_initialized():
        ray.init(**{"include_dashboard": False, "log_to_driver": False, **init_kwargs})
    return ray


class _RewardActor:
    """One Ray actor: a copy of the reward, scoring the chunks it is sent."""

    def __init__(self, reward: RewardFunction):
        self.reward = reward

    def score(self, prompts: list[str], completions: list[str], references: Any, columns: dict[str, list]) -> Any:
        return self.reward(prompts, completions, references=references, **columns)

    def pid(self) -> int:
        return os.getpid()


class RayRewardWorkers(RewardFunction):
    """A reward scored on ``actors`` Ray actors, each holding a copy of it (see the module docstring).

    Args:
        reward: the reward (a :class:`RewardFunction`, a plain callable or a
            registered name); it is built here once and a copy is sent to each actor.
        actors: number of Ray actors (>= 1).
        chunks_per_actor: each batch is cut into ``actors * chunks_per_actor``
            contiguous chunks (more chunks: finer rebalancing after a failure,
            more calls of the reward).
        max_attempts: actors a chunk may be tried on before the batch fails.
        num_cpus: CPUs each actor reserves in Ray's scheduler.
        **kwargs: constructor arguments when ``reward`` is a name.

    Attributes:
        last_chunks: after each call, one dict per chunk: ``start``, ``stop`` (its
            rows) and ``actors`` (the actor slots it was sent to, in order; the last
            one scored it).
        restarts: actors started to replace dead ones so far.

    Raises:
        ValueError: ``actors``, ``chunks_per_actor``, ``max_attempts`` < 1 or ``num_cpus`` < 0.
        ImportError: (on first use) Ray is not installed.
    """

    def __init__(self, reward: RewardFunction | Callable[..., Any] | str, *, actors: int = 2,
                 chunks_per_actor: int = 1, max_attempts: int = 3, num_cpus: float = 1, **kwargs: Any):
        for arg, value in (("actors", actors), ("chunks_per_actor", chunks_per_actor),
                           ("max_attempts", max_attempts)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{arg} must be an integer >= 1, got {value!r}")
        if num_cpus < 0:
            raise ValueError(f"num_cpus must be >= 0, got {num_cpus!r}")
        self.reward = as_reward_function(reward, **kwargs)
        self.name = f"ray:{getattr(self.reward, 'name', type(self.reward).__name__)}"
        self.dense = bool(getattr(self.reward, "dense", False))
        self.needs_text = bool(getattr(self.reward, "needs_text", True))
        self.num_actors, self.chunks_per_actor = int(actors), int(chunks_per_actor)
        self.max_attempts, self.num_cpus = int(max_attempts), float(num_cpus)
        self.actors: list[Any] = []  # Ray actor handles, one per slot (None: dead)
        self.last_chunks: list[dict[str, Any]] = []
        self.restarts = 0
        self._ray: Any = None
        self._reward_ref: Any = None

    # ------------------------------------------------------------------ actors
    def _start_actor(self) -> Any:
        ray = self._ray
        cls = ray.remote(_RewardActor).options(num_cpus=self.num_cpus, max_restarts=0, max_task_retries=0)
        return cls.remote(self._reward_ref)

    def start(self) -> RayRewardWorkers:
        """Start Ray (if needed) and the actors; replace dead ones.  Called by the first batch."""
        if self._ray is None:
            self._ray = ensure_ray()
            self._reward_ref = self._ray.put(self.reward)
        while len(self.actors) < self.num_actors:
            self.actors.append(self._start_actor())
        for slot, handle in enumerate(self.actors):
            if handle is None:
                self.actors[slot] = self._start_actor()
                self.restarts += 1
        return self

    def close(self) -> None:
        """Stop the actors (Ray itself keeps running)."""
        if self._ray is not None:
            for handle in self.actors:
                if handle is not None:
                    self._ray.kill(handle)
        self.actors = []

    # ------------------------------------------------------------------ scoring
    def _submit(self, slot: int, rows: slice, prompts, completions, references, columns) -> Any:
        refs = None if references is None else references[rows]
        cols = {k: v[rows] for k, v in columns.items()}
        return self.actors[slot].score.remote(prompts[rows], completions[rows], refs, cols)

    def _next_slot(self, tried: list[int]) -> int:
        """A live actor slot, preferring one this chunk has not been tried on; starts one if none is live."""
        live = [s for s, h in enumerate(self.actors) if h is not None]
        if not live:
            slot = tried[-1] if tried else 0
            self.actors[slot] = self._start_actor()
            self.restarts += 1
            return slot
        fresh = [s for s in live if s not in tried]
        return min(fresh or live, key=lambda s: (tried.count(s), s))

    def score(self, prompts, completions, *, references=None, **columns):
        from ray.exceptions import RayActorError, RayTaskError

        b = len(completions)
        prompts, completions = list(prompts), list(completions)
        references = None if references is None else list(references)
        columns = {k: list(v) for k, v in columns.items()}
        if b == 0:
            self.last_chunks = []
            return self.reward(prompts, completions, references=references, **columns)
        self.start()
        bounds = np.array_split(np.arange(b), min(b, self.num_actors * self.chunks_per_actor))
        chunks = [{"start": int(c[0]), "stop": int(c[-1]) + 1, "actors": []} for c in bounds]
        pending: dict[Any, int] = {}  # object ref -> chunk index
        for i, chunk in enumerate(chunks):
            slot = i % self.num_actors
            chunk["actors"].append(slot)
            pending[self._submit(slot, slice(chunk["start"], chunk["stop"]), prompts, completions, references,
                                 columns)] = i
        results: dict[int, Any] = {}
        while pending:
            ready, _ = self._ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            chunk = chunks[i]
            try:
                out = self._ray.get(ready[0])
            except RayTaskError as exc:  # the reward raised: not retried
                for ref in pending:
                    try:
                        self._ray.cancel(ref)
                    except Exception:  # noqa: BLE001 - a task already running on a sync actor cannot be
                        pass  # cancelled; its result is simply never read
                raise _relabel(exc.cause if exc.cause is not None else exc, chunk["start"], self.name) from None
            except RayActorError:  # the actor died or is unreachable: its share goes to another actor
                dead = chunk["actors"][-1]
                if self.actors[dead] is not None:  # an unreachable one may still run: stop it, free its CPU
                    try:
                        self._ray.kill(self.actors[dead])
                    except Exception:  # noqa: BLE001 - already gone
                        pass
                self.actors[dead] = None
                if len(chunk["actors"]) >= self.max_attempts:
                    raise RewardError(f"reward {self.name!r}: rows {chunk['start']}..{chunk['stop'] - 1} were lost "
                                      f"on {len(chunk['actors'])} Ray actors in turn (max_attempts="
                                      f"{self.max_attempts}); is the Ray cluster healthy?") from None
                slot = self._next_slot(chunk["actors"])
                chunk["actors"].append(slot)
                pending[self._submit(slot, slice(chunk["start"], chunk["stop"]), prompts, completions, references,
                                     columns)] = i
                continue
            if i not in results:  # taken once, from the first actor that returns it
                results[i] = out
        self.last_chunks = chunks
        return _merge([results[i] for i in range(len(chunks))], [c["stop"] - c["start"] for c in chunks])


def _relabel(exc: BaseException, offset: int, name: str) -> RewardError:
    """The reward's own error, its sample named by the position in the whole batch.

    ``RewardError.relabel`` keeps the index; ``call_reward`` reads it to name the sample for its
    caller, so the shifted index is set here from the error's message parts.
    """
    if isinstance(exc, RewardError):
        if exc.index is not None and exc._parts is not None:
            return RewardError(exc._parts[0] + f"sample {offset + exc.index}" + exc._parts[1],
                               index=offset + exc.index, parts=exc._parts)
        return exc
    return RewardError(f"reward {name!r} raised {type(exc).__name__} on a Ray actor: {exc}")


def _merge(outs: list[Any], sizes: list[int]) -> Any:
    """Chunk outputs (scores, or ``(scores, components)``) -> one output in batch order."""
    scores, comps = [], []
    for out, n in zip(outs, sizes):
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
            out, c = out
        else:
            c = {}
        scores.append(np.asarray(out, dtype=np.float32).reshape(-1))
        comps.append({k: np.asarray(v, dtype=np.float32).reshape(-1) for k, v in c.items()})
    keys = [k for c in comps for k in c]
    names = list(dict.fromkeys(keys))
    merged = np.concatenate(scores)
    if not names:
        return merged
    return merged, {k: np.concatenate([c.get(k, np.zeros(n, np.float32)) for c, n in zip(comps, sizes)])
                    for k in names}
