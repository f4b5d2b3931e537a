"""Child side of textgym's code-execution sandbox (run as ``python -I -S -c <this file's source> FD``).

Standalone (standard library only; it imports only built-in C modules, so that
it starts fast).  It reads the job (``marshal``, written by the parent) from stdin, sets
its resource limits, runs the program and the test setup code, then evaluates
each *call under test* (an expression such as ``add(1, 2)``, with the test
data it needs) and writes its value as tagged plain data (the encoder below;
the parent's decoder is ``textgym.rewards._plain``) to the result pipe ``FD``,
one line per call, each line starting with the job's nonce::

    <nonce> {"i": 0, "v": ["i", "3"]}
    <nonce> {"i": 1, "e": "ZeroDivisionError: division by zero"}
    <nonce> {"done": 2}
    <nonce> {"abort": "<completion> failed: SyntaxError: ..."}

The child never sees the expected values and never decides whether a test
passed: the parent does (``textgym.rewards._verdict``).  The program runs in
this same process and can change or forge anything written here; that can
only make its own tests fail, since a passing value must equal an expected
value the child never had.
"""

import _signal
import builtins
import marshal
import os
import resource
import sys
from _collections import OrderedDict, defaultdict, deque
from _json import encode_basestring_ascii as _quote

MAX_RECORD = 1 << 20


class _CallTimeout(BaseException):
    """Raised by SIGALRM when one call under test runs past its time limit."""


def encode(value, depth=0):
    """JSON text of the tagged plain data of ``value`` (exact built-in types only; anything else: TypeError)."""
    if depth > 64:
        raise TypeError("value nested too deeply")
    t = type(value)
    if value is None:
        return '["N"]'
    if t is bool:
        return '["b",true]' if value else '["b",false]'
    if t is int:
        return '["i","%s"]' % int.__repr__(value)
    if t is float:
        return '["f",%s]' % _quote(float.__repr__(value))
    if t is complex:
        return '["c",%s,%s]' % (_quote(float.__repr__(value.real)), _quote(float.__repr__(value.imag)))
    if t is str:
        return '["s",%s]' % _quote(value)
    if t is bytes:
        return '["y","%s"]' % bytes.hex(value)
    for tag, kind in (("l", list), ("t", tuple), ("S", set), ("F", frozenset), ("q", deque)):
        if t is kind:
            return '["%s",[%s]]' % (tag, ",".join([encode(x, depth + 1) for x in value]))
    collections = sys.modules.get("collections")
    counter = getattr(collections, "Counter", None) if collections is not None else None
    for tag, kind in (("d", dict), ("d", defaultdict), ("C", counter), ("o", OrderedDict)):
        if kind is not None and t is kind:
            pairs = ["[%s,%s]" % (encode(k, depth + 1), encode(v, depth + 1)) for k, v in dict.items(value)]
            return '["%s",[%s]]' % (tag, ",".join(pairs))
    raise TypeError(f"result of type {t.__name__} is not plain data (use built-in types)")


def decode(obj, results):
    """A binding sent by the parent: plain data, a module (by name) or an earlier call's value."""
    tag, args = obj[0], obj[1:]
    if tag == "h":
        ok, value = results[args[0]]
        if not ok:
            raise RuntimeError(f"uses the value of call {args[0]}, which failed: {value}")
        return value
    if tag == "m":
        return __import__(args[0])
    if tag == "N":
        return None
    if tag in ("b", "s"):
        return args[0]
    if tag == "i":
        return int(args[0])
    if tag == "f":
        return float(args[0])
    if tag == "c":
        return complex(float(args[0]), float(args[1]))
    if tag == "y":
        return bytes.fromhex(args[0])
    seq = {"l": list, "t": tuple, "S": set, "F": frozenset, "q": deque}
    if tag in seq:
        return seq[tag](decode(x, results) for x in args[0])
    pairs = [(decode(k, results), decode(v, results)) for k, v in args[0]]
    if tag == "C":
        from collections import Counter

        return Counter(dict(pairs))
    return {"d": dict, "o": OrderedDict}[tag](pairs)


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


def _describe(exc):
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def main():
    out = int(sys.argv[1])
    job = marshal.loads(sys.stdin.buffer.read())
    nonce = job["nonce"]
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)

    def emit(text):
        """Write one record (JSON text of an object) to the result pipe."""
        line = (nonce + " " + text + "\n").encode("ascii")
        os.write(out, line)

    def record(i, value=None, error=None):
        if error is None:
            try:
                text = '{"i":%d,"v":%s}' % (i, encode(value))
                if len(text) <= MAX_RECORD:
                    return text
                error = "result too large"
            except (TypeError, ValueError, RecursionError) as exc:
                error = _describe(exc)
        return '{"i":%d,"e":%s}' % (i, _quote(error))

    def abort(reason):
        emit('{"abort":%s}' % _quote(reason))

    limits = job["limits"]

    def on_xcpu(signum, frame):
        abort(f"CPU time limit ({limits['cpu_seconds']} s) exceeded")
        os._exit(124)

    def on_alarm(signum, frame):
        raise _CallTimeout()

    _signal.signal(_signal.SIGXCPU, on_xcpu)
    _signal.signal(_signal.SIGALRM, on_alarm)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_IGN)  # oversized writes fail with EFBIG instead of killing
    _limit("RLIMIT_CORE", 0)
    _limit("RLIMIT_FSIZE", limits["file_size_bytes"])
    _limit("RLIMIT_NOFILE", limits["max_open_files"])
    _limit("RLIMIT_NPROC", limits["max_processes"])
    _limit("RLIMIT_CPU", limits["cpu_seconds"])
    _limit("RLIMIT_AS", limits["memory_bytes"])
    if not hasattr(builtins, "exit"):  # `-S` skips site, which normally defines exit() and quit()
        def _exit(code=None):
            raise SystemExit(code)

        builtins.exit = builtins.quit = _exit
    call_timeout = job.get("call_timeout")
    namespace = {"__name__": "__sandbox__", "__builtins__": builtins}

    for code, label in ((job["program"], "<completion>"), (job["setup"], "<test setup>")):
        if not code.strip():
            continue
        try:
            exec(compile(code, label, "exec"), namespace)
        except SystemExit as exc:
            abort(f"called exit()/sys.exit() ({exc.code!r}) in {label}")
            os._exit(3)
        except BaseException as exc:  # noqa: BLE001 - any failure of untrusted code is a result
            abort(f"{label} failed: {_describe(exc)}")
            os._exit(2)

    results = []
    aliases = job["aliases"]
    for i, call in enumerate(job["calls"]):
        env = dict(namespace)
        if call_timeout:
            _signal.setitimer(_signal.ITIMER_REAL, call_timeout)
        try:
            for name, target in aliases.items():
                env[name] = namespace[target]
            for name, obj in call["bind"].items():
                env[name] = decode(obj, results)
            value = eval(compile(call["src"], f"<test {call['test']}>", "eval"), env)
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            results.append((True, value))
            text = record(i, value)
        except _CallTimeout:
            results.append((False, "timed out"))
            text = record(i, error=f"timed out after {call_timeout} s")
        except SystemExit as exc:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            results.append((False, "exit"))
            text = record(i, error=f"called exit()/sys.exit() ({exc.code!r})")
        except BaseException as exc:  # noqa: BLE001 - a failing call is a result
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            error = "MemoryError (memory limit)" if isinstance(exc, MemoryError) else _describe(exc)
            results.append((False, error))
            text = record(i, error=error)
        emit(text)
    emit('{"done":%d}' % len(results))
    os._exit(0)


if __name__ == "__main__":
    main()
