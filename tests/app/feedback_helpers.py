"""Shared values of the feedback app's tests: items with hostile model text, page helpers."""

from __future__ import annotations

import re

XSS_SCRIPT = "<script>alert(1)</script> fine"
XSS_IMG = "<img src=x onerror=\"alert(2)\"> also fine"

ITEMS = [
    {"prompt": "Greet <b>the</b> user", "completions": [XSS_SCRIPT, XSS_IMG]},                  # item 1: K = 2
    {"prompt": "Name a colour", "completions": ["red", "blue", "green"]},                      # item 2: K = 3
    {"prompt": "Say something kind", "completions": ["you are great", "go away"]},              # item 3: K = 2
]


def hidden(html: str, name: str) -> str:
    """The value of the hidden input ``name`` in a page."""
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden field {name!r} in the page"
    return m.group(1)


def length_rater(prompts, completions):
    """A cheap rater for tests: longer completions are better."""
    import numpy as np

    return np.array([len(c) for c in completions], dtype=np.float64)


def start_server(db, port):
    """``textgym feedback serve db --port port`` in a subprocess; returns it once it answers."""
    from textgym.app.feedback.serve import start_server_process

    return start_server_process(db, port)
