"""Code-execution reward: run a completion against unit tests in a separate, limited process.

Each sample runs in its own child process (``sys.executable -I -S`` on
``_sandbox_child.py``) in a fresh temporary working directory, with a clean
environment, and these limits:

* wall clock (the parent kills the whole process group at ``timeout``);
* ``RLIMIT_AS`` (address space, ``memory_mb``), ``RLIMIT_CPU``,
  ``RLIMIT_FSIZE`` (largest file), ``RLIMIT_NOFILE``, ``RLIMIT_CORE = 0``;
* ``RLIMIT_NPROC = 0``: no new processes or threads (the kernel does not
  enforce it for root, so fork/exec/spawn/subprocess/kill are also replaced by
  functions raising ``PermissionError`` inside the child);
* writes outside the working directory refused by guarded ``open``/``os.open``
  and friends; ``ctypes`` import blocked;
* no network: socket creation and name lookup raise in the child; when the
  process runs as root and ``unshare`` exists (``isolation="auto"``), the child
  also gets its own network namespace (no interfaces but loopback) and PID
  namespace (every process it leaves behind dies with it).

This is a best-effort sandbox for model-written code, not a security boundary
against a determined attacker: the in-process guards can be undone by code that
knows about them.  Run untrusted workloads inside a container or VM as well.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textgym.reward_api import RewardFunction

from ._text import clean_text

__all__ = ["CodeExecutionReward", "ExecutionResult"]

_CHILD = str(Path(__file__).resolve().parent / "_sandbox_child.py")
_FENCE_RE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PROBE_LOCK = threading.Lock()
_UNSHARE_OK: bool | None = None
_UNSHARE = ["unshare", "--net", "--pid", "--fork", "--kill-child"]


@dataclass
class ExecutionResult:
    """Outcome of one sample: ``passed`` of ``total`` tests, and why it ended.

    Attributes:
        passed: number of tests that passed (0 when ``aborted``).
        total: number of tests.
        reason: human-readable summary (first failure, or why it was aborted).
        timed_out: the wall-clock limit was hit.
        aborted: the run ended abnormally (timeout, crash, exit(), load error).
    """

    passed: int
    total: int
    reason: str
    timed_out: bool = False
    aborted: bool = False

    @property
    def score(self) -> float:
        """Pass fraction in [0, 1]; 0 when aborted or when there are no tests."""
        return 0.0 if self.aborted or self.total == 0 else self.passed / self.total


def _namespaces_available() -> bool:
    global _UNSHARE_OK
    with _PROBE_LOCK:
        if _UNSHARE_OK is None:
            _UNSHARE_OK = False
            if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("unshare"):
                try:
                    r = subprocess.run([*_UNSHARE, "true"], capture_output=True, timeout=10)
                    _UNSHARE_OK = r.returncode == 0
                except (OSError, subprocess.SubprocessError):
                    _UNSHARE_OK = False
        return _UNSHARE_OK


def extract_code(text: str) -> str:
    """The first fenced Markdown code block of ``text``, or ``text`` unchanged if there is none."""
    m = _FENCE_RE.search(text)
    return m.group(1) if m else text


class CodeExecutionReward(RewardFunction):
    """Pass fraction of unit tests run on the completion in a resource-limited subprocess.

    Per-sample test columns (passed as keyword columns, one entry per sample):

    * HumanEval style: ``test`` (code defining ``check(candidate)``) and
      ``entry_point`` (the function name); one test, ``check(<entry_point>)``.
      Chen et al. (2021), "Evaluating Large Language Models Trained on Code".
    * MBPP style: ``test_list`` (assert statements, each run and counted
      separately in the same process) and optional ``test_setup_code``.
      Austin et al. (2021), "Program Synthesis with Large Language Models".

    The program is ``prompt + completion`` when ``include_prompt`` is true
    (default ``"auto"``: for HumanEval-style samples, whose prompt is the
    function header), else the completion alone.  With ``extract_code`` the
    first fenced Markdown block of the completion is used when there is one.

    Score: ``passed / total`` in [0, 1] when the run finishes; 0 when the
    completion fails to load, calls ``exit()``/``os._exit``, exceeds the wall
    clock, memory, CPU or is killed, or a sample has no tests.  After each
    call ``last_reasons`` (list of ``B`` strings) and ``last_results``
    (:class:`ExecutionResult`) say what happened; the components returned are
    ``tests_passed``, ``tests_total``, ``timed_out`` and ``aborted`` (each
    ``(B,)`` float32).

    Args:
        timeout: wall-clock seconds per sample (whole child process).
        test_timeout: optional seconds per test (a slow test fails, the rest
            still count); ``None`` = only the overall ``timeout``.
        memory_mb: address-space limit of the child (MiB).
        cpu_seconds: CPU-time limit; default ``ceil(timeout) + 1``.
        file_size_mb: largest file the child may write (MiB).
        max_open_files: ``RLIMIT_NOFILE`` of the child.
        workers: parallel child processes (default: CPU count).
        include_prompt: ``True``, ``False`` or ``"auto"`` (see above).
        extract_code: use the first fenced code block if present.
        isolation: ``"auto"`` (namespaces when available), ``"namespaces"``
            (require them) or ``"none"``.
        allow_site_packages: let the child import installed packages (adds
            startup time); by default only the standard library is importable.
        blocked_modules: module names the child may not import.
        python: interpreter for the child (default ``sys.executable``).
        test_column, entry_point_column, test_list_column, setup_column:
            column names.

    Raises:
        ValueError (when called): a sample has neither HumanEval nor MBPP test
            columns; ``isolation="namespaces"`` where namespaces are unavailable.
    """

    name = "code-exec"

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        test_timeout: float | None = None,
        memory_mb: int = 1024,
        cpu_seconds: int | None = None,
        file_size_mb: int = 16,
        max_open_files: int = 64,
        workers: int | None = None,
        include_prompt: bool | str = "auto",
        extract_code: bool = True,
        isolation: str = "auto",
        allow_site_packages: bool = False,
        blocked_modules: Sequence[str] = ("ctypes", "_ctypes"),
        python: str | None = None,
        test_column: str = "test",
        entry_point_column: str = "entry_point",
        test_list_column: str = "test_list",
        setup_column: str = "test_setup_code",
    ):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if isolation not in ("auto", "namespaces", "none"):
            raise ValueError(f"isolation must be 'auto', 'namespaces' or 'none', got {isolation!r}")
        if include_prompt not in (True, False, "auto"):
            raise ValueError(f"include_prompt must be True, False or 'auto', got {include_prompt!r}")
        self.timeout = float(timeout)
        self.test_timeout = test_timeout
        self.memory_mb = int(memory_mb)
        self.cpu_seconds = int(cpu_seconds) if cpu_seconds is not None else int(np.ceil(timeout)) + 1
        self.file_size_mb = int(file_size_mb)
        self.max_open_files = int(max_open_files)
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.include_prompt = include_prompt
        self.extract_code = extract_code
        self.isolation = isolation
        self.allow_site_packages = allow_site_packages
        self.blocked_modules = list(blocked_modules)
        self.python = python or sys.executable
        self.columns = dict(test=test_column, entry_point=entry_point_column, test_list=test_list_column,
                            setup=setup_column)
        self.last_reasons: list[str] = []
        self.last_results: list[ExecutionResult] = []

    # ------------------------------------------------------------------ jobs

    def _job(self, i: int, prompt: str, completion: str, columns: dict[str, list]) -> dict[str, Any]:
        c = self.columns

        def col(key):
            values = columns.get(c[key])
            return None if values is None else values[i]

        code = clean_text(completion)
        if self.extract_code and "```" in code:
            code = extract_code(code)
        test, entry, test_list = col("test"), col("entry_point"), col("test_list")
        if test and entry:
            tests = [f"{test}\n\ncheck({entry})\n"]
            humaneval = True
        elif test_list is not None:
            tests = [test_list] if isinstance(test_list, str) else [str(t) for t in test_list]
            humaneval = False
        else:
            raise ValueError(
                f"reward {self.name!r}: sample {i} has no tests. Pass per-sample columns "
                f"{c['test']!r} + {c['entry_point']!r} (HumanEval style) or {c['test_list']!r} (MBPP style); "
                f"got columns {sorted(columns)}"
            )
        use_prompt = humaneval if self.include_prompt == "auto" else self.include_prompt
        program = clean_text(prompt) + code if use_prompt else code
        return {
            "program": program,
            "setup": clean_text(col("setup") or ""),
            "tests": tests,
            "test_timeout": self.test_timeout,
            "blocked_modules": self.blocked_modules,
            "limits": {
                "memory_bytes": self.memory_mb * 2**20,
                "cpu_seconds": self.cpu_seconds,
                "file_size_bytes": self.file_size_mb * 2**20,
                "max_open_files": self.max_open_files,
            },
        }

    def _command(self) -> list[str]:
        cmd = [self.python, "-I"] + ([] if self.allow_site_packages else ["-S"]) + [_CHILD]
        if self.isolation == "none":
            return cmd
        if _namespaces_available():
            return _UNSHARE + cmd
        if self.isolation == "namespaces":
            raise ValueError("isolation='namespaces' needs root and the `unshare` tool; use isolation='auto'")
        return cmd

    def run_one(self, job: dict[str, Any]) -> ExecutionResult:
        """Run one job (from the per-sample columns) and return its :class:`ExecutionResult`."""
        total = len(job["tests"])
        nonce = secrets.token_hex(16)
        workdir = tempfile.mkdtemp(prefix="textgym-sandbox-")
        try:
            with open(os.path.join(workdir, "job.json"), "w", encoding="utf-8") as fh:
                json.dump({**job, "nonce": nonce}, fh)
            env = {
                "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
                "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0",
                "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            }  # fmt: skip
            with open(os.path.join(workdir, "stderr.txt"), "wb") as err:
                proc = subprocess.Popen(self._command(), cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                        close_fds=True)
            timed_out = False
            try:
                proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
            return self._read_result(workdir, nonce, total, proc.returncode, timed_out)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _read_result(self, workdir: str, nonce: str, total: int, returncode: int, timed_out: bool):
        events = []
        try:
            with open(os.path.join(workdir, "result.jsonl"), "rb") as fh:
                for line in fh.read(2**20).decode("utf-8", "replace").splitlines():
                    tag, _, payload = line.partition(" ")
                    if tag == nonce:
                        try:
                            events.append(json.loads(payload))
                        except json.JSONDecodeError:
                            pass
        except OSError:
            pass
        tests = {e["i"]: e for e in events if e.get("event") == "test" and isinstance(e.get("i"), int)}
        passed = sum(bool(e.get("ok")) for e in tests.values())
        abort = next((e.get("reason", "") for e in events if e.get("event") == "abort"), None)
        done = any(e.get("event") == "done" for e in events)
        if timed_out:
            return ExecutionResult(0, total, f"timeout: exceeded {self.timeout:g} s wall clock", True, True)
        if abort is not None:
            return ExecutionResult(0, total, str(abort), False, True)
        if not done:
            if returncode is not None and returncode < 0:
                sig = -returncode
                what = {signal.SIGKILL: "killed (SIGKILL; memory or CPU limit?)",
                        signal.SIGXCPU: f"CPU time limit ({self.cpu_seconds} s) exceeded",
                        signal.SIGSEGV: "crashed (SIGSEGV)"}.get(sig, f"killed by signal {sig}")
            else:
                what = f"process exited with code {returncode} before finishing the tests (os._exit()?)"
                tail = _tail(os.path.join(workdir, "stderr.txt"))
                if tail:
                    what += f"; stderr: {tail}"
            return ExecutionResult(0, total, what, False, True)
        failures = [e for _, e in sorted(tests.items()) if not e.get("ok")]
        if failures:
            first = failures[0]
            reason = f"passed {passed}/{total}; test {first['i']} failed: {first.get('error') or 'AssertionError'}"
        else:
            reason = f"passed {passed}/{total}"
        return ExecutionResult(passed, total, reason)

    # ------------------------------------------------------------------ reward

    def score(self, prompts, completions, *, references=None, **columns):
        b = len(completions)
        jobs = [self._job(i, prompts[i] if prompts is not None else "", completions[i], columns) for i in range(b)]
        if b and self.workers > 1:
            with ThreadPoolExecutor(max_workers=min(self.workers, b)) as pool:
                results = list(pool.map(self.run_one, jobs))
        else:
            results = [self.run_one(j) for j in jobs]
        self.last_results = results
        self.last_reasons = [r.reason for r in results]
        scores = np.array([r.score for r in results], dtype=np.float32)
        components = {
            "tests_passed": np.array([r.passed for r in results], np.float32),
            "tests_total": np.array([r.total for r in results], np.float32),
            "timed_out": np.array([r.timed_out for r in results], np.float32),
            "aborted": np.array([r.aborted for r in results], np.float32),
        }
        return scores, components


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


def _tail(path: str, n: int = 300) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - n))
            return fh.read().decode("utf-8", "replace").strip().replace("\n", " | ")
    except OSError:
        return ""
