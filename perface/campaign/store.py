"""The campaign database: tasks, annotators, assignments and judgments in one SQLite file.

**Durability.** The database runs in WAL mode with ``synchronous=FULL``: every commit appends to the
write-ahead log and fsyncs it before ``COMMIT`` returns, and the server acknowledges a judgment only after
that. ``synchronous=NORMAL`` would survive a killed process too (the log is in the OS page cache), but not
a power cut or kernel crash, which can lose the last commits; an acknowledged judgment is a promise to
the annotator (and often a payment), and on this machine FULL costs about 0.1 ms per commit, so FULL it is.

**Schema** (version :data:`SCHEMA_VERSION`, in table ``schema_version``):

* ``meta``: key/value: the campaign secret (completion codes, per-annotator randomness), creation time,
  the settings of the last start.
* ``images``: every image path (root-relative) of the tasks; images are served by this id only.
* ``tasks``: ``kind`` ``triplet`` (to judge), ``gold`` (known answer ``gold_choice``) or ``catch`` (``a`` is
  the anchor itself, ``gold_choice`` ``a``); ``n_open`` / ``n_done``: live assignments and judgments;
  ``active`` is 0 for rows no longer in the task file.
* ``annotators``: external id (as given in the URL), first/last seen, user agent, trials issued and done.
* ``assignments``: one per (task, annotator) - so nobody sees a triplet twice -, the annotator's trial
  ``position``, which candidate was shown on the left (``left_is``), ``status`` open / done / expired.
* ``judgments``: one per assignment: ``choice`` in the task's orientation, the ``side`` clicked,
  ``left_is``, response time, server time, user agent, and the client's ``submission_id`` (unique: a retry
  or double click is stored once and answered with the stored judgment).

**Assignment.** An annotator holds up to ``lookahead`` open assignments (the one shown and the preloaded
ones). A new one is, by the annotator's trial position: a catch trial at one random position in each
block of ``round(1/R)`` trials; else, with probability ``gold_rate``, a gold triplet the annotator has not
seen; else the regular triplet with the fewest judgments + open assignments (< K) the annotator has not
seen (ties broken at random among the 64 first in a fixed shuffled order). Open assignments older than
the timeout stop holding their triplet's slot (``expired``); an answer to an expired assignment is still
stored while the triplet has room, else refused with 409. All randomness is drawn from HMAC(campaign
secret, annotator, position), so the state in the database alone decides what comes next: a restarted
server resumes exactly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from perface.errors import CampaignError

__all__ = ["SCHEMA_VERSION", "CampaignStore", "SubmitResult", "completion_code"]

SCHEMA_VERSION = 1
#: Candidates among which a regular triplet is drawn (fewest judgments first).
_CANDIDATES = 64
#: Seconds between sweeps that expire stale open assignments.
_SWEEP_EVERY_S = 10.0

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, media_type TEXT NOT NULL);
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('triplet', 'gold', 'catch')),
    anchor INTEGER NOT NULL REFERENCES images(id),
    a INTEGER NOT NULL REFERENCES images(id),
    b INTEGER NOT NULL REFERENCES images(id),
    gold_choice TEXT CHECK (gold_choice IN ('a', 'b')),
    source_line INTEGER,
    shuffle INTEGER NOT NULL,
    n_open INTEGER NOT NULL DEFAULT 0 CHECK (n_open >= 0),
    n_done INTEGER NOT NULL DEFAULT 0 CHECK (n_done >= 0),
    active INTEGER NOT NULL DEFAULT 1,
    UNIQUE (kind, anchor, a, b)
);
CREATE INDEX tasks_fill ON tasks (kind, active, (n_done + n_open), shuffle);
CREATE TABLE annotators (
    id INTEGER PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    user_agent TEXT,
    n_issued INTEGER NOT NULL DEFAULT 0,
    n_done INTEGER NOT NULL DEFAULT 0,
    completed_at REAL
);
CREATE TABLE assignments (
    id INTEGER PRIMARY KEY,
    task INTEGER NOT NULL REFERENCES tasks(id),
    annotator INTEGER NOT NULL REFERENCES annotators(id),
    position INTEGER NOT NULL,
    left_is TEXT NOT NULL CHECK (left_is IN ('a', 'b')),
    status TEXT NOT NULL CHECK (status IN ('open', 'done', 'expired')),
    issued_at REAL NOT NULL,
    UNIQUE (task, annotator),
    UNIQUE (annotator, position)
);
CREATE INDEX assignments_open ON assignments (status, issued_at);
CREATE TABLE judgments (
    id INTEGER PRIMARY KEY,
    assignment INTEGER NOT NULL UNIQUE REFERENCES assignments(id),
    submission_id TEXT NOT NULL UNIQUE,
    task INTEGER NOT NULL REFERENCES tasks(id),
    annotator INTEGER NOT NULL REFERENCES annotators(id),
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b')),
    side TEXT NOT NULL CHECK (side IN ('left', 'right')),
    left_is TEXT NOT NULL CHECK (left_is IN ('a', 'b')),
    response_ms REAL,
    server_time REAL NOT NULL,
    user_agent TEXT
);
CREATE INDEX judgments_annotator ON judgments (annotator);
"""


