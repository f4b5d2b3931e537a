"""A regular (non-editable) install carries every data file the package reads at run time.

``pyproject.toml`` maps ``envs/``, ``agents/`` and ``rewards/`` into ``textgym``
and lists the package data by pattern; a file missing from the patterns works
in an editable checkout but not in a wheel (e.g. the GPT-2 BPE files behind
``tiny-llama`` were once left out).  The test installs the checkout with pip
(no dependencies, no network) into a temporary folder and compares.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package (the `test` extra installs it)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
#: checkout folder -> its place in the installed package (pyproject's [tool.setuptools.package-dir])
PACKAGE_DIRS = {"textgym": "textgym", "envs": "textgym/envs", "agents": "textgym/agents", "rewards": "textgym/rewards"}
#: tracked files that are deliberately not installed
NOT_INSTALLED: set[str] = set()


def _tracked_package_files() -> set[str]:
    out = subprocess.run(["git", "ls-files", *PACKAGE_DIRS], cwd=ROOT, capture_output=True, text=True, check=True)
    files = set()
    for line in out.stdout.splitlines():
        top, _, rest = line.partition("/")
        files.add(f"{PACKAGE_DIRS[top]}/{rest}")
    return files - NOT_INSTALLED


@pytest.mark.slow  # ~10-30 s: copies the checkout (vendored data sets included) and runs pip
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_wheel_install_contains_every_tracked_package_file(tmp_path):
    src = tmp_path / "src"  # a clean copy: no build/ or egg-info of the checkout leaks into the result
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in out.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    target = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                          "--no-compile", "--target", str(target), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "absent from the `packages` configuration" not in res.stdout + res.stderr, res.stderr[-2000:]
    installed = {p.relative_to(target).as_posix() for p in (target / "textgym").rglob("*") if p.is_file()}
    missing = sorted(_tracked_package_files() - installed)
    assert not missing, f"tracked files a wheel install leaves out (add them to package-data): {missing[:10]}"
    for must in ("textgym/assets/gpt2/vocab.json", "textgym/assets/gpt2/merges.txt", "textgym/envs/__init__.py"):
        assert must in installed


def test_every_folder_that_ships_files_is_a_listed_package():
    """setuptools wants each importable-looking folder with package data listed in ``packages``.

    Otherwise it warns at every install ("Package 'textgym.envs.data...' is
    absent from the `packages` configuration") and announces it will stop
    shipping those files.  A new data set folder must be added to pyproject's list.
    """
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    expected = set()
    for top, installed_as in PACKAGE_DIRS.items():
        base = ROOT / top
        for folder in (p for p in base.rglob("*") if p.is_dir() and p.name != "__pycache__"):
            parts = folder.relative_to(base).parts
            has_files = any(f.is_file() for f in folder.iterdir())
            if has_files and all(part.isidentifier() for part in parts):
                expected.add(".".join([installed_as.replace("/", "."), *parts]))
    assert sorted(expected - listed) == [], "add these folders to [tool.setuptools] packages in pyproject.toml"
    assert sorted(listed - expected - set(conf["package-dir"])) == [], "pyproject lists packages that do not exist"
