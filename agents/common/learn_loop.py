"""The ``learn`` loop every textgym algorithm shares, native (:class:`OnPolicyAlgorithm`) or SB3 adapter.

An algorithm provides ``train_step() -> metrics`` (one rollout + update),
``iteration``, ``num_timesteps`` (generated tokens) and a ``logger`` with a
progress bar; :class:`LearnLoop` gives it ``learn``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["LearnLoop", "run_learn_loop"]


def _stop_requested(result: Any) -> bool:
    """A ``learn`` callback's answer: ``False`` (also NumPy's ``False_``) stops; ``None`` / ``True`` go on."""
    return result is not None and not bool(result)


def run_learn_loop(algo: Any, total_timesteps: int | None, iterations: int | None,
                   callback: Callable[[Any, dict[str, Any]], bool | None] | None) -> Any:
    """The ``learn`` loop every textgym algorithm (and the SB3 adapters) shares.

    Calls ``algo.train_step()`` until ``iterations`` more iterations or ``total_timesteps``
    more generated tokens (``algo.num_timesteps``) are done, advancing ``algo.logger``'s
    progress bar, and stops early when ``callback(algo, metrics)`` returns ``False``.

    Returns:
        ``algo``.

    Raises:
        ValueError: neither or both of ``total_timesteps`` and ``iterations``.
    """
    if (total_timesteps is None) == (iterations is None):
        raise ValueError("give exactly one of total_timesteps or iterations")
    start_steps, start_iter = algo.num_timesteps, algo.iteration
    total, unit = (iterations, "it") if iterations is not None else (total_timesteps, "tok")
    algo.logger.start_progress(total, unit)
    try:
        while True:
            done = (algo.iteration - start_iter) if iterations is not None else (algo.num_timesteps - start_steps)
            if done >= total:
                break
            before = algo.num_timesteps
            metrics = algo.train_step()
            algo.logger.advance(1 if iterations is not None else algo.num_timesteps - before)
            if callback is not None and _stop_requested(callback(algo, metrics)):
                break
    finally:
        algo.logger.close_progress()
    return algo


class LearnLoop:
    """Mixin: :meth:`learn` for a class with ``train_step``, ``iteration``, ``num_timesteps`` and ``logger``."""

    def learn(self, total_timesteps: int | None = None, *, iterations: int | None = None,
              callback: Callable[[Any, dict[str, Any]], bool | None] | None = None) -> Any:
        """Train for ``total_timesteps`` more generated tokens or ``iterations`` more updates (give one).

        Args:
            total_timesteps: stop once this many tokens were generated in this call
                (a whole iteration always finishes; an SB3 adapter's is ``n_steps * num_envs`` tokens).
            iterations: stop after this many rollout+update iterations.
            callback: ``callback(algo, metrics)`` after each iteration; returning ``False`` stops.

        Returns:
            ``self``.

        Raises:
            ValueError: neither or both of ``total_timesteps`` and ``iterations``.
        """
        return run_learn_loop(self, total_timesteps, iterations, callback)
