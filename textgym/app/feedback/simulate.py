"""Simulated annotators: they judge items through the same HTTP API people's pages use.

Each simulated annotator is a thread with its own token and HTTP client.  It asks
``GET /api/next`` for an item, scores the item's completions with a *rater* (a
reward function: ``sentiment``, ``reward-model:PATH`` or any registered reward
name), adds noise, and posts ``POST /api/judgments``; a request that fails in
transit (connection error, 5xx) is retried with the *same* idempotency key, so a
retry never stores a judgment twice.

How a rater's scores become a judgment: the raw scores are standardised with the
mean and standard deviation of every score seen so far in the run (``z``), once per
completion: the first annotator to meet a completion fixes its ``z`` for all.  Each
annotator perceives ``z + noise * N(0, 1)`` (its own seeded generator) and gives

* ratings ``clip(round(4 + 1.5 * z'), 1, 7)``;
* the ranking by ``z'`` (best first; equal values tie);
* for ``K = 2`` a vote: ``both_bad`` when both ratings are <= 2, ``tie`` when
  ``|z'_left - z'_right| < 0.1``, else the side with the larger ``z'``;
* with probability ``edit_rate``, an edit of the completion it perceives as best
  (:func:`rewrite`): a greedy search over one-word changes, each step keeping the change
  the rater scores highest.  The candidates of a step are the text with one word deleted
  and the text with one word appended, drawn from the words of the prompt and of the
  item's completions (what a person has in front of them).  The edit is submitted only
  when the rater scores it strictly higher than the completion it rewrote (the rater's
  own score, without the annotator's noise), so an exported edit-beats-original pair is
  right by the rater.  It is an annotator who knows exactly what the rater wants and
  writes nothing new: honest about the rater, not a model of how people write.

So ``noise = 0`` makes every annotator agree with the rater, and a larger noise
lowers agreement (Krippendorff's alpha and pairwise ranking agreement).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["make_rater", "judge", "rewrite", "Calibration", "SimulationResult", "run_simulation", "TASKS"]

TASKS = ("rate", "rank", "vote")


def make_rater(spec: str) -> Callable[[list[str], list[str]], np.ndarray]:
    """A batched scorer ``(prompts, completions) -> (B,) scores`` for a ``--rater`` value.

    ``reward-model:PATH`` loads a reward model saved by the reward-model trainer; any other
    value is a registered reward name (``sentiment``, ``sentiment-vader``, ``length``, ...).

    Raises:
        ValueError: an unknown reward name or a reward-model folder that does not exist.
    """
    import textgym.rewards as rewards

    if spec.startswith("reward-model:"):
        from pathlib import Path

        from textgym.agents.trainers.reward_model import load_reward_function

        path = Path(spec.split(":", 1)[1]).expanduser()
        if not (path / "config.json").is_file():
            raise ValueError(f"--rater {spec}: {path} is not a saved reward model (no config.json)")
        return load_reward_function(path)
    if spec not in rewards.list():
        raise ValueError(f"--rater {spec!r}: use reward-model:PATH or a registered reward "
                         f"({', '.join(rewards.list())})")
    return rewards.make(spec)


class Calibration:
    """Running mean / std of every raw score seen (thread-safe), to put raters on one scale."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n, self._sum, self._sq = 0, 0.0, 0.0

    def update(self, scores: np.ndarray) -> tuple[float, float]:
        with self._lock:
            self._n += scores.size
            self._sum += float(scores.sum())
            self._sq += float((scores.astype(np.float64) ** 2).sum())
            mean = self._sum / self._n
            var = max(self._sq / self._n - mean * mean, 0.0)
        return mean, max(var ** 0.5, 1e-6)


