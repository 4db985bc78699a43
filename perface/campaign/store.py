"""The campaign database: tasks, annotators, assignments and judgments in one SQLite file.

**Durability.** The database runs in WAL mode with ``synchronous=FULL``: every commit appends to the
write-ahead log and fsyncs it before ``COMMIT`` returns, and the server acknowledges a judgment only after
that. ``synchronous=NORMAL`` would survive a killed process too (the log is in the OS page cache), but not
a power cut or kernel crash, which can lose the last commits; an acknowledged judgment is a promise to
the annotator (and often a payment), so FULL it is. Its cost is one fsync per commit (0.1 to 4 ms on this
machine's disk), amortised by **group commit**: the requests waiting together run each in its own
SAVEPOINT inside one transaction (a failing request rolls back alone), with one COMMIT, and only then are
they answered. While the web app runs, this happens on its event loop's own thread, once per loop turn
(:meth:`CampaignStore.attach_loop`: no thread hand-off per request; the loop waits for the fsync);
otherwise on a writer thread of the store.

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
seen (ties broken at random among the 64 first in a fixed shuffled order). Answering tops the annotator's
open assignments up in the same transaction, so asking for the next one usually writes nothing. Open
assignments older than the timeout stop holding their triplet's slot (``expired``); an answer to an
expired assignment is still stored while the triplet has room, else refused with 409. All randomness is drawn from HMAC(campaign
secret, annotator, position), so the state in the database alone decides what comes next: a restarted
server resumes exactly.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import queue
import random
import secrets
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from perface.errors import CampaignError

__all__ = ["SCHEMA_VERSION", "CampaignStore", "SubmitResult", "completion_code"]

SCHEMA_VERSION = 1
#: Candidates among which a regular triplet is drawn (fewest judgments first).
_CANDIDATES = 64
#: Seconds between sweeps that expire stale open assignments.
_SWEEP_EVERY_S = 10.0
#: Requests committed together at most (group commit).
_MAX_BATCH = 256

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
    """One campaign database, safe to share between threads: a writable store runs every transaction on one
    thread, its writer thread or the event loop it is attached to (group commit, see the module doc); a
    read-only one serialises on a lock.

    Args:
        path: The SQLite file.
        create: Create the file and schema if it does not exist (``serve``); otherwise it must exist.
        readonly: Never write (``status`` / ``export``; works while a server writes, and after it was killed).

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
                self._db = self._open_readonly()
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
        self._catch_images: list[int] = []
        self._writer = None
        self._owner: _LoopOwner | None = None
        if tables and "schema_version" not in tables:
            self._db.close()
            raise CampaignError(f"{self.path} is an SQLite file but not a perface campaign database; pass "
                                "another --db")
        if not tables and readonly:
            self._db.close()
            raise CampaignError(f"{self.path} is an empty database, not a campaign (start one with 'perface "
                                "annotate serve --db ...')")
        if not readonly:
            self._writer = _Writer(self._db)
        if not tables:
            self._create()
        version = self.query("SELECT version FROM schema_version")
        if not version or version[0][0] != SCHEMA_VERSION:
            self.close()
            raise CampaignError(f"{self.path} has campaign schema version {version[0][0] if version else None}; "
                                f"this perface reads version {SCHEMA_VERSION} (use the perface version that "
                                "created it)")
        self.secret = self.meta("secret")

    # ------------------------------------------------------------------------------------------ basics
    def _open_readonly(self) -> sqlite3.Connection:
        """A connection that never writes: read-write with ``query_only`` (so SQLite can recover the log of a
        killed server), or ``mode=ro`` where the file cannot be opened for writing."""
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            db.execute("PRAGMA query_only = ON")
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            return sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=30)


    def _create(self) -> None:
        def create(db):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("secret", secrets.token_hex(32)), ("created_at", repr(time.time())),
                ("campaign_id", secrets.token_hex(8))])

        self._run(create)

    def close(self) -> None:
        """Stop the writer (after the work queued before) and close the connection."""
        if self._owner is not None:  # the loop ended without detaching: its helper thread is idle
            self._owner.executor.shutdown(wait=True)
            self._owner = None
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        with self._lock:
            self._db.close()

    def attach_loop(self) -> None:
        """Move the store's work onto the running asyncio event loop (call from inside it, e.g. at app start-up).

        From then on the statements run on the loop thread itself and only the COMMIT (the fsync) on a helper
        thread, the requests that arrived meanwhile in the next transaction (group commit, one hand-off per
        round); other threads' calls are passed to the loop. :meth:`detach_loop` moves the work back to a
        writer thread.
        """
        if self._writer is None and self._owner is None:
            raise CampaignError("attach_loop on a read-only campaign store")
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        self._owner = _LoopOwner(self._db, asyncio.get_running_loop())

    async def detach_loop(self) -> None:
        """Finish the loop's queued work (await it on the loop) and move the store back to a writer thread."""
        owner = self._owner
        if owner is None:
            return
        writer = _Writer(self._db)  # idle until the owner has drained
        await owner.drain(writer.submit)
        self._writer, self._owner = writer, None

    def _run(self, fn):
        """Run ``fn(connection)`` in a transaction and return its result (after COMMIT)."""
        if self._owner is not None and self._owner.on_loop():
            raise RuntimeError("blocking store call on the event loop it is attached to; use run_async")
        return self.run_async(fn).result()

    def run_async(self, fn) -> Future:
        """Queue ``fn(connection)``; the future resolves after its transaction commits.

        The work runs on the event loop after :meth:`attach_loop`, else on the writer thread; on a read-only
        store it runs at once, under the lock.
        """
        if self._owner is not None:
            return self._owner.submit(fn)
        if self._writer is not None:
            return self._writer.submit(fn)
        fut: Future = Future()
        with self._lock:
            try:
                fut.set_result(fn(self._db))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                fut.set_exception(exc)
        return fut

    def meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read-only query (reports, tests)."""
        return self._run(lambda db: db.execute(sql, params).fetchall())

    # ------------------------------------------------------------------------------------------ set-up
    def sync_tasks(self, taskset, settings: dict[str, str]) -> dict:
        """Insert the checked tasks (idempotent; new rows added, rows no longer listed made inactive).

        Args:
            taskset: A :class:`perface.campaign.tasks.TaskSet`.
            settings: Settings of this start, stored in ``meta`` as ``setting.<name>``.

        Returns:
            ``{"added": n, "triplets": n_active_triplets, "gold": n_active_gold, "inactive": n}``.
        """
        rng = random.Random(self.secret + ":shuffle")

        def sync(db):
            for path, media in taskset.media_types.items():
                db.execute("INSERT INTO images (path, media_type) VALUES (?, ?) ON CONFLICT(path) DO UPDATE "
                           "SET media_type = excluded.media_type", (path, media))
            ids = dict(db.execute("SELECT path, id FROM images"))
            before = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
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
            return before, after, counts, inactive

        before, after, counts, inactive = self._run(sync)
        self._catch_images = [r[0] for r in self.query(
            "SELECT DISTINCT i.id FROM images i JOIN tasks t ON i.id IN (t.anchor, t.a, t.b) "
            "WHERE t.kind = 'triplet' AND t.active = 1 ORDER BY i.id")]
        return {"added": after - before, "triplets": counts.get("triplet", 0), "gold": counts.get("gold", 0),
                "inactive": inactive}

    def images(self) -> dict[int, tuple[str, str]]:
        """Image id -> ``(root-relative path, media type)`` of every campaign image."""
        return {i: (p, m) for i, p, m in self.query("SELECT id, path, media_type FROM images")}

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
        if now - self._last_sweep < min(_SWEEP_EVERY_S, timeout_s / 4):
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

    def _top_up(self, db, annotator_id: int, external_id: str, cfg, now: float) -> None:
        """Issue new assignments until the annotator holds ``cfg.lookahead`` open ones or the session is full."""
        n_issued, n_done, completed_at = db.execute("SELECT n_issued, n_done, completed_at FROM annotators WHERE "
                                                    "id = ?", (annotator_id,)).fetchone()
        n_open = db.execute("SELECT COUNT(*) FROM assignments WHERE annotator = ? AND status = 'open'",
                            (annotator_id,)).fetchone()[0]
        issued = n_issued
        # Trials still to issue: the session length minus everything answered or still open.
        while n_open < cfg.lookahead and n_done + n_open < cfg.per_annotator and completed_at is None:
            picked = self._pick(db, annotator_id, external_id, issued, cfg)
            if picked is None:
                break
            task_id, _ = picked
            left_is = "a" if self._rng(external_id, "side", issued).random() < 0.5 else "b"
            db.execute("INSERT INTO assignments (task, annotator, position, left_is, status, issued_at) "
                       "VALUES (?, ?, ?, ?, 'open', ?)", (task_id, annotator_id, issued, left_is, now))
            db.execute("UPDATE tasks SET n_open = n_open + 1 WHERE id = ?", (task_id,))
            issued += 1
            n_open += 1
        if issued != n_issued:
            db.execute("UPDATE annotators SET n_issued = ?, last_seen = ? WHERE id = ?", (issued, now, annotator_id))

    def _next_tx(self, db, external_id: str, cfg, user_agent: str | None) -> dict:
        now = time.time()
        self._sweep(db, now, cfg.assignment_timeout_s)
        row = self._annotator(db, external_id, user_agent, now, True)
        annotator_id, n_done, completed_at = row[0], row[2], row[3]
        self._top_up(db, annotator_id, external_id, cfg, now)
        rows = db.execute(
            "SELECT s.id, t.anchor, t.a, t.b, s.left_is FROM assignments s JOIN tasks t ON t.id = s.task "
            "WHERE s.annotator = ? AND s.status = 'open' ORDER BY s.position", (annotator_id,)).fetchall()
        # Complete: nothing open and the session is full, or nothing is left for an annotator who answered
        # something (one who answered nothing gets no code: there was no work for them).
        complete = not rows and (completed_at is not None or n_done > 0)
        if complete and completed_at is None:
            db.execute("UPDATE annotators SET completed_at = ?, last_seen = ? WHERE id = ?", (now, now, annotator_id))
        assignments = [{"id": sid, "anchor": anchor, "left": a if left_is == "a" else b,
                        "right": b if left_is == "a" else a} for sid, anchor, a, b, left_is in rows]
        return {"assignments": assignments, "done": n_done, "total": cfg.per_annotator, "complete": complete,
                "available": bool(rows) or complete,
                "completion_code": completion_code(self.secret, external_id) if complete else None}

    def next_assignments(self, external_id: str, cfg, user_agent: str | None = None) -> dict:
        """The annotator's open assignments (issuing new ones up to ``cfg.lookahead``) and progress.

        Returns:
            ``{"assignments": [{"id", "anchor", "left", "right"}] (image ids, in trial order), "done": n,
            "total": cfg.per_annotator, "complete": bool, "available": bool, "completion_code": str | None}``;
            ``available`` is False when an annotator who has answered nothing finds no triplet left to judge
            (no completion code then).
        """
        return self.next_assignments_async(external_id, cfg, user_agent).result()

    def next_assignments_async(self, external_id: str, cfg, user_agent: str | None = None) -> Future:
        """:meth:`next_assignments` as a future (resolved on the writer thread after COMMIT)."""
        return self.run_async(lambda db: self._next_tx(db, external_id, cfg, user_agent))

    # -------------------------------------------------------------------------------------- judgments
    def submit(self, external_id: str, assignment_id: int, submission_id: str, side: str, response_ms: float | None,
               cfg, user_agent: str | None = None) -> SubmitResult:
        """Store one answer, once, and top up the annotator's open assignments. Acknowledged (status 200/201)
        only after COMMIT.

        Returns:
            201 and the judgment when stored; 200 and the stored judgment for a retry of the same submission;
            404 / 409 with ``{"error"}`` (nothing written) for an unknown assignment, another annotator's,
            one already answered, a submission id reused for another answer, or an expired assignment whose
            triplet has filled up.
        """
        return self.submit_async(external_id, assignment_id, submission_id, side, response_ms, cfg,
                                 user_agent).result()

    def submit_async(self, external_id: str, assignment_id: int, submission_id: str, side: str,
                     response_ms: float | None, cfg, user_agent: str | None = None) -> Future:
        """:meth:`submit` as a future (resolved on the writer thread after COMMIT)."""
        return self.run_async(lambda db: self._submit_tx(db, external_id, assignment_id, submission_id, side,
                                                         response_ms, cfg, user_agent))

    def _submit_tx(self, db, external_id, assignment_id, submission_id, side, response_ms, cfg, user_agent
                   ) -> SubmitResult:
        now = time.time()
        stored = self._judgment(db, "j.submission_id = ?", (submission_id,))
        if stored is not None:
            if (stored["annotator_id"], stored["assignment"], stored["side"]) == (external_id, assignment_id, side):
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
        self._top_up(db, annotator_id, external_id, cfg, now)
        stored = self._judgment(db, "j.assignment = ?", (assignment_id,))
        return SubmitResult(201, {"judgment": stored, "duplicate": False, **self._progress(db, external_id, cfg)})

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


class _Writer:
    """The one thread that touches a writable store's connection: group commit.

    Each round takes every queued ``fn`` (at most :data:`_MAX_BATCH`), runs each inside ``SAVEPOINT`` in one
    ``BEGIN IMMEDIATE`` transaction (an exception rolls back that ``fn`` alone and goes to its future),
    ``COMMIT``s once, and only then resolves the futures. If the commit fails, every future of the round gets
    the error: nothing is acknowledged that is not on disk.
    """

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="perface-campaign-db", daemon=True)
        self.thread.start()

    def submit(self, fn) -> Future:
        fut: Future = Future()
        if not self.thread.is_alive():
            fut.set_exception(CampaignError("the campaign database is closed"))
            return fut
        self.queue.put((fn, fut))
        return fut

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch, stop = [item], False
            while len(batch) < _MAX_BATCH:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._round(batch)
            if stop:
                return

    def _round(self, batch) -> None:
        _run_round(self.db, batch)


def _begin_and_run(db: sqlite3.Connection, batch) -> list | None:
    """``BEGIN IMMEDIATE`` and every ``(fn, future)`` of ``batch`` in its own SAVEPOINT; returns
    ``[(future, result, exception)]``, or None (futures failed) if the transaction could not begin."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except BaseException as exc:  # noqa: BLE001 - every waiting request learns it
        for _, fut in batch:
            if fut.set_running_or_notify_cancel():
                fut.set_exception(exc)
        return None
    done = []
    for fn, fut in batch:
        if not fut.set_running_or_notify_cancel():
            continue
        db.execute("SAVEPOINT request")
        try:
            result = fn(db)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            db.execute("ROLLBACK TO request")
            db.execute("RELEASE request")
            done.append((fut, None, exc))
        else:
            db.execute("RELEASE request")
            done.append((fut, result, None))
    return done


