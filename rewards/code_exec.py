"""Code-execution reward: run a completion against unit tests in an isolated, limited process.

Two separate guarantees (details: the README's "Code-execution sandbox"):

* **The verdict** is decided in the parent (:mod:`textgym.rewards._verdict`):
  the sandbox only evaluates the calls under test (``add(1, 2)``) and returns
  their values as plain data of exact built-in types; the expected values
  never enter it, and the parent compares with its own code.
* **Isolation** by the operating system (:mod:`textgym.rewards._launcher`):
  each sample runs in a bubblewrap sandbox as an unprivileged user with a
  read-only view of the system directories only, a private size-limited
  tmpfs, fresh ``/proc``, no network, and process, memory, CPU, file-size and
  wall-clock limits; every process it starts is killed at the end.  Without
  bubblewrap the reward refuses to run, unless ``isolation="none"`` is passed
  explicitly (a warning says what is lost).
"""

from __future__ import annotations

import json
import marshal
import os
import re
import secrets
import signal
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from textgym.reward_api import RewardFunction

from ._launcher import SandboxUnavailable, resolve_bwrap, run_child
from ._plain import PlainError, decode
from ._text import clean_text
from ._verdict import Plan, judge, make_plan

__all__ = ["CodeExecutionReward", "ExecutionResult", "SandboxUnavailable"]

_FENCE_RE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