def rewrite(prompt: str, text: str, rater: Callable[..., Any], rng: np.random.Generator, *,
            vocabulary: Sequence[str] = (), steps: int = 2, max_candidates: int = 24) -> str | None:
    """A rater-guided rewrite of ``text``: greedy one-word changes (see the module docstring), or ``None``.

    Args:
        prompt, text: the item's prompt and the completion to rewrite.
        rater: a batched scorer ``(prompts, completions) -> scores``.
        rng: draws which candidates a step scores (at most ``max_candidates``).
        vocabulary: words that may be appended (default: the prompt's).
        steps: one-word changes at most.

    Returns:
        The rewritten text, whose rater score is strictly higher than ``text``'s; ``None`` when no
        change found raises it.
    """
    lead = " " if text[:1].isspace() else ""
    words = text.split()
    vocab = sorted(set(vocabulary or prompt.split()))
    base = float(np.asarray(rater([prompt], [text]), dtype=np.float64)[0])
    best_words, best = words, base
    for _ in range(steps):
        cands = [best_words[:i] + best_words[i + 1 :] for i in range(len(best_words))] if len(best_words) > 1 else []
        cands += [best_words + [w] for w in vocab]
        if not cands:
            break
        if len(cands) > max_candidates:
            cands = [cands[i] for i in sorted(rng.choice(len(cands), max_candidates, replace=False))]
        texts = [lead + " ".join(c) for c in cands]
        scores = np.asarray(rater([prompt] * len(texts), texts), dtype=np.float64)
        j = int(np.argmax(scores))
        if not scores[j] > best:
            break
        best_words, best = cands[j], float(scores[j])
    new = lead + " ".join(best_words)
    return new if best > base and new != text else None


def judge(item: Mapping[str, Any], z: np.ndarray, rng: np.random.Generator, noise: float,
          tasks: Sequence[str] = TASKS, *, edit_rate: float = 0.0,
          editor: Callable[[int], str | None] | None = None) -> dict[str, Any]:
    """The judgment payload (without idempotency key) for standardised scores ``z`` of ``item``'s completions.

    With ``edit_rate > 0`` and an ``editor`` (completion id -> rewritten text or ``None``), the completion
    perceived as best is rewritten with probability ``edit_rate``."""
    ids = [c["id"] for c in item["completions"]]
    seen = z + noise * rng.standard_normal(len(ids))
    ratings = np.clip(np.rint(4 + 1.5 * seen), 1, 7).astype(int)
    out: dict[str, Any] = {"item_id": item["id"]}
    if "rate" in tasks:
        out["ratings"] = {str(c): int(r) for c, r in zip(ids, ratings)}
    if "rank" in tasks:
        groups: dict[float, list[int]] = {}
        for c, s in zip(ids, seen.tolist()):
            groups.setdefault(s, []).append(c)
        out["ranking"] = [groups[s] for s in sorted(groups, reverse=True)]
    if "vote" in tasks and len(ids) == 2:
        if ratings.max() <= 2:
            out["vote"] = "both_bad"
        elif abs(seen[0] - seen[1]) < 0.1:
            out["vote"] = "tie"
        else:
            out["vote"] = "left" if seen[0] > seen[1] else "right"
    if edit_rate > 0 and editor is not None and rng.random() < edit_rate:
        best = ids[int(np.argmax(seen))]
        text = editor(best)
        if text is not None:
            out["edit"] = {"completion_id": best, "text": text}
    return out


@dataclass
class SimulationResult:
    """What :func:`run_simulation` did: ``acks`` ``(annotator, item_id, judgment_id)`` acknowledged by the
    server, per-submit ``latencies`` (s), retries, ``errors`` (messages of requests that gave up), ``seconds``,
    ``edits`` (acknowledged judgments that hold an edit)."""

    acks: list[tuple[str, int, int]] = field(default_factory=list)
    edits: int = 0
    latencies: list[float] = field(default_factory=list)
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def judgments_per_second(self) -> float:
        return len(self.acks) / self.seconds if self.seconds > 0 else 0.0


def _request(client: Any, method: str, path: str, attempts: int, result: SimulationResult, lock: threading.Lock,
             payload: dict[str, Any] | None = None) -> Any:
    """``client.request`` retried on transport errors and 5xx (backoff 0.05 s doubling to 1 s); ``None`` if all fail.

    A POST is retried with the same payload, idempotency key included, so it is stored at most once.
    """
    import httpx

    for attempt in range(attempts):
        try:
            r = client.request(method, path, json=payload)
            if r.status_code < 500:
                return r
        except httpx.TransportError:
            pass
        with lock:
            result.retries += 1
        time.sleep(min(0.05 * 2 ** attempt, 1.0))
    return None


