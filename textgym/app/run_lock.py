"""One process per run folder: an exclusive ``flock`` on ``<runs>/.<name>.lock``, held while the run works.

``textgym train``, ``textgym train --resume`` and ``textgym train --overwrite``
take the lock of their run folder before they touch it, and keep it until they
return (the operating system drops it when the process dies, however it dies).
A second process that asks for it is refused at once with :class:`RunLockError`,
whose message names the holder (PID and command) and what to do.

The lock file sits *beside* the run folder, not in it, so it exists before the
folder is created and survives ``--overwrite`` deleting the folder.  It holds
the holder's PID and command (JSON).  Stale locks: when the lock is held but the
PID written in the file is dead (a child process that inherited the lock
outlived the run), the file is unlinked and a new one is locked in its place;
every taker re-checks that the file it locked is still the one at the path.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["RunLock", "RunLockError", "lock_path", "lock_run_dir"]


class RunLockError(RuntimeError):
    """Another live process holds the run folder's lock."""


def lock_path(run_dir: str | os.PathLike) -> Path:
    """The lock file of ``run_dir``: ``<parent>/.<name>.lock``."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / f".{run_dir.name}.lock"


def _alive(pid: int) -> bool:
    """``pid`` is a running process (a zombie, dead but not yet reaped, counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def _command() -> str:
    argv = list(sys.argv) or ["python"]
    if argv[0].endswith(("textgym", os.path.join("textgym", "__main__.py"), os.path.join("app", "cli.py"))):
        argv[0] = "textgym"
    return shlex.join(argv)


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(path.read_text())
        return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None
    except (OSError, ValueError):
        return None


class RunLock:
    """The exclusive lock of one run folder (see the module docstring).

    Args:
        run_dir: the run folder (need not exist yet; its parent is created).

    Use as a context manager, or :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = lock_path(run_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock now or raise.

        Raises:
            RunLockError: a live process holds it (the message names its PID and command).
        """
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(50):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(self.path)
                if owner is not None and _alive(owner["pid"]):
                    os.close(fd)
                    raise RunLockError(
                        f"run folder {self.run_dir} is in use by process {owner['pid']} "
                        f"({owner.get('command', '?')}); wait for it to finish or stop it (kill {owner['pid']}), "
                        f"then retry") from None
                if owner is None:  # its holder is between locking and writing its PID: ask again shortly
                    os.close(fd)
                    time.sleep(0.05)
                    continue
                # stale: the PID that wrote the file is dead, yet the lock is held (by a child that
                # inherited it); take the path over with a fresh file if it is still this one
                if _same_file(self.path, fd):
                    self.path.unlink(missing_ok=True)
                os.close(fd)
                continue
            if not _same_file(self.path, fd):  # unlinked by a taker between our open and our lock: try anew
                os.close(fd)
                continue
            record = json.dumps({"pid": os.getpid(), "command": _command(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S")})
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode(), 0)
            self._fd = fd
            return self
        raise RunLockError(f"could not lock run folder {self.run_dir} ({self.path} keeps changing hands); retry")

    def release(self) -> None:
        """Drop the lock (and its file); a no-op when not held."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if _same_file(self.path, fd):
            self.path.unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _same_file(path: Path, fd: int) -> bool:
    """``path`` still names the file open as ``fd``."""
    try:
        a, b = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def lock_run_dir(run_dir: str | os.PathLike) -> RunLock:
    """:class:`RunLock` of ``run_dir``, acquired."""
    return RunLock(run_dir).acquire()