@dataclass
class ExecutionResult:
    """Outcome of one sample: ``passed`` of ``total`` tests, and why it ended.

    Attributes:
        passed: number of tests that passed (0 when ``aborted``).
        total: number of tests.
        reason: human-readable summary (first failure, or why it was aborted).
        timed_out: the wall-clock limit was hit.
        aborted: the run ended abnormally (timeout, crash, exit(), load error, forged results).
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


def extract_code(text: str) -> str:
    """The first fenced Markdown code block of ``text``, or ``text`` unchanged if there is none."""
    m = _FENCE_RE.search(text)
    return m.group(1) if m else text


class CodeExecutionReward(RewardFunction):
    """Pass fraction of unit tests run on the completion in an isolated, resource-limited sandbox.

    Per-sample test columns (passed as keyword columns, one entry per sample):

    * HumanEval style: ``test`` (code defining ``check(candidate)``) and
      ``entry_point`` (the function name); one test, ``check(<entry_point>)``.
      Chen et al. (2021), "Evaluating Large Language Models Trained on Code".
    * MBPP style: ``test_list`` (assert statements, each counted separately)
      and optional ``test_setup_code`` (run in the sandbox after the program).
      Austin et al. (2021), "Program Synthesis with Large Language Models".

    The program is ``prompt + completion`` when ``include_prompt`` is true
    (default ``"auto"``: for HumanEval-style samples, whose prompt is the
    function header), else the completion alone.  With ``extract_code`` the
    first fenced Markdown block of the completion is used when there is one.

    Verdict: the sandbox evaluates only the calls under test and returns their
    values as plain data; the parent compares them with the expected values
    (which never enter the sandbox).  See :mod:`textgym.rewards._verdict` for
    the test forms supported; a test of another form counts as failed and
    ``last_reasons`` says so.

    Score: ``passed / total`` in [0, 1] when the run finishes; 0 when the
    completion fails to load, calls ``exit()``/``os._exit``, exceeds the wall
    clock, CPU or memory, is killed, writes anything but the harness's
    results to the result pipe, or a sample has no tests.  After each call
    ``last_reasons`` (list of ``B`` strings) and ``last_results``
    (:class:`ExecutionResult`) say what happened; the components returned are
    ``tests_passed``, ``tests_total``, ``timed_out`` and ``aborted`` (each
    ``(B,)`` float32).

    Args:
        timeout: wall-clock seconds per sample (the whole sandbox).
        test_timeout: optional seconds per call under test (a slow call fails,
            the rest still count); ``None`` = only the overall ``timeout``.
        memory_mb: address-space limit per process (MiB).
        cpu_seconds: CPU-time limit per process; default ``ceil(timeout) + 1``.
        file_size_mb: largest file the program may write (MiB).
        disk_mb: size of the sandbox's private tmpfs, its only writable place (MiB).
        max_processes: processes and threads the sandbox user may have (``RLIMIT_NPROC``).
        max_open_files: ``RLIMIT_NOFILE`` of the child.
        workers: sandboxes run in parallel (default: CPU count).
        include_prompt: ``True``, ``False`` or ``"auto"`` (see above).
        extract_code: use the first fenced code block if present.
        isolation: ``"bwrap"`` (bubblewrap, required; ``"auto"`` is the same
            and never falls back) or ``"none"`` (no OS isolation: the program
            runs as this user with only the resource limits; warns).
        python: interpreter for the child (default: this one if the sandbox
            user can read it, else ``/usr/bin/python3``); standard library only.
        test_column, entry_point_column, test_list_column, setup_column:
            column names.

    Raises:
        SandboxUnavailable: (construction) isolation is asked for and
            bubblewrap is missing or cannot start a sandbox.
        ValueError: bad arguments; (when called) a sample has neither
            HumanEval nor MBPP test columns.
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
        disk_mb: int = 64,
        max_processes: int = 16,
        max_open_files: int = 64,
        workers: int | None = None,
        include_prompt: bool | str = "auto",
        extract_code: bool = True,
        isolation: str = "auto",
        python: str | None = None,
        test_column: str = "test",
        entry_point_column: str = "entry_point",
        test_list_column: str = "test_list",
        setup_column: str = "test_setup_code",
    ):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if isolation not in ("auto", "bwrap", "none"):
            raise ValueError(f"isolation must be 'bwrap' (= 'auto') or 'none', got {isolation!r}")
        if include_prompt not in (True, False, "auto"):
            raise ValueError(f"include_prompt must be True, False or 'auto', got {include_prompt!r}")
        for arg, value in (("memory_mb", memory_mb), ("file_size_mb", file_size_mb), ("disk_mb", disk_mb),
                           ("max_processes", max_processes), ("max_open_files", max_open_files)):
            if int(value) < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        self.timeout = float(timeout)
        self.test_timeout = test_timeout
        self.memory_mb = int(memory_mb)
        self.cpu_seconds = int(cpu_seconds) if cpu_seconds is not None else int(np.ceil(timeout)) + 1
        self.file_size_mb = int(file_size_mb)
        self.disk_mb = int(disk_mb)
        self.max_processes = int(max_processes)
        self.max_open_files = int(max_open_files)
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.include_prompt = include_prompt
        self.extract_code = extract_code
        self.isolation = "none" if isolation == "none" else "bwrap"
        if self.isolation == "bwrap":
            self.python, self._bwrap = resolve_bwrap(python, self.disk_mb)
        else:
            warnings.warn(
                "CodeExecutionReward(isolation='none'): model-written code runs as this user with full access "
                "to its files, network and processes (only time, memory, CPU and file-size limits apply). "
                "Use it only for trusted code; install bubblewrap for isolation.", RuntimeWarning, stacklevel=2)
            self.python, self._bwrap = python or sys.executable, None
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
            plan = make_plan((str(test),), str(entry))
            humaneval = True
        elif test_list is not None:
            tests = [test_list] if isinstance(test_list, str) else [str(t) for t in test_list]
            plan = make_plan(tuple(tests), None)
            humaneval = False
        else:
            raise ValueError(
                f"reward {self.name!r}: sample {i} has no tests. Pass per-sample columns "
                f"{c['test']!r} + {c['entry_point']!r} (HumanEval style) or {c['test_list']!r} (MBPP style); "
                f"got columns {sorted(columns)}"
            )
        use_prompt = humaneval if self.include_prompt == "auto" else self.include_prompt
        program = clean_text(prompt) + code if use_prompt else code
        return {"program": program, "setup": clean_text(col("setup") or ""), "plan": plan}

    def run_one(self, job: dict[str, Any]) -> ExecutionResult:
        """Run one job (from :meth:`_job`) in a sandbox and judge it."""
        plan: Plan = job["plan"]
        total = plan.n_tests
        nonce = secrets.token_hex(16)
        payload = {
            "nonce": nonce, "program": job["program"], "setup": job["setup"], "aliases": plan.aliases,
            "calls": [{"src": c.src, "bind": c.bind, "test": c.test} for c in plan.calls],
            "call_timeout": self.test_timeout,
            "limits": {"memory_bytes": self.memory_mb * 2**20, "cpu_seconds": self.cpu_seconds,
                       "file_size_bytes": self.file_size_mb * 2**20, "max_open_files": self.max_open_files,
                       "max_processes": self.max_processes},
        }  # fmt: skip
        out = run_child(marshal.dumps(payload, 4), isolation=self.isolation,
                        python=self.python, bwrap=self._bwrap, timeout=self.timeout)
        if out.timed_out:
            return ExecutionResult(0, total, f"timeout: exceeded {self.timeout:g} s wall clock", True, True)
        if out.overflow:
            return ExecutionResult(0, total, "aborted: more than 16 MiB of results", False, True)
        values, abort, done = _parse_results(out.results, nonce, len(plan.calls))
        if abort is not None:
            return ExecutionResult(0, total, abort, False, True)
        if not done or out.returncode != 0:
            rc = out.returncode
            if rc is not None and (rc < 0 or rc > 128):
                sig = -rc if rc < 0 else rc - 128
                what = {signal.SIGKILL: "killed (SIGKILL; memory or CPU limit?)",
                        signal.SIGXCPU: f"CPU time limit ({self.cpu_seconds} s) exceeded",
                        signal.SIGSEGV: "crashed (SIGSEGV)"}.get(sig, f"killed by signal {sig}")
            else:
                what = f"process exited with code {rc} before finishing the tests (os._exit()?)"
            if out.stderr:
                what += f"; stderr: {out.stderr}"
            return ExecutionResult(0, total, what, False, True)
        failures = judge(plan, values)
        passed = sum(not f for f in failures)
        first = next(((i, f) for i, f in enumerate(failures) if f), None)
        reason = f"passed {passed}/{total}" + (f"; test {first[0]} failed: {first[1]}" if first else "")
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


