"""The task tables (README's "Tasks", envs/TASKS_TABLE.md) and `textgym list envs` show each spec's defaults."""

import re
from pathlib import Path

import pytest

import textgym
from textgym.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
SPECS = {s.id: s for s in textgym.list_envs(details=True)}


def lengths_column(path: Path) -> dict[str, str]:
    """id -> the last column (``P / T``) of each task row of the table in ``path``."""
    rows = [line for line in path.read_text().splitlines() if line.startswith("| `textgym/")]
    return {re.search(r"`(textgym/[^`]+)`", r).group(1): r.rstrip(" |").rsplit("|", 1)[1].strip() for r in rows}


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "envs" / "TASKS_TABLE.md"], ids=lambda p: p.name)
def test_the_tables_lengths_are_the_specs_defaults(path):
    table = lengths_column(path)
    assert table, f"no task rows in {path}"
    for env_id, cell in table.items():
        defaults = SPECS[env_id].defaults
        if "max_prompt_length" in defaults:
            assert cell == f"{defaults['max_prompt_length']} / {defaults['max_new_tokens']}", (env_id, cell)
        else:
            assert not re.fullmatch(r"\d+ / \d+", cell), f"{env_id}: numbers in the table but none in its spec"


def test_list_envs_prints_the_specs_defaults(capsys):
    assert main(["list", "envs"]) == 0
    out = capsys.readouterr().out
    xsum = out.split("textgym/XSum-v0", 1)[1].split("textgym/", 1)[0]
    assert "defaults: max_prompt_length=512, max_new_tokens=64" in xsum
