"""Start the code sandbox's child process: inside bubblewrap (OS isolation), or plainly when asked to.

With ``isolation="bwrap"`` each run is one ``bwrap`` process (bubblewrap,
https://github.com/containers/bubblewrap) that gives the child:

* an unprivileged user: the parent drops to uid/gid 65534 (nobody, no
  supplementary groups; with ``setpriv``) before starting ``bwrap`` when it runs as root, and
  ``bwrap`` maps that user into a new user namespace (uid 65534 inside, no
  capabilities, no further user namespaces: ``--disable-userns``);
* a new mount namespace whose root holds only read-only binds of ``/usr``,
  ``/bin``, ``/lib*``, ``/sbin`` and the interpreter's prefix (no ``/etc``,
  ``/home``, ``/root``, ``/work``...), a fresh ``/proc`` (PID namespace), a
  minimal read-only ``/dev`` and a private tmpfs of ``disk_mb`` MiB at ``/tmp``
  (its working directory, the only writable place);
* new network (no interface but its own loopback), IPC, UTS, cgroup and PID
  namespaces; ``--die-with-parent`` and the PID namespace's end kill every
  process it started, ``setsid()`` ones included;
* a clean environment (the ``bwrap`` process itself gets one too, since the
  child can read its PID 1's ``/proc/1/environ``).

The resource limits (processes, memory, CPU, file size, open files) are set
by the child itself before the program runs (``_sandbox_child.py``); as a
non-root user without capabilities it cannot raise them again.
"""

from __future__ import annotations

import json
import os
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CHILD_SOURCE = (Path(__file__).resolve().parent / "_sandbox_child.py").read_text(encoding="utf-8")
SANDBOX_UID = 65534
MAX_OUTPUT = 16 * 2**20  # bytes of results read from one child
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_PROBED: dict[tuple, tuple[str, list[str]]] = {}
_PROBE_LOCK = threading.Lock()


class SandboxUnavailable(RuntimeError):
    """OS isolation was asked for (the default) but bubblewrap cannot run here."""


@dataclass
class RunOutput:
    """What one child run left: its result bytes, the tail of its stderr, and how it ended."""

    results: bytes
    stderr: str
    returncode: int | None
    timed_out: bool
    overflow: bool


def _base_prefix(python: str) -> str:
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return sys.base_prefix
    out = subprocess.run([python, "-I", "-S", "-c", "import sys; print(sys.base_prefix)"], capture_output=True,
                         text=True, timeout=30, check=True)
    return out.stdout.strip()


