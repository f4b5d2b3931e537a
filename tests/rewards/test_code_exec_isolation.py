"""The code sandbox's OS isolation (bubblewrap): each host escape below is blocked.

Each program defines ``probe()``, which tries one escape and returns what it
observed; the test asserts that observation (through the reward, so the
sandbox is the real one) and, where it can, checks the host side too.
"""

import os
import socket
import uuid

import pytest

import textgym.rewards as R
from textgym.rewards import _launcher

from sandbox_helpers import needs_bwrap, run, sandbox


def probe(box, program, expected):
    """Score of ``program`` on the test ``probe() == expected``, with the reason."""
    scores, _ = run(box, [program], tests=[f"assert probe() == {expected!r}"])
    return scores[0], box.last_reasons[0]


@pytest.fixture(scope="module")
def box():
    return sandbox(timeout=10.0, workers=1, disk_mb=32, max_processes=16)


def _sandbox_failed(code: str) -> str:
    """A probe body that returns 'blocked: <error>' when ``code`` raises, else 'escaped'."""
    body = "\n".join("        " + line for line in code.strip().splitlines())
    return (f"import os, sys, io, socket\n\ndef probe():\n    try:\n{body}\n"
            "    except Exception as exc:\n        return 'blocked'\n    return 'escaped'\n")


@needs_bwrap
def test_runs_as_nobody_without_capabilities(box):
    program = ("def probe():\n    caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')]\n"
               "    return (__import__('os').getuid(), __import__('os').getgid(), caps[0].split()[1])\n")
    assert probe(box, program, (65534, 65534, "0000000000000000")) == (1.0, "passed 1/1")


@needs_bwrap
def test_writing_outside_the_work_dir_is_blocked(box, tmp_path):
    host_target = tmp_path / f"escape-{uuid.uuid4().hex}"
    assert probe(box, _sandbox_failed(f"open({str(host_target)!r}, 'w').write('x')"), "blocked")[0] == 1.0
    assert probe(box, _sandbox_failed("open('/usr/escape', 'w').write('x')"), "blocked")[0] == 1.0
    assert probe(box, _sandbox_failed("open('/escape', 'w').write('x')"), "blocked")[0] == 1.0
    assert not host_target.exists()
    # /tmp in the sandbox is its own tmpfs: writing there works and never reaches the host's /tmp
    name = f"/tmp/textgym-{uuid.uuid4().hex}"
    assert probe(box, _sandbox_failed(f"io.FileIO({name!r}, 'w').write(b'x')"), "escaped")[0] == 1.0
    assert not os.path.exists(name)


@needs_bwrap
def test_host_files_cannot_be_deleted_or_changed(box, tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("keep me")
    assert probe(box, _sandbox_failed(f"os.remove({str(canary)!r})"), "blocked")[0] == 1.0
    assert probe(box, _sandbox_failed("os.utime(sys.executable)"), "blocked")[0] == 1.0  # read-only /usr
    assert probe(box, _sandbox_failed("os.rename(os.__file__, os.__file__ + '.x')"), "blocked")[0] == 1.0
    assert canary.read_text() == "keep me"


@needs_bwrap
def test_secrets_of_the_host_and_the_parent_are_unreadable(box, tmp_path, monkeypatch):
    secret = uuid.uuid4().hex
    monkeypatch.setenv("TEXTGYM_TEST_SECRET", secret)
    private = tmp_path / "private.txt"
    private.write_text(secret)
    private.chmod(0o600)
    for path in ("/etc/shadow", "/etc/passwd", str(private), f"/proc/{os.getpid()}/environ"):
        assert probe(box, _sandbox_failed(f"open({path!r}).read()"), "blocked")[0] == 1.0, path
    # no process the sandbox can see has the parent's environment (bwrap's own PID 1 included)
    program = ("import os\n\ndef probe():\n    found = []\n    for pid in os.listdir('/proc'):\n"
               "        try:\n            found.append(open(f'/proc/{pid}/environ').read())\n"
               "        except Exception:\n            pass\n"
               f"    return len(found) > 0 and not any({secret!r} in e for e in found)\n")
    assert probe(box, program, True) == (1.0, "passed 1/1")


@needs_bwrap
def test_process_limit_binds(box):
    program = ("import os, time\n\ndef probe():\n    n = 0\n    try:\n        for _ in range(200):\n"
               "            if os.fork() == 0:\n                time.sleep(30)\n                os._exit(0)\n"
               "            n += 1\n    except OSError:\n        return n < 16\n    return False\n")
    assert probe(box, program, True) == (1.0, "passed 1/1")


@needs_bwrap
def test_a_fork_bomb_does_not_change_another_sandbox_verdict():
    box = sandbox(workers=2, max_processes=16)
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    threads = ("import threading\n\ndef add(a, b):\n    out = []\n"
               "    ts = [threading.Thread(target=lambda: out.append(a + b)) for _ in range(4)]\n"
               "    [t.start() for t in ts]\n    [t.join() for t in ts]\n    return out[0]\n")
    scores, _ = run(box, [bomb, threads, bomb, threads])
    assert scores.tolist() == [0.0, 1.0, 0.0, 1.0]


@needs_bwrap
def test_no_network_even_to_the_hosts_loopback(box):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        code = f"socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')"
        assert probe(box, _sandbox_failed(code), "blocked")[0] == 1.0
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


@needs_bwrap
def test_processes_that_call_setsid_do_not_outlive_the_call(box):
    marker = f"{900 + int(uuid.uuid4().int % 99)}.{uuid.uuid4().int % 10**6}"
    program = ("import os\n\ndef probe():\n    if os.fork() == 0:\n        os.setsid()\n"
               f"        os.execv('/usr/bin/sleep', ['sleep', {marker!r}])\n    return 'started'\n")
    assert probe(box, program, "started")[0] == 1.0
    survivors = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    survivors.append(pid)
        except OSError:
            pass
    assert survivors == []


@needs_bwrap
def test_the_disk_cannot_be_filled(box):
    program = ("def probe():\n    written = 0\n    try:\n        for i in range(12):\n"
               "            with open(f'f{i}', 'wb') as fh:\n                fh.write(b'x' * (16 * 2**20 - 1))\n"
               "            written += 16\n    except OSError as exc:\n        return (written <= 32, exc.errno)\n"
               "    return (False, 0)\n")
    assert probe(box, program, (True, 28)) == (1.0, "passed 1/1")  # ENOSPC from the 32 MiB tmpfs


def test_without_bubblewrap_the_reward_refuses_to_run(monkeypatch):
    monkeypatch.setattr(_launcher.shutil, "which", lambda name: None)
    with pytest.raises(R.SandboxUnavailable, match=r"bubblewrap \(`bwrap`\) is not installed.*isolation='none'"):
        R.CodeExecutionReward(disk_mb=7)  # a setting not probed yet
    with pytest.raises(R.SandboxUnavailable):
        R.CodeExecutionReward(isolation="bwrap", disk_mb=7)
    with pytest.warns(RuntimeWarning, match="runs as this user with full access"):
        R.CodeExecutionReward(isolation="none")
    with pytest.raises(ValueError, match="isolation must be"):
        R.CodeExecutionReward(isolation="namespaces")
