"""Running the feedback app on uvicorn: in the foreground (``textgym feedback serve``) or in a thread.

The server binds ``127.0.0.1`` unless told otherwise; any other address gets a warning,
because the pages carry people's judgments and the login tokens travel in plain HTTP
(put a TLS proxy in front for real use).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["serve", "BackgroundServer", "start_server_process", "is_loopback", "free_port", "DEFAULT_HOST",
           "DEFAULT_PORT"]

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_warning(host: str) -> str | None:
    """The warning for binding ``host`` (``None`` for a loopback address)."""
    if is_loopback(host):
        return None
    return (f"binding {host}: the feedback app is reachable from other machines over plain HTTP (login tokens "
            "included); use it only on a trusted network or behind an HTTPS proxy")


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _config(project: str | os.PathLike | Any, host: str, port: int, **kwargs: Any) -> Any:
    import uvicorn

    from textgym.app.feedback.server import create_app

    return uvicorn.Config(create_app(project), host=host, port=port, log_level=kwargs.pop("log_level", "warning"),
                          access_log=False, **kwargs)


def serve(project: str | os.PathLike, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve ``project`` until interrupted (warns when ``host`` is not a loopback address)."""
    import uvicorn

    msg = bind_warning(host)
    if msg:
        warnings.warn(msg, stacklevel=2)
    uvicorn.Server(_config(Path(project), host, port, log_level="info")).run()


class BackgroundServer:
    """``with BackgroundServer(project) as url:`` - the app on uvicorn in a daemon thread (tests, simulate).

    Args:
        project: a project file or an open :class:`~textgym.app.feedback.db.Project`.
        host, port: where to bind (port 0: a free one).
    """

    def __init__(self, project: Any, host: str = DEFAULT_HOST, port: int = 0):
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        # log_config=None: uvicorn leaves the process's logging alone (its dictConfig would close the handlers
        # of the program that runs the server in a thread, e.g. `textgym train`'s feedback stage)
        self.server = uvicorn.Server(_config(project, self.host, self.port, log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="feedback-server")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the feedback server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server_process(project: str | os.PathLike, port: int, timeout: float = 120.0) -> Any:
    """``textgym feedback serve PROJECT --port PORT`` in a child process, returned once it answers ``GET /``.

    For a server that must be a separate process (killed with ``kill -9`` and restarted in a
    test, measured from outside in a benchmark); :class:`BackgroundServer` runs one in a thread.

    Raises:
        RuntimeError: the process exited (its last stderr lines are in the message) or did not
            answer within ``timeout`` seconds (it is killed).
    """
    import subprocess
    import sys

    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "textgym.app.feedback.cli", "serve", str(project), "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")
