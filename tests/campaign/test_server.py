"""The campaign server against bad input: traversal, symlinks, tokens, injection, malformed and out-of-campaign
submissions, duplicates, missing images, and many clients at once. Real LFW images, a real uvicorn server."""

from __future__ import annotations

import http.client
import os
import shutil
import sqlite3
import threading
import time

import httpx
import pytest

from perface.annotations.schema import read_judgments
from perface.campaign import CampaignConfig, campaign_status, export_judgments, prepare
from perface.campaign.simulate import run_annotators
from perface.cli.main import main
from perface.errors import CampaignError


def _count(db, table="judgments") -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def _raw_get(url: str, path: str) -> tuple[int, str]:
    """GET ``path`` exactly as written (no client-side normalisation of ``..``)."""
    host, port = url.removeprefix("http://").split(":")
    con = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        con.request("GET", path)
        res = con.getresponse()
        return res.status, res.read().decode("utf-8", "replace")
    finally:
        con.close()


@pytest.fixture()
def own_root(tmp_path, data_root, lfw_paths):
    """A root of our own: 6 real LFW images copied in (tmp only), a symlink inside pointing inside, one symlink and
    one symlinked folder pointing outside the root."""
    root = tmp_path / "root"
    (root / "faces").mkdir(parents=True)
    names = []
    for i, rel in enumerate(lfw_paths[:6]):
        shutil.copyfile(data_root / rel, root / "faces" / f"f{i}.jpg")
        names.append(f"faces/f{i}.jpg")
    os.symlink(root / "faces" / "f0.jpg", root / "faces" / "alias.jpg")        # stays inside: fine
    os.symlink(data_root / lfw_paths[10], root / "faces" / "escape.jpg")       # a real image, outside the root
    os.symlink(data_root / "lfw" / "images", root / "outside")                 # a folder outside the root
    return root, names


def test_symlinks_and_traversal(tmp_path, own_root, lfw_paths, serve_thread):
    root, names = own_root
    person = lfw_paths[11]  # lfw/images/NAME/NAME_0001.jpg -> outside/NAME/NAME_0001.jpg
    rows = [",".join(names[0:3]), ",".join(names[3:6]), f"faces/alias.jpg,{names[1]},{names[2]}",
            f"{names[0]},faces/escape.jpg,{names[2]}", f"{names[0]},{names[1]},outside/{person.split('/', 2)[2]}",
            f"{names[0]},../{names[1]},{names[2]}", f"{names[0]},{root / names[1]},/etc/hostname"]
    tasks = tmp_path / "tasks.csv"
    tasks.write_text("anchor,a,b\n" + "\n".join(rows) + "\n")
    cfg = CampaignConfig(tasks=tasks, root=root, db=tmp_path / "c.sqlite", catch_rate=0)
    with pytest.raises(CampaignError) as err:
        prepare(cfg)
    msg = str(err.value)
    assert "4 task row(s)" in msg and "--skip-bad" in msg
    for line, column, reason in ((5, "a", "path-escapes-root"), (6, "b", "path-escapes-root"),
                                 (7, "a", "path-escapes-root"), (8, "b", "path-escapes-root")):
        assert f"tasks.csv:{line}: {column} " in msg
    assert msg.count("path-escapes-root") == 4
    assert not (tmp_path / "c.sqlite").exists()  # refused before creating anything

    cfg = CampaignConfig(tasks=tasks, root=root, db=tmp_path / "c.sqlite", catch_rate=0, skip_bad=True)
    with serve_thread(cfg) as server:
        summary = server.campaign.summary
        assert summary["triplets"] == 3 and len(summary["bad_rows"]) == 4
        served = dict(server.campaign.store.query("SELECT path, id FROM images"))
        assert set(served) == set(names) | {"faces/alias.jpg"}
        ok, body = _raw_get(server.url, f"/img/{served[names[0]]}")
        assert ok == 200
        attempts = ["/img/../../../../etc/passwd", "/img/..%2F..%2F..%2Fetc%2Fpasswd", "/img/%2Fetc%2Fpasswd",
                    "/img//etc/passwd", "/img/faces/f0.jpg", "/img/faces%2Ff0.jpg", "/faces/f0.jpg", "/outside/",
                    "/img/", "/img/999999", "/img/-1", "/img/0x1", "/img/%2D1", "/static/", "/static/..%2Fapp.py",
                    "/static/../campaign/app.py", "/static/index.html", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                    f"/img/{served[names[0]]}/..", f"/img/{served[names[0]]}%00"]
        for path in attempts:
            status, text = _raw_get(server.url, path)
            assert status in (400, 404), (path, status)
            assert "root:" not in text and "\xff\xd8" not in text
            if status == 404:
                assert httpx.Response(404, content=text.encode()).json()["error"], path
        # A served file replaced by a symlink pointing outside after the start is refused too.
        outside = tmp_path / "outside.jpg"
        shutil.copyfile(root / names[0], outside)
        target = root / names[4]
        target.unlink()
        os.symlink(outside, target)
        status, _ = _raw_get(server.url, f"/img/{served[names[4]]}")
        assert status == 404