def completion_code(secret: str, annotator: str) -> str:
    """The annotator's completion code: 10 base32 characters of HMAC-SHA256(campaign secret, annotator id).

    Deterministic per campaign and annotator, unguessable without the secret (stored in the database), so
    ``perface annotate status`` can check the codes workers paste into MTurk / Prolific.
    """
    digest = hmac.new(secret.encode(), b"completion\x00" + annotator.encode(), hashlib.sha256).digest()
    code = base64.b32encode(digest[:10]).decode()[:10]
    return f"{code[:5]}-{code[5:]}"


@dataclass
class SubmitResult:
    """Outcome of :meth:`CampaignStore.submit`: HTTP ``status`` and the JSON ``body`` to return."""

    status: int
    body: dict


def _other(side: str) -> str:
    return "b" if side == "a" else "a"


class CampaignStore:
    """One campaign database, safe to share between threads (one connection, one lock).

    Args:
        path: The SQLite file.
        create: Create the file and schema if it does not exist (``serve``); otherwise it must exist.
        readonly: Open read-only (``status`` / ``export``; works while a server writes).

    Raises:
        CampaignError: missing file (without ``create``), not a campaign database, other schema version.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = False, readonly: bool = False):
        self.path = Path(path)
        exists = self.path.is_file()
        if not exists and not create:
            raise CampaignError(f"campaign database {self.path} not found (it is created by 'perface annotate "
                                "serve --db ...'; check the path)")
        if not exists:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, isolation_level=None,
                                           check_same_thread=False, timeout=30)
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise CampaignError(f"{self.path} is not a campaign database ({exc}); pass another --db") from None
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        if not tables:
            if readonly:
                raise CampaignError(f"{self.path} is an empty database, not a campaign (start one with 'perface "
                                    "annotate serve --db ...')")
            self._create()
        elif "schema_version" not in tables:
            raise CampaignError(f"{self.path} is an SQLite file but not a perface campaign database; pass "
                                "another --db")
        version = self._db.execute("SELECT version FROM schema_version").fetchone()
        if not version or version[0] != SCHEMA_VERSION:
            raise CampaignError(f"{self.path} has campaign schema version {version[0] if version else None}; this "
                                f"perface reads version {SCHEMA_VERSION} (use the perface version that created it)")
        self.secret = self.meta("secret")

    # ------------------------------------------------------------------------------------------ basics
    def _create(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("secret", secrets.token_hex(32)), ("created_at", repr(time.time())),
                    ("campaign_id", secrets.token_hex(8))])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection (a WAL checkpoint happens on the last close)."""
        with self._lock:
            self._db.close()

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read-only query (for reports)."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _transaction(self):
        return _Transaction(self._db, self._lock)

    # ------------------------------------------------------------------------------------------ set-up
    def sync_tasks(self, taskset, settings: dict[str, str]) -> dict:
        """Insert the checked tasks (idempotent; new rows added, rows no longer listed made inactive).

        Args:
            taskset: A :class:`perface.campaign.tasks.TaskSet`.
            settings: Settings of this start, stored in ``meta`` as ``setting.<name>``.

        Returns:
            ``{"added": n, "triplets": n_active_triplets, "gold": n_active_gold, "inactive": n}``.
        """
        with self._transaction() as db:
            for path, media in taskset.media_types.items():
                db.execute("INSERT INTO images (path, media_type) VALUES (?, ?) ON CONFLICT(path) DO UPDATE "
                           "SET media_type = excluded.media_type", (path, media))
            ids = dict(db.execute("SELECT path, id FROM images"))
            before = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            rng = random.Random(self.secret + ":shuffle")
            wanted = set()
            rows = [("triplet", t[0], t[1], t[2], None, t[3]) for t in taskset.triplets]
            rows += [("gold", g[0], g[1], g[2], g[3], g[4]) for g in taskset.gold]
            for kind, anchor, a, b, gold_choice, line in rows:
                key = (kind, ids[anchor], ids[a], ids[b])
                wanted.add(key)
                db.execute("INSERT INTO tasks (kind, anchor, a, b, gold_choice, source_line, shuffle) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(kind, anchor, a, b) DO UPDATE SET active = 1, "
                           "gold_choice = excluded.gold_choice, source_line = excluded.source_line",
                           key + (gold_choice, line, rng.getrandbits(62)))
            inactive = 0
            for task_id, kind, anchor, a, b in db.execute(
                    "SELECT id, kind, anchor, a, b FROM tasks WHERE kind != 'catch' AND active = 1").fetchall():
                if (kind, anchor, a, b) not in wanted:
                    db.execute("UPDATE tasks SET active = 0 WHERE id = ?", (task_id,))
                    inactive += 1
            for name, value in settings.items():
                db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           (f"setting.{name}", str(value)))
            after = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            counts = dict(db.execute("SELECT kind, COUNT(*) FROM tasks WHERE active = 1 GROUP BY kind"))
        self._catch_images = [r[0] for r in self.query(
            "SELECT DISTINCT i.id FROM images i JOIN tasks t ON i.id IN (t.anchor, t.a, t.b) "
            "WHERE t.kind = 'triplet' AND t.active = 1 ORDER BY i.id")]
        return {"added": after - before, "triplets": counts.get("triplet", 0), "gold": counts.get("gold", 0),
                "inactive": inactive}

    def image(self, image_id: int) -> tuple[str, str] | None:
        """``(root-relative path, media type)`` of a campaign image, or None."""
        rows = self.query("SELECT path, media_type FROM images WHERE id = ?", (image_id,))
        return rows[0] if rows else None

    # -------------------------------------------------------------------------------------- assignment
    def _rng(self, annotator: str, *parts) -> random.Random:
        msg = "\x00".join([annotator] + [str(p) for p in parts]).encode()
        return random.Random(hmac.new(self.secret.encode(), msg, hashlib.sha256).digest())

    def _annotator(self, db, external_id: str, user_agent: str | None, now: float, create: bool):
        row = db.execute("SELECT id, n_issued, n_done, completed_at FROM annotators WHERE external_id = ?",
                         (external_id,)).fetchone()
        if row is None and create:
            cur = db.execute("INSERT INTO annotators (external_id, first_seen, last_seen, user_agent) "
                             "VALUES (?, ?, ?, ?)", (external_id, now, now, user_agent))
            row = (cur.lastrowid, 0, 0, None)
        return row

    def _sweep(self, db, now: float, timeout_s: float) -> None:
        if now - self._last_sweep < _SWEEP_EVERY_S:
            return
        self._last_sweep = now
        stale = db.execute("SELECT a.id, a.task FROM assignments a WHERE a.status = 'open' AND a.issued_at < ?",
                           (now - timeout_s,)).fetchall()
        for assignment_id, task_id in stale:
            db.execute("UPDATE assignments SET status = 'expired' WHERE id = ?", (assignment_id,))
            db.execute("UPDATE tasks SET n_open = n_open - 1 WHERE id = ?", (task_id,))

    def _pick(self, db, annotator_id: int, external_id: str, position: int, cfg) -> tuple[int, str] | None:
        """The task for the annotator's trial ``position``: ``(task id, kind)`` or None (nothing left)."""
        rng = self._rng(external_id, "trial", position)
        block = cfg.catch_block
        if block and self._catch_images and len(self._catch_images) >= 2:
            catch_at = self._rng(external_id, "catch-block", position // block).randrange(block)
            if position % block == catch_at:
                task = self._catch_task(db, annotator_id, rng)
                if task is not None:
                    return task, "catch"
        if cfg.gold_rate > 0 and rng.random() < cfg.gold_rate:
            golds = [r[0] for r in db.execute(
                "SELECT t.id FROM tasks t WHERE t.kind = 'gold' AND t.active = 1 AND NOT EXISTS (SELECT 1 FROM "
                "assignments s WHERE s.task = t.id AND s.annotator = ?) ORDER BY t.id", (annotator_id,))]
            if golds:
                return golds[rng.randrange(len(golds))], "gold"
        rows = db.execute(
            "SELECT t.id, t.n_done + t.n_open FROM tasks t WHERE t.kind = 'triplet' AND t.active = 1 AND "
            "t.n_done + t.n_open < ? AND NOT EXISTS (SELECT 1 FROM assignments s WHERE s.task = t.id AND "
            "s.annotator = ?) ORDER BY t.n_done + t.n_open, t.shuffle LIMIT ?",
            (cfg.judgments_per_triplet, annotator_id, _CANDIDATES)).fetchall()
        if not rows:
            return None
        fewest = [r[0] for r in rows if r[1] == rows[0][1]]
        return fewest[rng.randrange(len(fewest))], "triplet"

    def _catch_task(self, db, annotator_id: int, rng: random.Random) -> int | None:
        images = self._catch_images
        for _ in range(20):
            anchor, other = rng.sample(images, 2)
            db.execute("INSERT INTO tasks (kind, anchor, a, b, gold_choice, shuffle) VALUES ('catch', ?, ?, ?, 'a', 0) "
                       "ON CONFLICT(kind, anchor, a, b) DO NOTHING", (anchor, anchor, other))
            task_id = db.execute("SELECT id FROM tasks WHERE kind = 'catch' AND anchor = ? AND a = ? AND b = ?",
                                 (anchor, anchor, other)).fetchone()[0]
            if not db.execute("SELECT 1 FROM assignments WHERE task = ? AND annotator = ?",
                              (task_id, annotator_id)).fetchone():
                return task_id
        return None

    def next_assignments(self, external_id: str, cfg, user_agent: str | None = None) -> dict:
        """The annotator's open assignments (issuing new ones up to ``cfg.lookahead``) and progress.

        Returns:
            ``{"assignments": [{"id", "anchor", "left", "right"}] (image ids, in trial order), "done": n,
            "total": cfg.per_annotator, "complete": bool, "available": bool, "completion_code": str | None}``;
            ``available`` is False when an annotator who has answered nothing finds no triplet left to judge
            (no completion code then).
        """
        now = time.time()
        with self._transaction() as db:
            self._sweep(db, now, cfg.assignment_timeout_s)
            annotator_id, n_issued, n_done, completed_at = self._annotator(db, external_id, user_agent, now, True)
            db.execute("UPDATE annotators SET last_seen = ?, user_agent = COALESCE(?, user_agent) WHERE id = ?",
                       (now, user_agent, annotator_id))
            open_rows = db.execute("SELECT id FROM assignments WHERE annotator = ? AND status = 'open' "
                                   "ORDER BY position", (annotator_id,)).fetchall()
            n_open = len(open_rows)
            # Trials still to issue: the session length minus everything answered or still open.
            while n_open < cfg.lookahead and n_done + n_open < cfg.per_annotator and completed_at is None:
                picked = self._pick(db, annotator_id, external_id, n_issued, cfg)
                if picked is None:
                    break
                task_id, _ = picked
                left_is = "a" if self._rng(external_id, "side", n_issued).random() < 0.5 else "b"
                db.execute("INSERT INTO assignments (task, annotator, position, left_is, status, issued_at) "
                           "VALUES (?, ?, ?, ?, 'open', ?)", (task_id, annotator_id, n_issued, left_is, now))
                db.execute("UPDATE tasks SET n_open = n_open + 1 WHERE id = ?", (task_id,))
                n_issued += 1
                n_open += 1
            db.execute("UPDATE annotators SET n_issued = ? WHERE id = ?", (n_issued, annotator_id))
            rows = db.execute(
                "SELECT s.id, t.anchor, t.a, t.b, s.left_is FROM assignments s JOIN tasks t ON t.id = s.task "
                "WHERE s.annotator = ? AND s.status = 'open' ORDER BY s.position", (annotator_id,)).fetchall()
            # Complete: nothing open and the session is full, or nothing is left for an annotator who answered
            # something (one who answered nothing gets no code: there was no work for them).
            complete = not rows and (completed_at is not None or n_done > 0)
            if complete and completed_at is None:
                db.execute("UPDATE annotators SET completed_at = ? WHERE id = ?", (now, annotator_id))
        assignments = [{"id": sid, "anchor": anchor, "left": a if left_is == "a" else b,
                        "right": b if left_is == "a" else a} for sid, anchor, a, b, left_is in rows]
        return {"assignments": assignments, "done": n_done, "total": cfg.per_annotator, "complete": complete,
                "available": bool(rows) or complete,
                "completion_code": completion_code(self.secret, external_id) if complete else None}

    # -------------------------------------------------------------------------------------- judgments
    def submit(self, external_id: str, assignment_id: int, submission_id: str, side: str, response_ms: float | None,
               cfg, user_agent: str | None = None) -> SubmitResult:
        """Store one answer, once. Acknowledged (status 200/201) only after COMMIT.

        Returns:
            201 and the judgment when stored; 200 and the stored judgment for a retry of the same submission;
            404 / 409 with ``{"error"}`` (nothing written) for an unknown assignment, another annotator's,
            one already answered, a submission id reused for another answer, or an expired assignment whose
            triplet has filled up.
        """
        now = time.time()
        with self._transaction() as db:
            stored = self._judgment(db, "j.submission_id = ?", (submission_id,))
            if stored is not None:
                if (stored["annotator_id"], stored["assignment"], stored["side"]) == (external_id, assignment_id,
                                                                                      side):
                    return SubmitResult(200, {"judgment": stored, "duplicate": True,
                                              **self._progress(db, external_id, cfg)})
                return SubmitResult(409, {"error": f"submission id {submission_id!r} was already used for another "
                                                   "answer; send a new id for a new answer"})
            row = db.execute("SELECT s.id, s.task, s.annotator, s.left_is, s.status, n.external_id, t.kind, "
                             "t.n_done, t.n_open FROM assignments s JOIN annotators n ON n.id = s.annotator "
                             "JOIN tasks t ON t.id = s.task WHERE s.id = ?", (assignment_id,)).fetchone()
            if row is None or row[5] != external_id:
                return SubmitResult(404, {"error": f"assignment {assignment_id} is not one of annotator "
                                                   f"{external_id!r}'s assignments in this campaign"})
            _, task_id, annotator_id, left_is, status, _, kind, t_done, t_open = row
            if status == "done":
                stored = self._judgment(db, "j.assignment = ?", (assignment_id,))
                return SubmitResult(409, {"error": f"assignment {assignment_id} was already answered",
                                          "judgment": stored})
            if status == "expired" and kind == "triplet" and t_done + t_open >= cfg.judgments_per_triplet:
                return SubmitResult(409, {"error": f"assignment {assignment_id} expired and its triplet already "
                                                   "has all its judgments"})
            choice = left_is if side == "left" else _other(left_is)
            db.execute("INSERT INTO judgments (assignment, submission_id, task, annotator, choice, side, left_is, "
                       "response_ms, server_time, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (assignment_id, submission_id, task_id, annotator_id, choice, side, left_is, response_ms, now,
                        user_agent))
            db.execute("UPDATE assignments SET status = 'done' WHERE id = ?", (assignment_id,))
            db.execute("UPDATE tasks SET n_done = n_done + 1, n_open = n_open - ? WHERE id = ?",
                       (1 if status == "open" else 0, task_id))
            db.execute("UPDATE annotators SET n_done = n_done + 1, last_seen = ? WHERE id = ?", (now, annotator_id))
            stored = self._judgment(db, "j.assignment = ?", (assignment_id,))
            progress = self._progress(db, external_id, cfg)
        return SubmitResult(201, {"judgment": stored, "duplicate": False, **progress})

    @staticmethod
    def _progress(db, external_id: str, cfg) -> dict:
        done = db.execute("SELECT n_done FROM annotators WHERE external_id = ?", (external_id,)).fetchone()
        return {"done": done[0] if done else 0, "total": cfg.per_annotator}

    @staticmethod
    def _judgment(db, where: str, params: tuple) -> dict | None:
        row = db.execute(
            "SELECT j.id, j.assignment, j.submission_id, n.external_id, t.kind, j.choice, j.side, j.left_is, "
            f"j.response_ms, j.server_time FROM judgments j JOIN annotators n ON n.id = j.annotator JOIN tasks t "
            f"ON t.id = j.task WHERE {where}", params).fetchone()
        if row is None:
            return None
        keys = ("id", "assignment", "submission", "annotator_id", "kind", "choice", "side", "left_is",
                "response_ms", "server_time")
        return dict(zip(keys, row))


class _Transaction:
    """``with``: the store's lock plus ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.lock.release()