def run_simulation(url: str, tokens: Mapping[str, str], rater: Callable[..., Any], *, noise: float = 0.1,
                   seed: int = 0, tasks: Sequence[str] = TASKS, max_per_annotator: int | None = None,
                   attempts: int = 10, timeout: float = 30.0, edit_rate: float = 0.0) -> SimulationResult:
    """Let one simulated annotator per token judge its queue on the server at ``url``, all at once.

    Args:
        url: the server (``http://127.0.0.1:8765``).
        tokens: annotator name -> login token.
        rater: a batched reward function ``(prompts, completions) -> scores``.
        noise: standard deviation of the noise on the standardised scores (>= 0).
        seed: annotator ``i`` draws its noise from ``default_rng([seed, i])``.
        tasks: which of ``rate``, ``rank``, ``vote`` each judgment contains.
        max_per_annotator: stop an annotator after this many judgments (``None``: until its queue is empty).
        attempts: tries per request before giving up on it (transport errors and 5xx are retried).
        edit_rate: the chance that a judgment also rewrites the completion perceived as best
            (:func:`rewrite`; an edit is sent only when the rater scores it higher).

    Returns:
        :class:`SimulationResult`.
    """
    import httpx

    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if not 0 <= edit_rate <= 1:
        raise ValueError(f"edit_rate must be in [0, 1], got {edit_rate}")
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {list(tasks)}")
    result, lock, calib, rater_lock = SimulationResult(), threading.Lock(), Calibration(), threading.Lock()
    latent: dict[int, float] = {}  # completion id -> its standardised score, shared by every annotator

    def annotator(i: int, name: str, token: str) -> None:
        rng = np.random.default_rng([seed, i])
        headers = {"Authorization": f"Bearer {token}"}
        done = 0
        with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client:
            while max_per_annotator is None or done < max_per_annotator:
                r = _request(client, "GET", "/api/next", attempts, result, lock)
                if r is None or r.status_code != 200:
                    with lock:
                        result.errors.append(f"{name}: GET /api/next: " + (
                            f"no answer after {attempts} tries" if r is None else f"{r.status_code} {r.text[:200]}"))
                    return
                item = r.json()["item"]
                if item is None:
                    return
                with rater_lock:  # a completion's z is fixed the first time any annotator scores it
                    new = [c for c in item["completions"] if c["id"] not in latent]
                    if new:
                        raw = np.asarray(rater([item["prompt"]] * len(new), [c["text"] for c in new]),
                                         dtype=np.float64)
                        mean, std = calib.update(raw)
                        latent.update({c["id"]: float(z) for c, z in zip(new, (raw - mean) / std)})
                    z = np.array([latent[c["id"]] for c in item["completions"]])
                texts = {c["id"]: c["text"] for c in item["completions"]}
                vocab = item["prompt"].split() + [w for t in texts.values() for w in t.split()]

                def editor(cid: int) -> str | None:
                    with rater_lock:
                        return rewrite(item["prompt"], texts[cid], rater, rng, vocabulary=vocab)

                payload = judge(item, z, rng, noise, tasks, edit_rate=edit_rate, editor=editor)
                payload["idempotency_key"] = uuid.uuid4().hex
                t0 = time.perf_counter()
                resp = _request(client, "POST", "/api/judgments", attempts, result, lock, payload)
                dt = time.perf_counter() - t0
                with lock:
                    if resp is None:
                        result.errors.append(f"{name}: item {item['id']}: no answer after {attempts} tries")
                        return
                    if resp.status_code not in (200, 201):
                        result.errors.append(f"{name}: item {item['id']}: {resp.status_code} {resp.text[:200]}")
                        return
                    result.acks.append((name, item["id"], resp.json()["judgment_id"]))
                    result.edits += "edit" in payload
                    result.latencies.append(dt)
                done += 1

    threads = [threading.Thread(target=annotator, args=(i, n, t), name=f"sim-{n}")
               for i, (n, t) in enumerate(tokens.items())]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - t0
    return result