def bwrap_command(python: str, disk_mb: int, disable_userns: bool = True) -> list[str]:
    """The ``bwrap`` argument list (without the interpreter's own arguments) for interpreter ``python``."""
    python = os.path.realpath(python)
    cmd = ["bwrap", "--unshare-all", "--unshare-user"] + (["--disable-userns"] if disable_userns else [])
    cmd += ["--die-with-parent", "--new-session", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox"]
    bound = []
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            cmd += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            cmd += ["--ro-bind", d, d]
            bound.append(d)
    prefix = os.path.realpath(_base_prefix(python))
    for path in (prefix, os.path.dirname(python)):
        if not any(path == b or path.startswith(b + os.sep) for b in bound):
            cmd += ["--ro-bind", path, path]
            bound.append(path)
    cmd += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev", "--size", str(int(disk_mb) * 2**20),
            "--tmpfs", "/tmp", "--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
    for k, v in {**_ENV, "HOME": "/tmp", "TMPDIR": "/tmp"}.items():
        cmd += ["--setenv", k, v]
    return cmd + [python]


def _drop_privileges(cmd: list[str]) -> tuple[list[str], dict]:
    """``(command, Popen keywords)`` that start ``cmd`` as the sandbox user when this process is root.

    ``setpriv`` (util-linux) is preferred: ``Popen(user=...)`` cannot use
    ``vfork`` and copies a large parent (torch loaded) at every start.
    """
    if os.geteuid() != 0:
        return cmd, {}
    setpriv = shutil.which("setpriv")
    if setpriv:
        uid = str(SANDBOX_UID)
        return [setpriv, "--reuid", uid, "--regid", uid, "--clear-groups", *cmd], {}
    return cmd, {"user": SANDBOX_UID, "group": SANDBOX_UID, "extra_groups": []}


def resolve_bwrap(python: str | None, disk_mb: int) -> tuple[str, list[str]]:
    """``(interpreter, bwrap prefix)`` that runs here, probing once per setting.

    Without ``python``, the current interpreter is tried first, then
    ``/usr/bin/python3`` and ``/usr/local/bin/python3`` (the sandbox user must
    be able to read the interpreter: one under ``/root`` is not).

    Raises:
        SandboxUnavailable: ``bwrap`` is missing or cannot start a sandbox here.
    """
    key = (python, disk_mb)
    with _PROBE_LOCK:
        if key in _PROBED:
            return _PROBED[key]
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable(
                "code-exec: bubblewrap (`bwrap`) is not installed, so model-written code cannot be isolated. "
                "Install it (`apt-get install bubblewrap`; `make install` does) or pass isolation='none' "
                "to run it without OS isolation (unsafe)")
        candidates = [python] if python else [sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"]
        errors = []
        for cand in candidates:
            if not cand or not os.path.exists(cand):
                continue
            for disable_userns in (True, False):
                try:
                    cmd = bwrap_command(cand, disk_mb, disable_userns)
                    full, extra = _drop_privileges(cmd + ["-I", "-S", "-c", "import os; assert os.getuid() == 65534"])
                    r = subprocess.run(full, capture_output=True, text=True, timeout=60, env=dict(_ENV), **extra)
                except (OSError, subprocess.SubprocessError) as exc:
                    errors.append(f"{cand}: {exc}")
                    continue
                if r.returncode == 0:
                    _PROBED[key] = (cand, cmd)
                    return _PROBED[key]
                errors.append(f"{cand}: {r.stderr.strip()[-300:]}")
                if "disable-userns" not in r.stderr:
                    break
        raise SandboxUnavailable(
            "code-exec: bubblewrap is installed but cannot start a sandbox here "
            f"({'; '.join(errors) or 'no interpreter found'}). Check that unprivileged user namespaces are "
            "enabled (sysctl kernel.unprivileged_userns_clone=1), pass python= an interpreter the sandbox "
            "user can read, or pass isolation='none' to run without OS isolation (unsafe)")


def run_child(job: bytes, *, isolation: str, python: str, bwrap: list[str] | None, timeout: float) -> RunOutput:
    """Run the child on ``job`` (``marshal`` bytes) and collect its result pipe until it ends or ``timeout`` passes.

    With bubblewrap it returns only once the sandbox's PID namespace is gone
    (every process the program started is dead): ``bwrap`` itself may exit
    before, so the namespace's first process is watched (``--info-fd``).
    """
    r_fd, w_fd = os.pipe()
    info_r, info_w = os.pipe() if isolation == "bwrap" else (-1, -1)
    workdir = None
    with tempfile.TemporaryFile() as job_file:
        job_file.write(job)
        job_file.seek(0)
        try:
            if isolation == "bwrap":
                cmd, extra = _drop_privileges([bwrap[0], "--info-fd", str(info_w), *bwrap[1:], "-I", "-S", "-c",
                                               CHILD_SOURCE, str(w_fd)])
                env, cwd, fds = dict(_ENV), "/", (w_fd, info_w)
            else:
                workdir = tempfile.mkdtemp(prefix="textgym-sandbox-")
                cmd = [python, "-I", "-S", "-c", CHILD_SOURCE, str(w_fd)]
                extra, env, cwd, fds = {}, {**_ENV, "HOME": workdir, "TMPDIR": workdir}, workdir, (w_fd,)
            proc = subprocess.Popen(cmd, stdin=job_file, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    pass_fds=fds, env=env, cwd=cwd, start_new_session=True, **extra)
        except BaseException:
            for fd in (r_fd, w_fd, info_r, info_w):
                if fd >= 0:
                    os.close(fd)
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
    os.close(w_fd)
    if info_w >= 0:
        os.close(info_w)
    init = None
    try:
        if info_r >= 0:
            init = _namespace_init(info_r, timeout)
        return _collect(proc, r_fd, timeout)
    finally:
        os.close(r_fd)
        if info_r >= 0:
            os.close(info_r)
        _kill_group(proc)
        if init is not None:  # killed with bwrap (--die-with-parent); wait until its namespace is gone
            _wait_readable(init, 10.0)
            os.close(init)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _namespace_init(info_r: int, timeout: float) -> int | None:
    """A pidfd of the sandbox's PID 1, from the JSON bwrap writes to ``--info-fd`` (None if it wrote none)."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([info_r], [], [], deadline - time.monotonic())
        chunk = os.read(info_r, 4096) if ready else b""
        if not chunk:
            break
        data += chunk
        try:
            pid = json.loads(data.decode())["child-pid"]
        except (ValueError, KeyError, TypeError):
            continue
        try:
            return os.pidfd_open(int(pid))
        except OSError:  # already gone
            return None
    return None


def _wait_readable(fd: int, timeout: float) -> bool:
    """Wait until ``fd`` is readable (a pidfd: the process has ended); False after ``timeout`` seconds."""
    return bool(select.select([fd], [], [], timeout)[0])


def _collect(proc: subprocess.Popen, r_fd: int, timeout: float) -> RunOutput:
    deadline = time.monotonic() + timeout
    results, err = bytearray(), bytearray()
    timed_out = overflow = False
    pidfd = os.pidfd_open(proc.pid)
    os.set_blocking(r_fd, False)
    os.set_blocking(proc.stderr.fileno(), False)
    sel = selectors.DefaultSelector()
    sel.register(r_fd, selectors.EVENT_READ, "results")
    sel.register(proc.stderr.fileno(), selectors.EVENT_READ, "stderr")
    sel.register(pidfd, selectors.EVENT_READ, "exit")
    streams = {r_fd, proc.stderr.fileno()}

    def drain(fd: int) -> bool:
        """Read what ``fd`` holds now; False at end of file or when the results overflow."""
        nonlocal results, err
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            if fd == r_fd:
                results += chunk
                if len(results) > MAX_OUTPUT:
                    return False
            else:
                err = (err + chunk)[-2000:]

    try:
        while streams:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            exited = False
            for key, _ in sel.select(left):
                if key.data == "exit":
                    exited = True
                elif key.fd in streams and not drain(key.fd):
                    sel.unregister(key.fd)
                    streams.discard(key.fd)
            overflow = len(results) > MAX_OUTPUT
            if overflow:
                break
            if exited:  # a process it left behind may hold the pipes open: take what is there and stop
                for fd in list(streams):
                    drain(fd)
                overflow = len(results) > MAX_OUTPUT
                break
    finally:
        sel.close()
        os.close(pidfd)
    if not timed_out and not overflow:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    proc.stderr.close()
    stderr = err.decode("utf-8", "replace").strip().replace("\n", " | ")[-300:]
    return RunOutput(bytes(results), stderr, proc.returncode, timed_out, overflow)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it is a session leader) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
