"""Child side of textgym's code-execution sandbox (run as ``python -I -S _sandbox_child.py``).

Standalone (standard library only).  It reads the job from ``job.json`` in its
working directory, deletes it, applies resource limits and in-process guards,
runs the program, the setup code and each test, and appends one line per event
to ``result.jsonl`` prefixed with a per-job nonce::

    <nonce> {"event": "test", "i": 0, "ok": true, "error": ""}
    <nonce> {"event": "done"}
    <nonce> {"event": "abort", "reason": "..."}

The parent (``textgym.rewards.code_exec``) enforces the wall-clock limit,
kills the process group and reads the results.
"""

import builtins
import io
import json
import os
import resource
import signal
import sys

RESULT = "result.jsonl"


class _TestTimeout(BaseException):
    """Raised by SIGALRM when one test runs past its time limit."""


def _emit(fd, nonce, obj):
    os.write(fd, (nonce + " " + json.dumps(obj) + "\n").encode("utf-8", "replace"))


def _limit(kind, value):
    if value is None or not hasattr(resource, kind):
        return
    value = int(value)
    try:
        resource.setrlimit(getattr(resource, kind), (value, value))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(getattr(resource, kind))
        if hard == resource.RLIM_INFINITY or value <= hard:
            resource.setrlimit(getattr(resource, kind), (value, hard))


def _install_guards(root):
    """Best-effort in-process guards; the limits and the parent's kill are the real backstop."""

    def deny(what):
        def denied(*args, **kwargs):
            raise PermissionError(f"{what} is disabled in the textgym sandbox")

        return denied

    import posix

    for name in ("fork", "forkpty", "vfork", "system", "execv", "execve", "execl", "execle", "execlp", "execlpe",
                 "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
                 "spawnvpe", "posix_spawn", "posix_spawnp", "kill", "killpg", "setsid", "setpgid", "setuid",
                 "setgid", "chroot", "plock", "pidfd_open"):
        for mod in (os, posix):
            if hasattr(mod, name):
                setattr(mod, name, deny(f"os.{name}()"))
    try:
        import _posixsubprocess

        _posixsubprocess.fork_exec = deny("starting a subprocess")
    except ImportError:
        pass
    try:
        import _socket
        import socket

        for mod in (socket, _socket):
            for name in ("socket", "socketpair", "create_connection", "create_server", "getaddrinfo",
                         "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "fromfd"):
                if hasattr(mod, name):
                    setattr(mod, name, deny(f"network access (socket.{name})"))
    except ImportError:
        pass

    root = os.path.realpath(root)
    real_open = builtins.open
    real_os_open = os.open

    def inside(path):
        if isinstance(path, int):
            return True
        try:
            path = os.fsdecode(path)
        except TypeError:
            return False
        target = os.path.realpath(path)
        return target == root or target.startswith(root + os.sep)

    def check(path, what, kwargs=None):
        if kwargs and any(kwargs.get(k) is not None for k in ("dir_fd", "src_dir_fd", "dst_dir_fd")):
            raise PermissionError(f"{what} with dir_fd is disabled in the textgym sandbox")
        if not inside(path):
            raise PermissionError(f"{what} outside the sandbox directory is not allowed: {path!r}")

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in str(mode) for c in "wax+"):
            check(file, "writing a file")
        return real_open(file, mode, *args, **kwargs)

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & write_flags:
            check(path, "writing a file", kwargs)
        return real_os_open(path, flags, *args, **kwargs)

    builtins.open = guarded_open
    io.open = guarded_open
    for mod in (os, posix):
        mod.open = guarded_os_open

    def path_guard(name, nargs):
        real = getattr(os, name)

        def guarded(*args, **kwargs):
            paths = list(args[:nargs]) + [kwargs[k] for k in ("path", "src", "dst") if k in kwargs]
            for p in paths:
                check(p, f"os.{name}()", kwargs)
            return real(*args, **kwargs)

        return guarded

    for name, nargs in (("remove", 1), ("unlink", 1), ("rmdir", 1), ("mkdir", 1), ("rename", 2), ("replace", 2),
                        ("chmod", 1), ("chown", 1), ("lchown", 1), ("truncate", 1), ("symlink", 2), ("link", 2),
                        ("utime", 1), ("mkfifo", 1), ("mknod", 1)):
        if hasattr(os, name):
            guarded = path_guard(name, nargs)
            setattr(os, name, guarded)
            if hasattr(posix, name):
                setattr(posix, name, guarded)


def main():
    root = os.getcwd()
    with open("job.json", encoding="utf-8") as fh:
        job = json.load(fh)
    os.unlink("job.json")
    nonce = job["nonce"]
    out = os.open(RESULT, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    limits = job["limits"]

    def on_xcpu(signum, frame):
        _emit(out, nonce, {"event": "abort", "reason": f"CPU time limit ({limits['cpu_seconds']} s) exceeded"})
        os._exit(124)

    def on_alarm(signum, frame):
        raise _TestTimeout()

    signal.signal(signal.SIGXCPU, on_xcpu)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail with EFBIG instead of killing
    for name in job.get("blocked_modules", []):
        sys.modules[name] = None  # makes `import name` raise ImportError
    _install_guards(root)
    _limit("RLIMIT_CORE", 0)
    _limit("RLIMIT_FSIZE", limits["file_size_bytes"])
    _limit("RLIMIT_NOFILE", limits["max_open_files"])
    _limit("RLIMIT_NPROC", 0)  # no new processes or threads (not enforced for root: see the guards)
    _limit("RLIMIT_CPU", limits["cpu_seconds"])
    _limit("RLIMIT_AS", limits["memory_bytes"])
    if not hasattr(builtins, "exit"):  # `-S` skips site, which normally defines exit() and quit()
        def _exit(code=None):
            raise SystemExit(code)

        builtins.exit = builtins.quit = _exit
    test_timeout = job.get("test_timeout")
    namespace = {"__name__": "__sandbox__", "__builtins__": builtins}

    def run(code, label):
        """Execute ``code``; return '' on success or an error description; exit() aborts the job."""
        if test_timeout:
            signal.setitimer(signal.ITIMER_REAL, test_timeout)
        try:
            exec(compile(code, label, "exec"), namespace)
            return ""
        except SystemExit as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _emit(out, nonce, {"event": "abort", "reason": f"called exit()/sys.exit() ({exc.code!r}) in {label}"})
            os._exit(3)
        except _TestTimeout:
            return f"timed out after {test_timeout} s"
        except MemoryError:
            return f"MemoryError (memory limit {limits['memory_bytes'] // 2**20} MiB)"
        except BaseException as exc:  # noqa: BLE001 - any failure of untrusted code is a result
            text = str(exc)
            return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    for code, label in ((job["program"], "<completion>"), (job.get("setup") or "", "<test setup>")):
        error = run(code, label) if code.strip() else ""
        if error:
            _emit(out, nonce, {"event": "abort", "reason": f"{label} failed: {error}"})
            os._exit(2)
    for i, test in enumerate(job["tests"]):
        error = run(test, f"<test {i}>")
        _emit(out, nonce, {"event": "test", "i": i, "ok": not error, "error": error})
    _emit(out, nonce, {"event": "done"})
    os._exit(0)


if __name__ == "__main__":
    main()
