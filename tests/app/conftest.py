"""Fixtures of the feedback app's tests: a small project with hostile model text, and its tokens."""

from __future__ import annotations

import re

import pytest

XSS_SCRIPT = "<script>alert(1)</script> fine"
XSS_IMG = "<img src=x onerror=\"alert(2)\"> also fine"

ITEMS = [
    {"prompt": "Greet <b>the</b> user", "completions": [XSS_SCRIPT, XSS_IMG]},                  # item 1: K = 2
    {"prompt": "Name a colour", "completions": ["red", "blue", "green"]},                      # item 2: K = 3
    {"prompt": "Say something kind", "completions": ["you are great", "go away"]},              # item 3: K = 2
]


@pytest.fixture()
def project(tmp_path):
    """``(Project, tokens)``: the three ITEMS, 2 judgments per item, annotators alice / bob / carol and an admin."""
    pytest.importorskip("fastapi")
    from textgym.app.feedback.db import Project

    p = Project(tmp_path / "fb.db", create=True, judgments_per_item=2)
    p.add_items(ITEMS)
    tokens = {name: p.add_annotator(name) for name in ("alice", "bob", "carol")}
    tokens["admin"] = p.add_annotator("admin", role="admin")
    yield p, tokens
    p.close()


def hidden(html: str, name: str) -> str:
    """The value of the hidden input ``name`` in a page."""
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden field {name!r} in the page"
    return m.group(1)
