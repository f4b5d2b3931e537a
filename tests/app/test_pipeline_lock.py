"""One process per run folder (issue 14, part 3): the lock, tested with real processes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from textgym.app.run_lock import RunLock, RunLockError, lock_path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}
#: A run long enough to still be training while the other commands try the folder.
LONG = {"model": "tiny-char", "env": {"id": "textgym/Copy-v0", "num_envs": 2},
        "algo": {"progress_bar": False, "minibatch_size": 2, "log_samples": 1}, "train": {"iterations": 100_000},
        "eval": {"n_episodes": 2, "before": False}, "plots": False}


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "textgym", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT, **kw)


def wait_for(predicate, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def metrics_rows(run: Path) -> int:
    path = run / "metrics.csv"
    return len(path.read_text().splitlines()) - 1 if path.is_file() else 0


def test_a_second_train_resume_or_overwrite_is_refused_while_a_run_trains(tmp_path):
    cfg = tmp_path / "long.yaml"
    cfg.write_text(yaml.safe_dump(LONG))
    runs, run = tmp_path / "runs", tmp_path / "runs" / "long"
    first = cli("train", str(cfg), "--runs-dir", str(runs))
    try:
        wait_for(lambda: metrics_rows(run) >= 1 or first.poll() is not None)
        assert first.poll() is None, first.communicate()[1][-3000:]
        owner = json.loads(lock_path(run).read_text())
        assert owner["pid"] == first.pid and owner["command"].startswith("textgym train ")

        others = [cli("train", str(cfg), "--runs-dir", str(runs)), cli("train", "--resume", str(run)),
                  cli("train", str(cfg), "--runs-dir", str(runs), "--overwrite")]
        for p in others:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 2, err[-3000:]
            assert "Traceback" not in err
            lines = [ln for ln in err.splitlines() if ln.strip()]
            assert len(lines) == 1
            assert f"is in use by process {first.pid} (textgym train {cfg}" in lines[0]
            assert f"kill {first.pid}" in lines[0]
        assert first.poll() is None  # --overwrite did not delete the folder under the running job
        assert (run / "config.yaml").is_file()
    finally:
        first.send_signal(signal.SIGTERM)  # stops like Ctrl-C: exit 130, folder resumable
        first.communicate(timeout=120)
    assert first.returncode == 130
    assert not lock_path(run).exists()  # released on exit
    with open(run / "metrics.csv", newline="") as f:
        steps = [int(float(r["step"])) for r in csv.DictReader(f)]
    assert steps == sorted(set(steps))  # one writer: no step twice
    with RunLock(run):  # free again
        pass


def _holder(code: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    assert p.stdout.readline().strip() == "ready"
    return p


def test_a_lock_whose_holder_was_killed_is_free(tmp_path):
    run = tmp_path / "run"
    holder = _holder(f"import time; from textgym.app.run_lock import RunLock; RunLock({str(run)!r}).acquire(); "
                     "print('ready', flush=True); time.sleep(300)")
    with pytest.raises(RunLockError, match=f"in use by process {holder.pid} "):
        RunLock(run).acquire()
    holder.kill()  # SIGKILL: no clean-up ran; the lock file still names the dead PID
    holder.wait()
    assert json.loads(lock_path(run).read_text())["pid"] == holder.pid
    with RunLock(run) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_a_lock_file_naming_a_dead_pid_is_taken_over_even_while_flocked(tmp_path):
    # a child that inherited the lock outlives the run: the flock is held, but the PID in the file is dead
    run = tmp_path / "run"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = lock_path(run)
    orphan = _holder(f"import fcntl, json, os, time; fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT); "
                     "fcntl.flock(fd, fcntl.LOCK_EX); "
                     f"os.write(fd, json.dumps({{'pid': {dead.pid}, 'command': 'textgym train x'}}).encode()); "
                     "print('ready', flush=True); time.sleep(300)")
    try:
        with RunLock(run) as lock:
            assert json.loads(path.read_text())["pid"] == os.getpid()
            with pytest.raises(RunLockError, match=f"in use by process {os.getpid()} "):
                RunLock(run).acquire()  # and the new lock is exclusive
            assert lock.held
    finally:
        orphan.kill()
        orphan.wait()
