"""``textgym train ... --nproc N``: start N local processes of the same command, data-parallel.

The processes are started by PyTorch's elastic launcher (``python -m
torch.distributed.run``, the launcher behind ``torchrun`` and ``accelerate
launch``) on one node, rendezvousing over TCP on ``127.0.0.1`` at a free port,
with no restarts.  Each runs ``python -m textgym train ...`` (the same
arguments without ``--nproc``); inside, :func:`textgym.agents.common.distributed.init`
joins the process group through ``accelerate`` (gloo on CPU, NCCL on GPUs).

When one process fails (an exception, a signal, being killed) the launcher
stops the others and exits non-zero, printing which rank failed first and its
exit code; a rank stuck in a collective fails after ``TEXTGYM_DIST_TIMEOUT``
seconds.  Without an explicit ``OMP_NUM_THREADS`` each process runs on one
thread (as ``torchrun`` does).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["free_port", "launcher_command", "launch_local"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def launcher_command(nproc: int, argv: Sequence[str], port: int | None = None) -> list[str]:
    """The ``torch.distributed.run`` command that runs ``python -m textgym *argv`` in ``nproc`` processes."""
    endpoint = f"127.0.0.1:{port or free_port()}"
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--max-restarts", "0",
            "-m", "textgym", *argv]


def launch_local(nproc: int, argv: Sequence[str]) -> int:
    """Run ``textgym *argv`` in ``nproc`` local processes; returns the launcher's exit status.

    Returns:
        0 when every rank finished; else non-zero (the launcher names the failed rank on stderr).
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        return subprocess.run(launcher_command(nproc, argv), env=env).returncode
    except KeyboardInterrupt:  # the launcher got the Ctrl-C too and stops the ranks
        return 130
