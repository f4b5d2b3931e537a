"""The SQLite project: schema version, WAL, idempotent submits, the queue."""

import sqlite3

import pytest

from textgym.app.feedback.db import SCHEMA_VERSION, Conflict, Project, ProjectError
from textgym.app.feedback.judgments import parse_judgment


def submit(p, who, item_id, key, **kw):
    item = p.item(item_id)
    return p.submit(who, parse_judgment({"item_id": item_id, "idempotency_key": key, **kw}, item))


def test_schema_wal_and_tokens(project, tmp_path):
    p, tokens = project
    assert p.schema_version == SCHEMA_VERSION == 1
    assert p.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    stored = [r[0] for r in p.connection().execute("SELECT token_hash FROM annotators")]
    assert all(t not in stored for t in tokens.values())  # only hashes are stored
    assert p.authenticate(tokens["alice"]).name == "alice" and p.authenticate("nope") is None
    assert p.authenticate(tokens["admin"]).role == "admin"
    with pytest.raises(ProjectError, match="already exists"):
        Project(p.path, create=True)
    with pytest.raises(ProjectError, match="no feedback project"):
        Project(tmp_path / "missing.db")
    with pytest.raises(ProjectError, match="already exists"):
        p.add_annotator("alice")
    with pytest.raises(ProjectError, match="use 1-64 letters"):
        p.add_annotator("a b")
    with pytest.raises(ProjectError, match="at least 2 strings"):
        p.add_items([{"prompt": "x", "completions": ["only one"]}])


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    Project(path, create=True).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(ProjectError, match="schema version 99, newer than this textgym's"):
        Project(path)


def test_submit_is_idempotent_and_one_per_item(project):
    p, tokens = project
    alice = p.authenticate(tokens["alice"]).id
    jid, created = submit(p, alice, 1, "key-000001", vote="left")
    assert created
    assert submit(p, alice, 1, "key-000001", vote="left") == (jid, False)  # a retry: nothing new
    with pytest.raises(Conflict, match="already used for item 1"):
        submit(p, alice, 2, "key-000001", ranking=[[3], [4], [5]])
    with pytest.raises(Conflict, match="already judged item 1"):
        submit(p, alice, 1, "key-000002", vote="right")
    assert p.counts()["judgments"] == 1
    assert p.judgments()[0]["vote"] == "left"


def test_queue_fills_each_item_to_the_target_and_leases(project):
    p, tokens = project
    a, b, c = (p.authenticate(tokens[n]).id for n in ("alice", "bob", "carol"))
    first = p.next_item(a)
    assert first.id == 1 and p.next_item(a).id == 1  # a reload shows the same (leased) item
    assert p.next_item(b).id == 1                     # started items first: 1 has one lease of 2
    assert p.next_item(c).id == 2                     # item 1 is taken twice (two leases)
    submit(p, a, 1, "a-key-0001", vote="left")
    submit(p, b, 1, "b-key-0001", skip=True)          # a skip frees the slot
    assert p.next_item(c).id == 2                     # carol's own lease comes back first
    submit(p, c, 2, "c-key-0001", ranking=[[3], [4, 5]])
    assert p.next_item(c).id == 1                     # item 1: 1 judgment + 0 leases < 2
    assert p.progress(a) == {"done": 1, "left": 2, "total": 3}
    assert p.counts()["items_complete"] == 0 and p.counts()["skips"] == 1


def test_expired_leases_are_released(project):
    p, tokens = project
    a, b, c = (p.authenticate(tokens[n]).id for n in ("alice", "bob", "carol"))
    p.next_item(a, now=0.0)
    p.next_item(b, now=0.0)  # item 1 leased twice
    assert p.next_item(c, now=1.0).id == 2
    # at t = 10000 every lease (1800 s) has expired: item 1 is free again, for anyone
    assert p.next_item(c, now=10_000.0).id == 1
    assert p.connection().execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 1
