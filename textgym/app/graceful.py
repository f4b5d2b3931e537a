"""Ctrl-C / SIGTERM during RL: finish the iteration, checkpoint, then stop (a second Ctrl-C stops at once).

:class:`GracefulStop` replaces the SIGINT and SIGTERM handlers while the RL stage
runs.  The first signal only sets :attr:`GracefulStop.requested` (and says so on
stderr); the pipeline's per-iteration callback sees it after the iteration in
progress, stops the learning loop, writes the checkpoint (atomically) and raises
``KeyboardInterrupt``, so the run ends with the usual resume hint and exit status
130 having lost no finished iteration.  A second signal raises
``KeyboardInterrupt`` at once (the last checkpoint stays the resume point).
Outside the main thread it does nothing (signals are delivered to the main thread only).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType

__all__ = ["GracefulStop"]


class GracefulStop:
    """Context manager; see the module docstring.

    Attributes:
        requested: a first SIGINT / SIGTERM arrived.
        signum: that signal's number (``None`` before).
    """

    def __init__(self, message: str = "stopping after this iteration and saving a checkpoint "
                                      "(press Ctrl-C again to stop at once)"):
        self.message = message
        self.requested = False
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt(f"signal {signum} (second)")
        self.requested, self.signum = True, signum
        print(f"\n{signal.Signals(signum).name}: {self.message}", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
