"""The floors are enforced: import-linter's contracts (pyproject ``[tool.importlinter]``) hold.

import-linter reads the import statements (those inside functions too) of one package folder.
The checkout maps ``envs/``, ``agents/`` and ``rewards/`` into ``textgym`` (pyproject's
package-dir), so the test lays the ``.py`` files out as the installed package in a temporary
folder and runs ``lint-imports`` there.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: checkout folder -> its place in the installed package
PACKAGE_DIRS = {"textgym": "textgym", "envs": "textgym/envs", "agents": "textgym/agents", "rewards": "textgym/rewards"}

pytest.importorskip("importlinter", reason="import-linter is in the test extra: pip install -e '.[test]'")


def _layout(target: Path) -> None:
    for src, dst in PACKAGE_DIRS.items():
        for f in (ROOT / src).rglob("*.py"):
            out = target / dst / f.relative_to(ROOT / src)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, out)


def test_import_linter_contracts_hold(tmp_path):
    _layout(tmp_path)
    lint = Path(sys.executable).with_name("lint-imports")
    cmd = [str(lint)] if lint.exists() else [sys.executable, "-m", "importlinter.cli"]
    res = subprocess.run([*cmd, "--no-cache", str(ROOT / "pyproject.toml")], cwd=tmp_path, capture_output=True,
                         text=True)
    out = res.stdout + res.stderr
    assert "Contracts: " in out and " broken" in out, out[-3000:]
    assert res.returncode == 0, out[-3000:]
    assert "0 broken" in out, out[-3000:]


#: the size limits of issue 16: a module reads in one sitting, ``agents/`` has a short top level
MAX_MODULE_LINES = 500
MAX_AGENTS_ENTRIES = 10


def test_no_module_is_over_the_line_limit():
    long = {str(f.relative_to(ROOT)): n for src in PACKAGE_DIRS for f in (ROOT / src).rglob("*.py")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


def test_agents_top_level_is_short():
    entries = sorted(p.name for p in (ROOT / "agents").iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_AGENTS_ENTRIES, entries
    assert {"algorithms", "common", "trainers", "functional.py"} <= set(entries)
