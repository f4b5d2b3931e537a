"""The feedback project: one SQLite file (versioned schema, WAL journal, one transaction per write).

A project holds the items people judge (a prompt and its ``K`` completions), the
annotators (a name and the SHA-256 of a random login token; tokens themselves are
never stored), the queue leases, and the judgments.  One judgment is one
annotator's answer for one item: any of 1-7 ratings (with comments) of the
completions, a ranking (ties allowed), an A/B vote (``left`` / ``right`` / ``tie``
/ ``both_bad``, for ``K = 2``), an edited completion, safety flags - or a skip.

Guarantees:

* a judgment is stored in one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction and
  :meth:`Project.submit` returns only after the commit (``synchronous=FULL``), so
  whatever the server acknowledged survives a ``kill -9``;
* an idempotency key per submission (unique per annotator): a retried POST returns
  the first judgment instead of storing a second one; one judgment per annotator
  and item;
* the queue leases an item to an annotator (``lease_seconds``), so concurrent
  annotators fill each item up to ``judgments_per_item`` and not beyond.

The schema version is SQLite's ``PRAGMA user_version``; :data:`MIGRATIONS` lists the
statements that bring a file from version ``v - 1`` to ``v``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "Project", "ProjectError", "Conflict", "Annotator", "Item",
           "hash_token", "NAME_PATTERN", "read_jsonl_items"]

SCHEMA_VERSION = 1

#: version -> the statements that migrate version - 1 to it (run in one transaction).
MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE items (id INTEGER PRIMARY KEY, prompt TEXT NOT NULL, source TEXT,
               created REAL NOT NULL)""",
        """CREATE TABLE completions (id INTEGER PRIMARY KEY,
               item_id INTEGER NOT NULL REFERENCES items(id), position INTEGER NOT NULL,
               text TEXT NOT NULL, origin TEXT, UNIQUE (item_id, position))""",
        """CREATE TABLE annotators (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
               token_hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL CHECK (role IN ('annotator', 'admin')),
               created REAL NOT NULL)""",
        """CREATE TABLE leases (annotator_id INTEGER NOT NULL REFERENCES annotators(id),
               item_id INTEGER NOT NULL REFERENCES items(id), expires REAL NOT NULL,
               PRIMARY KEY (annotator_id, item_id))""",
        """CREATE TABLE judgments (id INTEGER PRIMARY KEY,
               annotator_id INTEGER NOT NULL REFERENCES annotators(id),
               item_id INTEGER NOT NULL REFERENCES items(id),
               idempotency_key TEXT NOT NULL, skipped INTEGER NOT NULL DEFAULT 0,
               vote TEXT CHECK (vote IN ('left', 'right', 'tie', 'both_bad')),
               flag_reason TEXT, created REAL NOT NULL,
               UNIQUE (annotator_id, idempotency_key), UNIQUE (annotator_id, item_id))""",
        """CREATE TABLE ratings (judgment_id INTEGER NOT NULL REFERENCES judgments(id),
               completion_id INTEGER NOT NULL REFERENCES completions(id),
               score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 7), comment TEXT,
               PRIMARY KEY (judgment_id, completion_id))""",
        """CREATE TABLE ranks (judgment_id INTEGER NOT NULL REFERENCES judgments(id),
               completion_id INTEGER NOT NULL REFERENCES completions(id),
               rank INTEGER NOT NULL CHECK (rank >= 1), PRIMARY KEY (judgment_id, completion_id))""",
        """CREATE TABLE edits (judgment_id INTEGER PRIMARY KEY REFERENCES judgments(id),
               completion_id INTEGER NOT NULL REFERENCES completions(id), text TEXT NOT NULL)""",
        """CREATE TABLE flags (judgment_id INTEGER NOT NULL REFERENCES judgments(id),
               completion_id INTEGER NOT NULL REFERENCES completions(id),
               PRIMARY KEY (judgment_id, completion_id))""",
        "CREATE INDEX judgments_item ON judgments (item_id)",
        "CREATE INDEX completions_item ON completions (item_id)",
    ],
}

