"""Checkpoints a kill cannot break (issue 14, part 3): the manifest, recovery, and resume after unlucky kills."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from textgym.agents.common.checkpoint import MANIFEST, CheckpointError, atomic_directory, check_manifest
from textgym.app.run_folder import has_checkpoint, recover_checkpoint
from textgym.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

#: Saves checkpoint ``iteration`` N into ``ckpt`` with atomic_directory and is SIGKILLed (os._exit) at ``kill``.
SAVE = '''
import json, os, shutil, sys
from textgym.agents.common import checkpoint
ckpt, n, kill = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kill == "in-delete":  # the old folder is being deleted: one file gone, then the kill
    def rmtree(path, ignore_errors=False):
        files = sorted(p for p in os.listdir(path) if os.path.isfile(os.path.join(path, p)))
        os.remove(os.path.join(path, files[0]))
        os._exit(137)
    checkpoint.shutil.rmtree = rmtree
elif kill == "between-renames":  # old renamed aside, the new one not yet renamed into place
    real, calls = os.replace, []
    def replace(a, b):
        calls.append(a)
        if len(calls) == 2:
            os._exit(137)
        real(a, b)
    checkpoint.os.replace = replace
with checkpoint.atomic_directory(ckpt) as tmp:
    (tmp / "trainer_state.json").write_text(json.dumps({"counters": {"iteration": n}}))
    (tmp / "weights.bin").write_bytes(bytes([n]) * 4096)
    (tmp / "policy").mkdir()
    (tmp / "policy" / "config.json").write_text("{}")
'''


def save(ckpt: Path, n: int, kill: str = "none") -> int:
    return subprocess.run([sys.executable, "-c", SAVE, str(ckpt), str(n), kill], env=ENV, cwd=ROOT,
                          timeout=300).returncode


def iteration(ckpt: Path) -> int:
    return json.loads((ckpt / "trainer_state.json").read_text())["counters"]["iteration"]


def siblings(ckpt: Path) -> list[str]:
    return sorted(p.name for p in ckpt.parent.iterdir() if p.name != ckpt.name)


def test_the_manifest_lists_every_file_with_size_and_sha256_and_catches_any_change(tmp_path):
    import hashlib

    with atomic_directory(tmp_path / "ck") as tmp:
        (tmp / "a.bin").write_bytes(b"abc")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("hello")
    ck = tmp_path / "ck"
    files = json.loads((ck / MANIFEST).read_text())["files"]
    assert files == {"a.bin": {"size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()},
                     "sub/b.txt": {"size": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}}
    assert check_manifest(ck) is None
    (ck / "a.bin").write_bytes(b"abd")  # same size, other bytes
    assert "sha256" in check_manifest(ck)
    (ck / "a.bin").write_bytes(b"ab")
    assert "has 2 bytes" in check_manifest(ck)
    (ck / "sub" / "b.txt").unlink()
    assert check_manifest(ck) == "sub/b.txt is missing" or "a.bin" in check_manifest(ck)
    (ck / MANIFEST).unlink()
    assert "no MANIFEST.json" in check_manifest(ck)


def test_two_unlucky_kills_leave_the_newest_complete_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoint"
    assert save(ckpt, 1) == 0
    # kill 1: inside the deletion of the old checkpoint (checkpoint 2 is in place, 1 half deleted)
    assert save(ckpt, 2, "in-delete") == 137
    assert iteration(ckpt) == 2 and len(siblings(ckpt)) == 1
    # kill 2: between the two renames of checkpoint 3 (2 renamed aside, 3 still under its temporary name)
    assert save(ckpt, 3, "between-renames") == 137
    assert not ckpt.exists() and len(siblings(ckpt)) == 3  # half-deleted 1, aside 2, complete temporary 3
    assert recover_checkpoint(ckpt)
    assert iteration(ckpt) == 3 and check_manifest(ckpt) is None
    assert siblings(ckpt) == []  # the leftovers are gone
    assert save(ckpt, 4) == 0 and iteration(ckpt) == 4


def test_a_half_deleted_folder_is_never_picked_even_if_its_name_sorts_last(tmp_path):
    # the case: names sorted and one file checked picked a half-deleted old checkpoint
    ckpt = tmp_path / "checkpoint"
    assert save(ckpt, 5) == 0
    good = tmp_path / ".checkpoint.old-1"
    os.replace(ckpt, good)  # a kill between the renames of the next save, the new one lost
    half = tmp_path / ".checkpoint.old-99999"
    shutil.copytree(good, half)
    (half / "weights.bin").unlink()  # deleted halfway; trainer_state.json and even the manifest are left
    (half / "trainer_state.json").write_text(json.dumps({"counters": {"iteration": 9}}))
    assert recover_checkpoint(ckpt) and iteration(ckpt) == 5 and siblings(ckpt) == []


def test_a_damaged_checkpoint_with_nothing_to_fall_back_on_is_an_error(tmp_path):
    ckpt = tmp_path / "checkpoint"
    assert save(ckpt, 1) == 0
    (ckpt / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="weights.bin has 1 bytes"):
        recover_checkpoint(ckpt)


def test_a_checkpoint_from_before_manifests_is_kept_when_it_is_the_only_one(tmp_path):
    ckpt = tmp_path / "checkpoint"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text('{"counters": {"iteration": 4}}')
    half = tmp_path / ".checkpoint.old-123"  # no manifest: never complete, removed
    half.mkdir()
    (half / "trainer_state.json").write_text('{"counters": {"iteration": 6}}')
    assert recover_checkpoint(ckpt) and iteration(ckpt) == 4 and not half.exists()
    assert has_checkpoint(ckpt)


SYNTH = {"seed": 0, "model": "tiny-char", "env": {"id": "textgym/TokenCount-v0", "num_envs": 2},
         "algo": {"learning_rate": 0.003, "n_epochs": 1, "minibatch_size": 2, "log_samples": 1, "progress_bar": False},
         "train": {"iterations": 3, "save_every": 1}, "eval": {"n_episodes": 2, "before": False}, "plots": False}


def test_resume_after_the_unlucky_kills_finishes_the_run(tmp_path, monkeypatch):
    from textgym.agents.common.base import OnPolicyAlgorithm

    original = OnPolicyAlgorithm._log_samples

    def interrupt_at_3(self, batch):
        if self.iteration == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    cfg = tmp_path / "k.yaml"
    cfg.write_text(yaml.safe_dump(SYNTH))
    monkeypatch.setattr(OnPolicyAlgorithm, "_log_samples", interrupt_at_3)
    assert main(["train", str(cfg), "--runs-dir", str(tmp_path / "runs")]) == 130
    monkeypatch.setattr(OnPolicyAlgorithm, "_log_samples", original)
    run = tmp_path / "runs" / "k"
    ckpt = run / "checkpoint"
    assert check_manifest(ckpt) is None  # the checkpoint of iteration 2
    # the state two unlucky kills leave: checkpoint 2 renamed aside, a half-deleted older one whose name sorts last
    os.replace(ckpt, run / ".checkpoint.old-1")
    half = run / ".checkpoint.old-99999"
    shutil.copytree(run / ".checkpoint.old-1", half)
    for p in sorted(half.rglob("*.safetensors")):
        p.unlink()
    assert main(["train", "--resume", str(run)]) == 0
    state = json.loads((run / "run_state.json").read_text())
    assert state["status"] == "done" and state["rl"]["iteration"] == 3
    with open(run / "metrics.csv", newline="") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    assert check_manifest(ckpt) is None and [p.name for p in run.glob(".checkpoint*")] == []
