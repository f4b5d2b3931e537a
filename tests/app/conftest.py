"""Fixtures of the feedback app's tests: a small project with hostile model text, and its tokens."""

from __future__ import annotations

import pytest
from feedback_helpers import ITEMS


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