#: Annotator names: letters, digits, ``_ . -``; 1-64 characters.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class ProjectError(ValueError):
    """A project file that cannot be used (missing, newer schema, bad settings, bad input)."""


class Conflict(ValueError):
    """A submission that contradicts a stored one (same item judged twice, reused idempotency key)."""


def hash_token(token: str) -> str:
    """SHA-256 hex of a login token (tokens are 32 random bytes, so a fast hash is enough)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Annotator:
    """A logged-in person: ``role`` is ``annotator`` or ``admin``."""

    id: int
    name: str
    role: str


@dataclass
class Item:
    """One prompt and its completions (``completions``: ``[{"id", "position", "text"}]`` in shown order)."""

    id: int
    prompt: str
    completions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def completion_ids(self) -> list[int]:
        return [c["id"] for c in self.completions]


class Project:
    """A feedback project in the SQLite file ``path``.

    Args:
        path: the ``.db`` file.
        create: make a new project (the file must not exist yet).
        judgments_per_item: with ``create``, how many annotators judge each item (>= 1).
        lease_seconds: how long the queue keeps an item for the annotator it showed it to.

    Raises:
        ProjectError: no such project; the file exists with ``create``; the file's schema is newer
            than this textgym's.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = False, judgments_per_item: int = 2,
                 lease_seconds: float = 1800.0):
        self.path = Path(path)
        self.lease_seconds = float(lease_seconds)
        self._local = threading.local()
        if create:
            if self.path.exists():
                raise ProjectError(f"{self.path} already exists; pick a new project file or delete it first")
            if judgments_per_item < 1:
                raise ProjectError(f"judgments per item must be >= 1, got {judgments_per_item}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise ProjectError(f"no feedback project at {self.path}; create one with `textgym feedback new`")
        self._migrate()
        if create:
            with self.transaction() as con:
                con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                    ("judgments_per_item", str(int(judgments_per_item))),
                    ("csrf_secret", secrets.token_hex(32)),
                    ("created", repr(time.time())),
                ])

    # ------------------------------------------------------------------------------------ connection
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; writes go through :meth:`transaction`)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
        return con

    def close(self) -> None:
        """Close this thread's connection."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def transaction(self) -> _Transaction:
        """``with project.transaction() as con:`` - ``BEGIN IMMEDIATE``, ``COMMIT`` on success, else rollback."""
        return _Transaction(self.connection())

    def _migrate(self) -> None:
        con = self.connection()
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ProjectError(f"{self.path} has schema version {version}, newer than this textgym's "
                               f"({SCHEMA_VERSION}); upgrade textgym")
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as c:
                for stmt in MIGRATIONS[v]:
                    c.execute(stmt)
                c.execute(f"PRAGMA user_version = {v}")

    @property
    def schema_version(self) -> int:
        return int(self.connection().execute("PRAGMA user_version").fetchone()[0])

    def meta(self, key: str) -> str:
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.path} has no setting {key!r}; is it a textgym feedback project?")
        return row[0]

    @property
    def judgments_per_item(self) -> int:
        return int(self.meta("judgments_per_item"))

    # ------------------------------------------------------------------------------------ content
    def add_items(self, rows: Iterable[Mapping[str, Any]], *, origin: str | None = None) -> int:
        """Add items: each row has ``prompt`` (str) and ``completions`` (a list of >= 2 str).

        Returns:
            How many items were added.

        Raises:
            ProjectError: a row without a prompt or with fewer than 2 completions (nothing is added).
        """
        rows = list(rows)
        for i, r in enumerate(rows):
            comps = r.get("completions")
            if not isinstance(r.get("prompt"), str) or not r["prompt"].strip():
                raise ProjectError(f"row {i}: needs a non-empty string `prompt`")
            if not isinstance(comps, list) or len(comps) < 2 or not all(isinstance(c, str) for c in comps):
                raise ProjectError(f"row {i}: needs `completions`, a list of at least 2 strings")
        now = time.time()
        with self.transaction() as con:
            for r in rows:
                cur = con.execute("INSERT INTO items (prompt, source, created) VALUES (?, ?, ?)",
                                  (r["prompt"], r.get("source"), now))
                con.executemany("INSERT INTO completions (item_id, position, text, origin) VALUES (?, ?, ?, ?)",
                                [(cur.lastrowid, p, t, origin) for p, t in enumerate(r["completions"])])
        return len(rows)

    def item(self, item_id: int) -> Item | None:
        con = self.connection()
        row = con.execute("SELECT id, prompt FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return None
        comps = con.execute("SELECT id, position, text FROM completions WHERE item_id = ? ORDER BY position",
                            (item_id,)).fetchall()
        return Item(row["id"], row["prompt"], [dict(c) for c in comps])

    def items(self) -> list[Item]:
        con = self.connection()
        out = {r["id"]: Item(r["id"], r["prompt"]) for r in con.execute("SELECT id, prompt FROM items ORDER BY id")}
        for c in con.execute("SELECT id, item_id, position, text FROM completions ORDER BY item_id, position"):
            out[c["item_id"]].completions.append({"id": c["id"], "position": c["position"], "text": c["text"]})
        return list(out.values())

    # ------------------------------------------------------------------------------------ people
    def add_annotator(self, name: str, role: str = "annotator") -> str:
        """Register ``name`` and return its new login token (shown once; only its hash is stored).

        Raises:
            ProjectError: a bad or taken name.
        """
        if not NAME_PATTERN.fullmatch(name or ""):
            raise ProjectError(f"annotator name {name!r}: use 1-64 letters, digits, '_', '.' or '-'")
        token = secrets.token_urlsafe(32)
        try:
            with self.transaction() as con:
                con.execute("INSERT INTO annotators (name, token_hash, role, created) VALUES (?, ?, ?, ?)",
                            (name, hash_token(token), role, time.time()))
        except sqlite3.IntegrityError:
            raise ProjectError(f"an annotator named {name!r} already exists in {self.path}") from None
        return token

    def reissue_token(self, name: str) -> str:
        """A new login token for the annotator ``name`` (their old one stops working; their judgments stay).

        Raises:
            ProjectError: no annotator of that name.
        """
        token = secrets.token_urlsafe(32)
        with self.transaction() as con:
            changed = con.execute("UPDATE annotators SET token_hash = ? WHERE name = ?",
                                  (hash_token(token), name)).rowcount
        if not changed:
            raise ProjectError(f"no annotator named {name!r} in {self.path}")
        return token

    def authenticate(self, token: str | None) -> Annotator | None:
        """The annotator whose token this is, else ``None``."""
        if not token or len(token) > 256:
            return None
        row = self.connection().execute("SELECT id, name, role FROM annotators WHERE token_hash = ?",
                                        (hash_token(token),)).fetchone()
        return Annotator(row["id"], row["name"], row["role"]) if row else None

    def annotators(self) -> list[Annotator]:
        rows = self.connection().execute("SELECT id, name, role FROM annotators ORDER BY id").fetchall()
        return [Annotator(r["id"], r["name"], r["role"]) for r in rows]

    # ------------------------------------------------------------------------------------ queue
    def next_item(self, annotator_id: int, *, now: float | None = None) -> Item | None:
        """The item to show ``annotator_id`` next (leased to them), or ``None`` when their queue is empty.

        An item is in an annotator's queue while they have not judged (or skipped) it and its
        judgments (skips excluded) plus other annotators' live leases are fewer than
        ``judgments_per_item``.  Items already started come first (to finish them), then by id.
        A live lease of their own is returned again (a page reload shows the same item).
        """
        now = time.time() if now is None else now
        with self.transaction() as con:
            con.execute("DELETE FROM leases WHERE expires < ?", (now,))
            own = con.execute("""SELECT l.item_id FROM leases l WHERE l.annotator_id = ? AND NOT EXISTS
                                 (SELECT 1 FROM judgments j WHERE j.annotator_id = l.annotator_id
                                  AND j.item_id = l.item_id) ORDER BY l.item_id LIMIT 1""",
                              (annotator_id,)).fetchone()
            if own is not None:
                item_id = own[0]
            else:
                row = con.execute("""
                    SELECT i.id,
                           (SELECT COUNT(*) FROM judgments j WHERE j.item_id = i.id AND j.skipped = 0)
                         + (SELECT COUNT(*) FROM leases l WHERE l.item_id = i.id) AS taken
                    FROM items i
                    WHERE NOT EXISTS (SELECT 1 FROM judgments j WHERE j.item_id = i.id AND j.annotator_id = ?)
                      AND taken < ?
                    ORDER BY taken DESC, i.id LIMIT 1""", (annotator_id, self.judgments_per_item)).fetchone()
                if row is None:
                    return None
                item_id = row[0]
                con.execute("INSERT INTO leases (annotator_id, item_id, expires) VALUES (?, ?, ?)",
                            (annotator_id, item_id, now + self.lease_seconds))
        return self.item(item_id)

    def progress(self, annotator_id: int) -> dict[str, int]:
        """``done`` (judged or skipped by them), ``left`` (still in their queue), ``total`` items."""
        con = self.connection()
        done = con.execute("SELECT COUNT(*) FROM judgments WHERE annotator_id = ?", (annotator_id,)).fetchone()[0]
        left = con.execute("""
            SELECT COUNT(*) FROM items i
            WHERE NOT EXISTS (SELECT 1 FROM judgments j WHERE j.item_id = i.id AND j.annotator_id = ?)
              AND (SELECT COUNT(*) FROM judgments j WHERE j.item_id = i.id AND j.skipped = 0)
                + (SELECT COUNT(*) FROM leases l WHERE l.item_id = i.id AND l.annotator_id != ?
                   AND l.expires >= ?) < ?""",
                           (annotator_id, annotator_id, time.time(), self.judgments_per_item)).fetchone()[0]
        total = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        return {"done": int(done), "left": int(left), "total": int(total)}

    # ------------------------------------------------------------------------------------ judgments
    def submit(self, annotator_id: int, judgment: Any) -> tuple[int, bool]:
        """Store a validated :class:`textgym.app.feedback.judgments.Judgment`; return after the commit.

        Returns:
            ``(judgment id, created)``; ``created`` is False when this idempotency key was
            already stored for the same item (a retried request: nothing new is written).

        Raises:
            Conflict: the key was used for another item, or the annotator already judged the item.
        """
        j = judgment
        with self.transaction() as con:
            prev = con.execute("SELECT id, item_id FROM judgments WHERE annotator_id = ? AND idempotency_key = ?",
                               (annotator_id, j.idempotency_key)).fetchone()
            if prev is not None:
                if prev["item_id"] != j.item_id:
                    raise Conflict(f"idempotency key {j.idempotency_key!r} was already used for item "
                                   f"{prev['item_id']}; send a new key for each submission")
                return int(prev["id"]), False
            if con.execute("SELECT 1 FROM judgments WHERE annotator_id = ? AND item_id = ?",
                           (annotator_id, j.item_id)).fetchone():
                raise Conflict(f"you already judged item {j.item_id}; each annotator judges an item once")
            cur = con.execute("""INSERT INTO judgments (annotator_id, item_id, idempotency_key, skipped, vote,
                                 flag_reason, created) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                              (annotator_id, j.item_id, j.idempotency_key, int(j.skip), j.vote, j.flag_reason,
                               time.time()))
            jid = int(cur.lastrowid)
            con.executemany("INSERT INTO ratings (judgment_id, completion_id, score, comment) VALUES (?, ?, ?, ?)",
                            [(jid, c, s, j.comments.get(c)) for c, s in j.ratings.items()])
            con.executemany("INSERT INTO ranks (judgment_id, completion_id, rank) VALUES (?, ?, ?)",
                            [(jid, c, r) for c, r in j.ranks().items()])
            if j.edit is not None:
                con.execute("INSERT INTO edits (judgment_id, completion_id, text) VALUES (?, ?, ?)",
                            (jid, j.edit[0], j.edit[1]))
            con.executemany("INSERT INTO flags (judgment_id, completion_id) VALUES (?, ?)",
                            [(jid, c) for c in j.flags])
            con.execute("DELETE FROM leases WHERE annotator_id = ? AND item_id = ?", (annotator_id, j.item_id))
        return jid, True

    def judgments(self) -> list[dict[str, Any]]:
        """Every stored judgment as a dict: ``id, item_id, annotator, skipped, vote, flag_reason, created,
        ratings {completion_id: score}, comments {completion_id: text}, ranks {completion_id: rank},
        edit (completion_id, text) | None, flags [completion_id]``; ordered by id."""
        con = self.connection()
        out: dict[int, dict[str, Any]] = {}
        for r in con.execute("""SELECT j.id, j.item_id, a.name AS annotator, j.skipped, j.vote, j.flag_reason,
                                j.created FROM judgments j JOIN annotators a ON a.id = j.annotator_id ORDER BY j.id"""):
            out[r["id"]] = {**dict(r), "skipped": bool(r["skipped"]), "ratings": {}, "comments": {}, "ranks": {},
                            "edit": None, "flags": []}
        for r in con.execute("SELECT judgment_id, completion_id, score, comment FROM ratings"):
            out[r[0]]["ratings"][r[1]] = r[2]
            if r[3]:
                out[r[0]]["comments"][r[1]] = r[3]
        for r in con.execute("SELECT judgment_id, completion_id, rank FROM ranks"):
            out[r[0]]["ranks"][r[1]] = r[2]
        for r in con.execute("SELECT judgment_id, completion_id, text FROM edits"):
            out[r[0]]["edit"] = (r[1], r[2])
        for r in con.execute("SELECT judgment_id, completion_id FROM flags ORDER BY completion_id"):
            out[r[0]]["flags"].append(r[1])
        return list(out.values())

    def counts(self) -> dict[str, int]:
        """Totals: items, completions, annotators (not admins), judgments, skips, items with enough judgments."""
        con = self.connection()
        one = lambda sql, *a: int(con.execute(sql, a).fetchone()[0])  # noqa: E731
        return {
            "items": one("SELECT COUNT(*) FROM items"),
            "completions": one("SELECT COUNT(*) FROM completions"),
            "annotators": one("SELECT COUNT(*) FROM annotators WHERE role = 'annotator'"),
            "judgments": one("SELECT COUNT(*) FROM judgments WHERE skipped = 0"),
            "skips": one("SELECT COUNT(*) FROM judgments WHERE skipped = 1"),
            "items_complete": one("""SELECT COUNT(*) FROM items i WHERE (SELECT COUNT(*) FROM judgments j
                                     WHERE j.item_id = i.id AND j.skipped = 0) >= ?""", self.judgments_per_item),
            "judgments_per_item": self.judgments_per_item,
        }

    def per_annotator(self) -> dict[str, int]:
        """Annotator name -> judgments (skips included)."""
        rows = self.connection().execute("""SELECT a.name, COUNT(j.id) FROM annotators a LEFT JOIN judgments j
                                            ON j.annotator_id = a.id WHERE a.role = 'annotator'
                                            GROUP BY a.id ORDER BY a.id""").fetchall()
        return {r[0]: int(r[1]) for r in rows}


class _Transaction:
    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.con.execute("COMMIT")
        else:
            self.con.execute("ROLLBACK")


def read_jsonl_items(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows ``{"prompt", "completions": [...]}`` of a JSON Lines file (for ``feedback new --from-jsonl``).

    Raises:
        ProjectError: a line that is not a JSON object with those keys (its line number is named).
    """
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ProjectError(f"{path}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("completions"), list):
                raise ProjectError(f"{path}:{n}: expected an object with `prompt` and `completions` (a list)")
            rows.append(row)
    if not rows:
        raise ProjectError(f"{path} holds no rows")
    return rows