@pytest.fixture()
def lfw_tasks(tmp_path, lfw_paths, write_tasks):
    path = tmp_path / "tasks.csv"
    write_tasks(path, lfw_paths, 30)
    return path


def test_token_and_headers(tmp_path, data_root, lfw_tasks, serve_thread):
    token = "s3cret-t0ken"
    cfg = CampaignConfig(tasks=lfw_tasks, root=data_root, db=tmp_path / "c.sqlite", token=token)
    with serve_thread(cfg) as server:
        with httpx.Client(base_url=server.url) as c:
            for path in ("/", "/?annotator=a1", "/api/next?annotator=a1", "/img/1", "/static/annotate.js",
                         "/api/health", "/nothing"):
                r = c.get(path)
                assert r.status_code == 401 and "token" in r.json()["error"], path
                assert c.get(path, params={"token": "wrong-token"}).status_code == 401
            r = c.post("/api/judgments", json={"annotator": "a1", "assignment": 1, "submission": "x" * 10,
                                               "side": "left"})
            assert r.status_code == 401
            assert _count(tmp_path / "c.sqlite") == 0
            page = c.get("/", params={"annotator": "a1", "token": token})
            assert page.status_code == 200
            assert f'src="/static/annotate.js?token={token}"' in page.text
            assert f'data-token="{token}"' in page.text
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["referrer-policy"] == "no-referrer"
            nxt = c.get("/api/next", params={"annotator": "a1"}, headers={"X-PerFace-Token": token})
            assert nxt.status_code == 200 and nxt.headers["cache-control"] == "no-store"
            img = c.get(nxt.json()["assignments"][0]["anchor"], params={"token": token})
            assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
            assert img.content[:2] == b"\xff\xd8"


def test_annotator_id_is_escaped(tmp_path, data_root, lfw_tasks, serve_thread):
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    cfg = CampaignConfig(tasks=lfw_tasks, root=data_root, db=tmp_path / "c.sqlite")
    with serve_thread(cfg) as server, httpx.Client(base_url=server.url) as c:
        for key in ("annotator", "PROLIFIC_PID", "workerId"):
            page = c.get("/", params={key: evil})
            assert page.status_code == 200
            assert "<script>alert" not in page.text and "<img src=x" not in page.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
            assert page.text.count("<script") == 1  # only the page's own script file
        bad = c.get("/", params={"annotator": "a\x00b"})
        assert bad.status_code == 400 and "control characters" in bad.text
        r = c.get("/api/next", params={"annotator": evil})
        assert r.status_code == 200
        assert c.get("/api/next", params={"annotator": "x" * 129}).status_code == 400
    status = campaign_status(tmp_path / "c.sqlite")
    assert [a["annotator_id"] for a in status["annotators"]] == [evil]  # stored as given, escaped on display


def test_malformed_and_out_of_campaign_submissions_write_nothing(tmp_path, data_root, lfw_tasks, serve_thread):
    db = tmp_path / "c.sqlite"
    cfg = CampaignConfig(tasks=lfw_tasks, root=data_root, db=db)
    with serve_thread(cfg) as server, httpx.Client(base_url=server.url) as c:
        mine = c.get("/api/next", params={"annotator": "alice"}).json()["assignments"][0]["id"]
        theirs = c.get("/api/next", params={"annotator": "bob"}).json()["assignments"][0]["id"]
        good = {"annotator": "alice", "assignment": mine, "submission": "sub-0001", "side": "left", "response_ms": 900}
        bad_bodies = [
            b"{not json", b"", b"[]", b'"left"', b"null", b'{"annotator": "alice"}',
            {**good, "side": "up"}, {**good, "side": "a"}, {**good, "assignment": str(mine)},
            {**good, "assignment": -1}, {**good, "assignment": 1.5}, {**good, "response_ms": -5},
            {**good, "response_ms": "fast"}, {**good, "submission": "short"}, {**good, "submission": "bad id!!"},
            {**good, "extra": 1}, {**good, "annotator": ""}, {**good, "annotator": "y" * 200},
            {**good, "assignment": theirs},            # bob's assignment
            {**good, "assignment": 10 ** 9},           # no such assignment
            {**good, "annotator": "mallory"},          # never seen
        ]
        for body in bad_bodies:
            if isinstance(body, bytes):
                r = c.post("/api/judgments", content=body, headers={"content-type": "application/json"})
            else:
                r = c.post("/api/judgments", json=body)
            assert 400 <= r.status_code < 500, (body, r.status_code)
            assert r.headers["content-type"] == "application/json" and r.json()["error"], body
        big = c.post("/api/judgments", content=b"{" + b" " * 20000 + b"}", headers={"content-type": "application/json"})
        assert big.status_code == 413
        assert c.get("/api/judgments").status_code == 405
        assert _count(db) == 0
        # and the valid one is accepted afterwards
        assert c.post("/api/judgments", json=good).status_code == 201
    assert _count(db) == 1


