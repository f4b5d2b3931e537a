"""The feedback app in a real browser: Debian's chromium driven by Playwright.

Logs in, rates with the keyboard, votes, edits, ranks with a tie, sees a validation error
and the progress, skips, reaches the end of the queue, and as admin sees agreement and
downloads the export.  Model text with ``<script>`` and ``<img onerror>`` must render as
text: no dialog may open.  Screenshots go to ``$TEXTGYM_SCREENSHOTS`` (the README's come from
``TEXTGYM_SCREENSHOTS=docs/feedback pytest tests/app/test_feedback_browser.py``), else to a
temporary folder.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
try:
    from playwright.sync_api import sync_playwright
except ImportError:
    pytest.skip("playwright is not installed (pip install -e \".[feedback]\")", allow_module_level=True)

from feedback_helpers import XSS_IMG, XSS_SCRIPT  # noqa: E402
from textgym.app.feedback.db import Project  # noqa: E402
from textgym.app.feedback.serve import BackgroundServer  # noqa: E402


def test_annotate_rank_edit_progress_export_in_chromium(tmp_path):
    shots = Path(os.environ.get("TEXTGYM_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    p = Project(tmp_path / "fb.db", create=True, judgments_per_item=1)
    p.add_items([
        {"prompt": "Write a friendly greeting for <b>new</b> users.", "completions": [XSS_SCRIPT, XSS_IMG]},
        {"prompt": "Name a colour of the sky.", "completions": ["blue", "green", "grey on a rainy day"]},
        {"prompt": "Say something kind.", "completions": ["You did great today.", "go away"]},
    ])
    alice, admin = p.add_annotator("alice"), p.add_annotator("admin", role="admin")
    dialogs = []
    with BackgroundServer(p) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{url}/login?token={alice}")
            assert page.url == f"{url}/annotate"
            # 1. hostile model text is shown as text and runs nothing
            texts = page.locator(".completion-text").all_inner_texts()
            assert texts == [XSS_SCRIPT, XSS_IMG]
            assert page.locator("main img").count() == 0 and page.locator("main script").count() == 1
            page.wait_for_timeout(300)
            assert dialogs == []
            page.screenshot(path=str(shots / "annotate.png"), full_page=True)
            # 2. keyboard: rate A 6, next, rate B 2, vote left, edit B (copies its text), then submit
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.press("6")
            page.keyboard.press("j")
            page.keyboard.press("2")
            page.keyboard.press("l")
            page.keyboard.press("e")
            assert page.locator("#edit_text").input_value() == XSS_IMG
            page.locator("#edit_text").fill("Welcome aboard! We are glad you are here.")
            page.screenshot(path=str(shots / "edit.png"), full_page=True)
            page.keyboard.press("Control+Enter")
            page.wait_for_url("**/annotate?saved=*")
            assert "Saved" in page.locator("#saved").inner_text()
            assert page.locator("#done").inner_text() == "1" and page.locator("#left").inner_text() == "2"
            # 3. rank three completions with a tie
            assert page.locator("#prompt").inner_text() == "Name a colour of the sky."
            ids = page.locator(".completion").evaluate_all("els => els.map(e => e.dataset.id)")
            for cid, rank in zip(ids, ("1", "2", "2")):
                page.select_option(f'select[name="rank_{cid}"]', rank)
            page.screenshot(path=str(shots / "rank.png"), full_page=True)
            page.click("#submit")
            page.wait_for_url("**/annotate?saved=*")
            # 4. an invalid submission (half a ranking) is refused with the reason, nothing is stored
            ids3 = page.locator(".completion").evaluate_all("els => els.map(e => e.dataset.id)")
            page.select_option(f'select[name="rank_{ids3[0]}"]', "1")
            page.click("#submit")
            assert "give every completion a rank" in page.locator("#error").inner_text()
            page.screenshot(path=str(shots / "error.png"), full_page=True)
            assert p.counts()["judgments"] == 2
            # 5. skip with the keyboard; the queue is empty
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.press("s")
            page.wait_for_url("**/annotate?saved=*")
            assert page.locator("#empty").is_visible() and page.locator("#done").inner_text() == "3"
            page.screenshot(path=str(shots / "done.png"), full_page=True)
            # 6. the admin page: progress, agreement, export download
            adm = browser.new_page(viewport={"width": 1100, "height": 900})
            adm.goto(f"{url}/login?token={admin}")
            assert adm.url == f"{url}/admin"
            assert "2 of 3 items have 1 judgments" in adm.locator("#progress").inner_text()
            adm.screenshot(path=str(shots / "admin.png"), full_page=True)
            with adm.expect_download() as dl:
                adm.click("#export-pairs")
            rows = [json.loads(x) for x in Path(dl.value.path()).read_text().splitlines()]
            assert [(r["chosen"], r["rejected"], r["source"]) for r in rows] == [
                (XSS_SCRIPT, XSS_IMG, "vote"), ("blue", "green", "ranking"),
                ("blue", "grey on a rainy day", "ranking"),
                ("Welcome aboard! We are glad you are here.", XSS_IMG, "edit")]
        finally:
            browser.close()
    assert dialogs == []
    [j1, j2, j3] = p.judgments()
    assert list(j1["ratings"].values()) == [6, 2] and j1["vote"] == "left"
    assert sorted(j2["ranks"].values()) == [1, 2, 2] and j3["skipped"]