def _parse_results(data: bytes, nonce: str, n_calls: int) -> tuple[list[tuple[bool, Any]], str | None, bool]:
    """``(values, abort reason, done)`` from the result pipe; anything out of protocol aborts the sample.

    The protocol: one line per call under test, in order (``{"i": k, "v": value}``
    or ``{"i": k, "e": error}``), then ``{"done": n_calls}``, each line
    prefixed by the job's nonce; or an ``{"abort": reason}`` line.
    """
    prefix = nonce.encode() + b" "
    values: list[tuple[bool, Any]] = []
    lines = data.split(b"\n")
    if lines[-1]:
        lines.append(b"")  # an unfinished last line: the process died while writing
    done = False
    for line in lines[:-1]:
        try:
            if done or not line.startswith(prefix):
                raise PlainError("unexpected output")
            rec = json.loads(line[len(prefix):].decode("utf-8"))
            if type(rec) is not dict:
                raise PlainError("record is not an object")
            keys = set(rec)
            if keys == {"abort"} and type(rec["abort"]) is str:
                return values, rec["abort"][:500], False
            if keys == {"done"} and rec["done"] == n_calls == len(values):
                done = True
            elif keys in ({"i", "v"}, {"i", "e"}) and type(rec["i"]) is int and rec["i"] == len(values):
                if "e" in rec:
                    if type(rec["e"]) is not str:
                        raise PlainError("malformed error")
                    values.append((False, rec["e"][:300]))
                else:
                    try:
                        values.append((True, decode(rec["v"])))
                    except (PlainError, RecursionError, ValueError) as exc:
                        values.append((False, f"result is not plain data ({exc})"))
            else:
                raise PlainError("record out of protocol")
        except (PlainError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            return values, f"aborted: the result pipe was tampered with ({exc})", False
    return values, None, done
