"""A real uvicorn server on 127.0.0.1: 8 concurrent annotators, duplicate retries, kill -9 and restart."""

import os
import signal
import sqlite3
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from feedback_helpers import length_rater, start_server  # noqa: E402
from textgym.app.feedback.db import Project  # noqa: E402
from textgym.app.feedback.serve import free_port  # noqa: E402
from textgym.app.feedback.simulate import run_simulation  # noqa: E402


def make_project(path, n_items, per_item, annotators):
    p = Project(path, create=True, judgments_per_item=per_item)
    p.add_items([{"prompt": f"prompt {i}", "completions": [f"a{i}", f"bb{i}" * (1 + i % 3)]} for i in range(n_items)])
    tokens = {f"a{i}": p.add_annotator(f"a{i}") for i in range(annotators)}
    p.close()
    return tokens


def stored(path):
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT j.id, a.name, j.item_id FROM judgments j JOIN annotators a "
                           "ON a.id = j.annotator_id").fetchall()
    finally:
        con.close()


def test_8_annotators_500_judgments_exactly_once(tmp_path):
    db = tmp_path / "fb.db"
    tokens = make_project(db, 100, 5, 8)  # capacity: 100 items x 5 judgments = 500
    port = free_port()
    proc = start_server(db, port)
    try:
        url = f"http://127.0.0.1:{port}"
        res = run_simulation(url, tokens, length_rater, noise=0.5, seed=1)
        assert res.errors == []
        assert len(res.acks) == 500 and len({(a, i) for a, i, _ in res.acks}) == 500
        # the same submission sent 8 times at once (a client retrying): stored once
        extra = Project(db).add_annotator("retry")
        item = httpx.get(f"{url}/api/next", headers={"Authorization": f"Bearer {extra}"}).json()["item"]
        assert item is None  # the queue is full: every item has its 5 judgments
        first = Project(db).item(1)
        body = {"item_id": 1, "idempotency_key": "the-same-key-1", "vote": "left"}
        answers = []

        def post():
            answers.append(httpx.post(f"{url}/api/judgments", json=body, timeout=60,
                                      headers={"Authorization": f"Bearer {extra}"}))

        threads = [threading.Thread(target=post) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in answers) == [200] * 7 + [201]
        assert len({r.json()["judgment_id"] for r in answers}) == 1 and first is not None
    finally:
        proc.kill()
        proc.wait()
    rows = stored(db)
    assert len(rows) == 501 and len({(a, i) for _, a, i in rows}) == 501
    per_item = {}
    for _, _, i in rows:
        per_item[i] = per_item.get(i, 0) + 1
    assert sorted(set(per_item.values())) == [5, 6] and per_item[1] == 6  # item 1: 5 + the retry annotator


def test_kill_9_mid_run_keeps_every_acknowledged_judgment(tmp_path):
    db = tmp_path / "fb.db"
    tokens = make_project(db, 60, 2, 4)
    port = free_port()
    proc = start_server(db, port)
    out = {}
    sim = threading.Thread(target=lambda: out.setdefault("res", run_simulation(
        f"http://127.0.0.1:{port}", tokens, length_rater, noise=0.5, attempts=60)))
    sim.start()
    try:
        deadline = time.monotonic() + 120
        while len(stored(db)) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-run: requests are in flight
        proc.wait()
        before_restart = {(a, i): jid for jid, a, i in stored(db)}
        assert 30 <= len(before_restart) < 120
        proc = start_server(db, port)  # the annotators' retries reach the restarted server
        sim.join(timeout=300)
    finally:
        proc.kill()
        proc.wait()
    res = out["res"]
    assert res.errors == [] and res.retries > 0
    rows = {(a, i): jid for jid, a, i in stored(db)}
    for name, item_id, jid in res.acks:  # every acknowledged judgment is there, with its id
        assert rows[(name, item_id)] == jid
    assert all(rows[k] == v for k, v in before_restart.items())
    assert len(res.acks) == len(rows) == 120  # the run finished after the restart, nothing twice