def _commit(db: sqlite3.Connection) -> BaseException | None:
    """``COMMIT`` (the fsync); the exception instead of raising it."""
    try:
        db.execute("COMMIT")
    except BaseException as exc:  # noqa: BLE001
        return exc
    return None


def _finish(db: sqlite3.Connection, done: list, commit_error: BaseException | None) -> None:
    """Resolve the futures of a committed round, or fail them all (and roll back) if the commit failed."""
    if commit_error is not None:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        for fut, _, _ in done:
            fut.set_exception(commit_error)
        return
    for fut, result, exc in done:
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)


def _run_round(db: sqlite3.Connection, batch) -> None:
    """One group commit: every ``(fn, future)`` of ``batch`` in its own SAVEPOINT of one transaction, one
    ``COMMIT``, then the futures are resolved (all failed if the commit failed)."""
    done = _begin_and_run(db, batch)
    if done is not None:
        _finish(db, done, _commit(db))


class _LoopOwner:
    """Runs a store's transactions for an asyncio loop: the statements on the loop's own thread, the
    ``COMMIT`` (the fsync) on one helper thread while the loop serves other requests. Requests that arrive
    meanwhile wait and go into the next round together (group commit). Calls from other threads are passed
    to the loop."""

    def __init__(self, db: sqlite3.Connection, loop: asyncio.AbstractEventLoop):
        self.db, self.loop = db, loop
        self.thread_id = threading.get_ident()
        self.pending: list = []
        self.busy = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perface-campaign-commit")
        self.forward = None

    def on_loop(self) -> bool:
        return threading.get_ident() == self.thread_id

    def submit(self, fn) -> Future:
        fut: Future = Future()
        if self.on_loop():
            self._add(fn, fut)
        else:
            try:
                self.loop.call_soon_threadsafe(self._add, fn, fut)
            except RuntimeError:  # the loop is closed
                fut.set_exception(CampaignError("the campaign server has stopped"))
        return fut

    def _add(self, fn, fut: Future) -> None:
        if self.forward is not None:  # detached meanwhile: hand it to the store's writer thread
            _chain(self.forward(fn), fut)
            return
        self.pending.append((fn, fut))
        if not self.busy:
            self.busy = True
            self.idle.clear()
            self.loop.create_task(self._rounds())

    async def _rounds(self) -> None:
        try:
            await asyncio.sleep(0)  # let the requests of this loop turn join the round
            while self.pending:
                batch, self.pending = self.pending, []
                done = _begin_and_run(self.db, batch)
                if done is None:
                    continue
                error = await self.loop.run_in_executor(self.executor, _commit, self.db)
                _finish(self.db, done, error)
        finally:
            self.busy = False
            self.idle.set()

    async def drain(self, forward) -> None:
        """Wait until the queued work is committed, then send later work to ``forward(fn) -> Future``."""
        while self.busy:
            await self.idle.wait()
        self.forward = forward  # no await between the last round and this: nothing is left behind
        self.executor.shutdown(wait=True)


def _chain(source: Future, target: Future) -> None:
    def copy(done: Future) -> None:
        if not target.set_running_or_notify_cancel():
            return
        exc = done.exception()
        if exc is None:
            target.set_result(done.result())
        else:
            target.set_exception(exc)

    source.add_done_callback(copy)