def test_duplicate_submissions_store_once(tmp_path, data_root, lfw_tasks, serve_thread):
    db = tmp_path / "c.sqlite"
    cfg = CampaignConfig(tasks=lfw_tasks, root=data_root, db=db, catch_rate=0)
    with serve_thread(cfg) as server, httpx.Client(base_url=server.url) as c:
        first, second = c.get("/api/next", params={"annotator": "ann"}).json()["assignments"]
        body = {"annotator": "ann", "assignment": first["id"], "submission": "dup-submission-1", "side": "right",
                "response_ms": 1234.5}
        results = []

        def post():
            with httpx.Client(base_url=server.url) as own:
                results.append(own.post("/api/judgments", json=body))

        threads = [threading.Thread(target=post) for _ in range(12)]  # a burst of retries / double clicks
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [200] * 11 + [201]
        stored = {r.json()["judgment"]["id"] for r in results}
        assert len(stored) == 1
        assert all(r.json()["judgment"]["side"] == "right" for r in results)
        assert sum(r.json()["duplicate"] for r in results) == 11
        # the same assignment answered again under a new id: refused, the first answer stays
        again = c.post("/api/judgments", json={**body, "submission": "dup-submission-2", "side": "left"})
        assert again.status_code == 409 and again.json()["judgment"]["side"] == "right"
        # a submission id reused for another answer: refused
        reuse = c.post("/api/judgments", json={**body, "assignment": second["id"]})
        assert reuse.status_code == 409
    assert _count(db) == 1
    export_judgments(db, tmp_path / "j.csv")
    frame = read_judgments(tmp_path / "j.csv")
    assert len(frame) == 1 and frame["response_ms"].iloc[0] == pytest.approx(1234.5)


