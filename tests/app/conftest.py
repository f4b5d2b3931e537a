"""Application-layer tests run single-threaded, like the agent tests (tiny models are fastest so).

The feedback app's tests share ``project``: a small project with hostile model text, and its tokens.
"""

import pytest
import torch
from feedback_helpers import ITEMS


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and stay fast on a machine shared with other jobs."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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