def test_missing_or_unreadable_image_refuses_start(tmp_path, data_root, lfw_paths, write_tasks, capsys):
    tasks = tmp_path / "tasks.csv"
    good = write_tasks(tmp_path / "good.csv", lfw_paths, 5)
    rows = [",".join(r) for r in good.itertuples(index=False)]
    rows.insert(1, f"{lfw_paths[0]},lfw/images/Nobody_Here/Nobody_Here_0001.jpg,{lfw_paths[1]}")
    rows.insert(3, f"lfw/pairs.txt,{lfw_paths[2]},{lfw_paths[3]}")  # exists, not an image
    tasks.write_text("anchor,a,b\n" + "\n".join(rows) + "\n")
    db = tmp_path / "c.sqlite"
    code = main(["annotate", "serve", "--tasks", str(tasks), "--root", str(data_root), "--db", str(db),
                 "--port", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("perface: 2 task row(s) cannot be shown")
    assert "tasks.csv:3: a 'lfw/images/Nobody_Here/Nobody_Here_0001.jpg': missing-image" in err
    assert "tasks.csv:5: anchor 'lfw/pairs.txt': unreadable-image" in err
    assert "--skip-bad" in err
    assert not db.exists()
    campaign = prepare(CampaignConfig(tasks=tasks, root=data_root, db=db, skip_bad=True))
    assert campaign.summary["triplets"] == 5 and len(campaign.summary["bad_rows"]) == 2
    campaign.store.close()


def test_many_clients_at_once(tmp_path, data_root, lfw_paths, serve_thread, write_tasks):
    """19 annotators at once on 50 triplets x K=3 (more demand than room): nobody sees a triplet twice, no triplet
    gets more than K, every acknowledged answer is stored exactly once, retries are deduplicated, catch trials are
    mixed in and kept apart, a careless annotator (fails the catch trials) is flagged."""
    tasks = tmp_path / "tasks.csv"
    write_tasks(tasks, lfw_paths, 50)
    db = tmp_path / "c.sqlite"
    cfg = CampaignConfig(tasks=tasks, root=data_root, db=db, judgments_per_triplet=3, per_annotator=10,
                         catch_rate=0.2)

    def choose(name, a):
        if a["left"] == a["anchor"] or a["right"] == a["anchor"]:  # catch trial
            same = "left" if a["left"] == a["anchor"] else "right"
            return ("right" if same == "left" else "left") if name == "careless" else same
        return "left" if a["id"] % 2 else "right"

    names = [f"worker-{i:02d}" for i in range(19)]
    with serve_thread(cfg) as server:
        first = run_annotators(server.url, ["careless"], choose, time_limit_s=30)
        result = run_annotators(server.url, names, choose, retry_every=7, fetch_images=True, time_limit_s=60)
    assert first.completed and len(first.acknowledged) == 10
    assert not result.errors and not result.timed_out and not result.refused
    assert result.duplicates_sent > 0 and result.duplicates_acknowledged == result.duplicates_sent
    con = sqlite3.connect(db)
    try:
        stored = con.execute("SELECT submission_id, assignment, side FROM judgments").fetchall()
        per_task = con.execute("SELECT t.id, t.kind, t.n_done, COUNT(j.id) FROM tasks t LEFT JOIN judgments j ON "
                               "j.task = t.id GROUP BY t.id").fetchall()
        pairs = con.execute("SELECT task, annotator, COUNT(*) FROM assignments GROUP BY task, annotator "
                            "HAVING COUNT(*) > 1").fetchall()
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    acked = {(sub, aid, side) for _, aid, sub, side in first.acknowledged + result.acknowledged}
    assert len(acked) == len(first.acknowledged) + len(result.acknowledged)
    assert set(stored) == acked and len(stored) == len(acked)  # nothing lost, nothing extra
    assert not pairs  # nobody saw a task twice
    triplets = [r for r in per_task if r[1] == "triplet"]
    assert len(triplets) == 50 and all(n_done == n == 3 for _, _, n_done, n in triplets)  # full, none over K
    assert sum(r[3] for r in per_task if r[1] == "catch") >= 20  # catch trials mixed in
    status = campaign_status(db, min_catch=2)
    assert status["flagged"] == ["careless"]
    careless = next(a for a in status["annotators"] if a["annotator_id"] == "careless")
    assert careless["catch_accuracy"] == 0.0 and careless["n_catch"] == 2
    assert status["triplets"]["complete"] == 50 and status["triplets"]["needed"] == 0
    out = export_judgments(db, tmp_path / "j.parquet")
    assert out["judgments"] == 150 and out["catch_out"].endswith("j_catch.parquet")
    frame = read_judgments(tmp_path / "j.parquet")
    assert len(frame) == 150 and set(frame["source"]) == {"perface-annotate"}
    assert not (frame["anchor"] == frame["a"]).any()
    catch = read_judgments(out["catch_out"])
    assert len(catch) == out["catch"] and (catch["anchor"] == catch["a"]).all()
    assert set(catch["source"]) == {"perface-annotate-catch"} and catch["is_gold"].all()


def test_expired_assignments_free_their_triplet(tmp_path, data_root, lfw_paths, write_tasks, serve_thread):
    """An unanswered assignment stops holding its triplet after the timeout, so others get the triplet; a late
    answer is still stored while the triplet has room, and refused (409, nothing written) once it is full."""
    tasks = tmp_path / "tasks.csv"
    write_tasks(tasks, lfw_paths, 2)
    db = tmp_path / "c.sqlite"
    cfg = CampaignConfig(tasks=tasks, root=data_root, db=db, judgments_per_triplet=2, catch_rate=0,
                         assignment_timeout_s=0.2)

    def key(a):
        return a["anchor"], frozenset((a["left"], a["right"]))

    with serve_thread(cfg) as server, httpx.Client(base_url=server.url) as c:
        slow = c.get("/api/next", params={"annotator": "slow"}).json()["assignments"]
        assert len(slow) == 2
        time.sleep(0.3)  # past the timeout: slow's two assignments no longer hold their triplets
        o1 = c.get("/api/next", params={"annotator": "o1"}).json()["assignments"]
        assert {key(a) for a in o1} == {key(a) for a in slow}
        first = c.post("/api/judgments", json={"annotator": "slow", "assignment": slow[0]["id"],
                                               "submission": "late-answer-1", "side": "left"})
        assert first.status_code == 201  # room left: o1's open one + slow's answer = K
        o2 = c.get("/api/next", params={"annotator": "o2"}).json()["assignments"]
        assert [key(a) for a in o2] == [key(slow[1])]  # the first triplet is full now
        second = c.post("/api/judgments", json={"annotator": "slow", "assignment": slow[1]["id"],
                                                "submission": "late-answer-2", "side": "left"})
        assert second.status_code == 409 and "expired" in second.json()["error"]
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT COUNT(*) FROM judgments").fetchone()[0] == 1
        assert con.execute("SELECT MAX(n_done + n_open) FROM tasks").fetchone()[0] == 2
    finally:
        con.close()
